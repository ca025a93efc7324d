package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/domainstats/domainstats/ingest"
)

// fileState is the size, modification time and identity of a file, which
// a follow pass compares to find the files that changed since it read them.
type fileState struct {
	size    int64
	modTime time.Time
	device  uint64
	inode   uint64
}

func statFile(path string) (fileState, error) {
	info, err := os.Stat(path)
	if err != nil {
		return fileState{}, err
	}
	device, inode := fileID(info)
	return fileState{size: info.Size(), modTime: info.ModTime(), device: device, inode: inode}, nil
}

// follower has serve ingest its log files at start and then again on each
// pass, with the checkpoints that ingest keeps, so that only what was
// appended is read. It is used by one goroutine at a time.
type follower struct {
	job    *ingestJob
	paths  []string
	logger *slog.Logger

	// read is the state of each file when a pass last read it to its
	// end. A file in the same state is not opened again, which spares
	// decompressing an unchanged gzip file on every pass.
	read map[string]fileState

	// logged is the last error logged for each file, so a failure that
	// repeats on every pass is logged once.
	logged map[string]string
}

func newFollower(job *ingestJob, paths []string, logger *slog.Logger) *follower {
	return &follower{job: job, paths: paths, logger: logger, read: map[string]fileState{}, logged: map[string]string{}}
}

// pass reads the files that changed since the last pass and returns the
// error of each file that failed. It returns early when ctx is done.
func (f *follower) pass(ctx context.Context) map[string]error {
	f.job.summary = ingestSummary{skipped: map[ingest.Reason]int64{}}
	failed := map[string]error{}
	for _, path := range f.paths {
		if ctx.Err() != nil {
			return failed
		}

		state, err := statFile(path)
		if err == nil && state == f.read[path] {
			continue
		}
		if err == nil {
			err = f.job.ingestPath(ctx, path)
		}
		if ctx.Err() != nil {
			return failed
		}

		// A file that gave no events gives none again until it changes.
		if err == nil || errors.Is(err, errNoEvents) {
			f.read[path] = state
		}
		if err != nil {
			failed[path] = err
			f.job.summary.failed++
			continue
		}
		f.job.summary.files++

		if f.logged[path] != "" {
			f.logger.Info("file read without error again", "file", path)
			delete(f.logged, path)
		}
	}
	return failed
}

// initial runs the first pass and logs its summary and the error of each
// file that failed. It returns the errors of the files whose lines were
// all skipped, joined, because a wrong --format does not fix itself. A
// file that is missing, unreadable or of an undetected format is only
// logged, and later passes read it again.
func (f *follower) initial(ctx context.Context) error {
	failed := f.pass(ctx)
	attrs := f.job.summary.logAttrs()

	var wrongFormat []error
	for _, path := range f.paths {
		if err, ok := failed[path]; ok && errors.Is(err, errNoEvents) {
			wrongFormat = append(wrongFormat, err)
		}
	}
	if len(wrongFormat) > 0 {
		f.logger.Error("ingesting log files at start failed", attrs...)
		return errors.Join(wrongFormat...)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted while ingesting log files at start: %w", err)
	}

	f.logFailures(failed)
	f.logger.Info("ingested log files at start", attrs...)
	f.job.fileLogLevel = slog.LevelDebug
	return nil
}

// follow runs a pass every interval until ctx is done. It logs each pass
// that recorded events, and each file error once until it changes.
func (f *follower) follow(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()

	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}

		// A pass cut short by shutdown still logs what it recorded.
		failed := f.pass(ctx)
		if f.job.summary.events > 0 {
			f.logger.Info("follow pass recorded events", f.job.summary.logAttrs()...)
		}
		if ctx.Err() != nil {
			return
		}
		f.logFailures(failed)
	}
}

// logFailures logs the error of each failed file, unless the same error
// was the last one logged for that file.
func (f *follower) logFailures(failed map[string]error) {
	for _, path := range f.paths {
		err, ok := failed[path]
		if ok && f.logged[path] != err.Error() {
			f.logger.Error("reading a log file failed; serving goes on and reads it again on the next pass", "file", path, "error", err)
			f.logged[path] = err.Error()
		}
	}
}
