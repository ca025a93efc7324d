package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/domainstats/domainstats"
	"github.com/domainstats/domainstats/ingest"
)

// A checkpoint is set after this many lines, and committed to disk with
// the events before it after commitLines lines or commitInterval, whichever
// comes first. Both also happen at the end of each input.
const (
	checkpointLines = 10_000
	commitLines     = 200_000
	commitInterval  = time.Second
)

// loggedSkips is how many skipped lines an ingest logs one by one. Later
// ones are only counted.
const loggedSkips = 10

// ingestSummary counts what an ingest run did.
type ingestSummary struct {
	files   int
	lines   int64
	events  int64
	skipped map[ingest.Reason]int64
}

func (s *ingestSummary) totalSkipped() int64 {
	var total int64
	for _, n := range s.skipped {
		total += n
	}
	return total
}

// logAttrs returns the summary as log attributes, reasons in name order.
func (s *ingestSummary) logAttrs() []any {
	attrs := []any{"files", s.files, "lines_read", s.lines, "events_recorded", s.events, "skipped", s.totalSkipped()}
	reasons := make([]string, 0, len(s.skipped))
	for reason := range s.skipped {
		reasons = append(reasons, string(reason))
	}
	slices.Sort(reasons)
	for _, reason := range reasons {
		attrs = append(attrs, "skipped_"+reason, s.skipped[ingest.Reason(reason)])
	}
	return attrs
}

// ingestJob is one ingest run over its inputs.
type ingestJob struct {
	store    *domainstats.Store
	format   ingest.Format
	strict   bool
	logger   *slog.Logger
	env      environment
	progress *progress // nil when no bar is drawn
	summary  ingestSummary
}

func runIngest(ctx context.Context, args []string, env environment, logger *slog.Logger) error {
	fs := newFlagSet("ingest", "ingest [flags] FILE...",
		"Reads DNS, TLS and HTTP logs and records which machine contacted which domain, and when.\n"+
			"FILE may be - for standard input, and gzip files are decompressed. A rerun of the same\n"+
			"command reads only what was added to each file since; a rotated file is read from its start.", env)
	db := fs.String("db", defaultDB, "store file `path`, created if missing")
	formatName := fs.String("format", string(ingest.FormatAuto), "input `format`: auto (detect from content), zeek, zeek-json, sysmon, defender or csv")
	strict := fs.Bool("strict", false, "fail on the first line that cannot be used, instead of counting it as skipped")
	verbose := fs.Bool("verbose", false, "also log each commit of events and checkpoint, with its file, line and byte offset")
	retentionHours := fs.Int("retention", 0, "`hours` of data to keep, counted back from the newest event; stored in the file for later commands (default: the file's, or 720 for a new file)")
	noProgress := fs.Bool("no-progress", false, "do not draw the progress bar, which is drawn only when standard error is a terminal")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	format, err := ingest.ParseFormat(*formatName)
	if err != nil {
		return fmt.Errorf("%w: --format: %v", errUsage, err)
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(env.stderr, "domainstats ingest: no input files; give one or more paths, or - for standard input")
		return errUsage
	}

	if *verbose {
		logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	if *retentionHours < 0 {
		return fmt.Errorf("%w: --retention must be a positive number of hours, got %d", errUsage, *retentionHours)
	}
	store, err := openStore(*db, nowFlag{}, time.Duration(*retentionHours)*time.Hour)
	if err != nil {
		return err
	}

	job := &ingestJob{
		store:   store,
		format:  format,
		strict:  *strict,
		logger:  logger,
		env:     env,
		summary: ingestSummary{skipped: map[ingest.Reason]int64{}},
	}
	if env.stderrIsTerminal && !*noProgress {
		job.progress = newProgress(env.stderr, totalSize(fs.Args()))
		job.progress.start()
	}

	started := time.Now()
	runErr := job.run(ctx, fs.Args())
	if job.progress != nil {
		job.progress.stop()
	}

	// Close commits every recorded event and checkpoint, also after a
	// failure, so a rerun continues from there.
	closeErr := store.Close()

	elapsed := time.Since(started)
	attrs := append(job.summary.logAttrs(), "db", *db, "elapsed", elapsed.Round(time.Millisecond))
	if elapsed > 0 {
		attrs = append(attrs, "events_per_second", int64(float64(job.summary.events)/elapsed.Seconds()))
	}
	if runErr != nil || closeErr != nil {
		logger.Error("ingest stopped", attrs...)
	} else {
		logger.Info("ingest finished", attrs...)
	}

	if runErr != nil {
		return runErr
	}
	if closeErr != nil {
		return fmt.Errorf("close store %s: %w", *db, closeErr)
	}
	return nil
}

func (j *ingestJob) run(ctx context.Context, paths []string) error {
	for _, path := range paths {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before %s: %w", path, err)
		}
		if err := j.ingestPath(ctx, path); err != nil {
			return err
		}
		j.summary.files++
	}
	return nil
}

// ingestPath reads one input and records its events, resuming a plain
// or gzip file from its checkpoint when the file is the same one.
func (j *ingestJob) ingestPath(ctx context.Context, path string) error {
	if path == "-" {
		return j.ingestReader(ctx, j.env.stdin, "stdin", "", inputFile{}, ingest.Position{})
	}

	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer f.Close()

	file, err := identifyFile(f)
	if err != nil {
		return fmt.Errorf("read input %s: %w", path, err)
	}
	key, err := checkpointKey(path)
	if err != nil {
		return err
	}

	start, err := j.resumePosition(key, path, f, file)
	if err != nil {
		return err
	}

	var src io.Reader = f
	if j.progress != nil {
		src = j.progress.track(f)
	}
	return j.ingestReader(ctx, src, path, key, file, start)
}

// resumePosition returns where to continue reading the file at path: its
// checkpoint if the checkpoint is of the same file, or else the start.
func (j *ingestJob) resumePosition(key, path string, f *os.File, file inputFile) (ingest.Position, error) {
	raw, err := j.store.Checkpoint(key)
	if err != nil {
		return ingest.Position{}, fmt.Errorf("read checkpoint of %s: %w", path, err)
	}
	if raw == nil {
		return ingest.Position{}, nil
	}

	cp, err := decodeCheckpoint(raw)
	if err != nil {
		j.logger.Warn("ignoring unreadable checkpoint; reading from the start", "file", path, "error", err)
		return ingest.Position{}, nil
	}

	same, err := cp.sameFile(f, file)
	if err != nil {
		return ingest.Position{}, fmt.Errorf("compare %s with its checkpoint: %w", path, err)
	}
	if !same {
		j.logger.Info("file differs from the one last read at this path; reading from the start", "file", path)
		return ingest.Position{}, nil
	}

	if cp.Position.Offset > 0 {
		j.logger.Info("resuming", "file", path, "line", cp.Position.Line, "offset", cp.Position.Offset)
	}
	return cp.Position, nil
}

// ingestReader records the events of src. key is the checkpoint key, or
// empty for standard input, which is never resumed.
func (j *ingestJob) ingestReader(ctx context.Context, src io.Reader, name, key string, file inputFile, start ingest.Position) error {
	r, err := ingest.NewReader(src, &ingest.Options{Name: name, Format: j.format, Start: start})
	if err != nil {
		return err
	}
	j.logger.Info("reading", "file", name, "format", r.Format())

	var (
		linesAtCheckpoint = r.LinesRead()
		linesAtCommit     = r.LinesRead()
		lastCommit        = time.Now()
	)
	setCheckpoint := func() error {
		linesAtCheckpoint = r.LinesRead()
		if key == "" {
			return nil
		}
		cp := checkpoint{File: file, Position: r.Position()}
		if err := j.store.SetCheckpoint(key, cp.encode()); err != nil {
			return fmt.Errorf("store checkpoint of %s: %w", name, err)
		}
		return nil
	}

	// commit writes the checkpoint and every event before it in one
	// transaction, so a crash after it loses none of them.
	commit := func() error {
		if err := setCheckpoint(); err != nil {
			return err
		}
		if err := j.store.Flush(); err != nil {
			return fmt.Errorf("commit events of %s: %w", name, err)
		}
		linesAtCommit, lastCommit = r.LinesRead(), time.Now()
		pos := r.Position()
		j.logger.Debug("committed", "file", name, "line", pos.Line, "offset", pos.Offset)
		return nil
	}

	defer func() { j.summary.lines += r.LinesRead() }()

	for {
		event, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}

		var skip *ingest.SkipError
		switch {
		case errors.As(err, &skip):
			if err := j.skip(skip); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if err := j.record(r, name, event); err != nil {
				return err
			}
		}

		// Every event before Position has been recorded, so the
		// checkpoint never runs ahead of the data it is committed with.
		lines := r.LinesRead()
		if lines-linesAtCheckpoint < checkpointLines {
			continue
		}
		if err := ctx.Err(); err != nil {
			if cpErr := commit(); cpErr != nil {
				return cpErr
			}
			return fmt.Errorf("interrupted in %s at line %d: %w", name, r.Position().Line, err)
		}
		if lines-linesAtCommit >= commitLines || time.Since(lastCommit) >= commitInterval {
			err = commit()
		} else {
			err = setCheckpoint()
		}
		if err != nil {
			return err
		}
	}
	return commit()
}

// record records one event, counting a domain or machine that the store
// rejects as a skipped line.
func (j *ingestJob) record(r *ingest.Reader, name string, event ingest.Event) error {
	err := j.store.Record(event.Domain, event.Machine, event.Time)
	if err == nil {
		j.summary.events++
		if j.progress != nil {
			j.progress.addEvent()
		}
		return nil
	}

	reason := ingest.Reason("")
	switch {
	case errors.Is(err, domainstats.ErrInvalidDomain):
		reason = ingest.ReasonInvalidDomain
	case errors.Is(err, domainstats.ErrInvalidMachine):
		reason = ingest.ReasonInvalidMachine
	case errors.Is(err, domainstats.ErrInvalidTime):
		reason = ingest.ReasonInvalidTime
	default:
		return fmt.Errorf("record event of %s line %d: %w", name, event.Line, err)
	}
	return j.skip(&ingest.SkipError{File: name, Line: event.Line, Reason: reason, Detail: err.Error()})
}

// skip counts a skipped line, logs the first few, and fails in strict mode.
func (j *ingestJob) skip(skip *ingest.SkipError) error {
	if j.strict {
		return fmt.Errorf("%w (--strict stops at the first unusable line)", skip)
	}

	j.summary.skipped[skip.Reason]++
	total := j.summary.totalSkipped()
	if total <= loggedSkips {
		j.logger.Warn("skipped line", "file", skip.File, "line", skip.Line, "reason", skip.Reason, "detail", skip.Detail)
	}
	if total == loggedSkips {
		j.logger.Warn("further skipped lines are counted in the summary but not logged")
	}
	return nil
}

// totalSize returns the summed size of the regular files among paths.
func totalSize(paths []string) int64 {
	var total int64
	for _, path := range paths {
		if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
	}
	return total
}
