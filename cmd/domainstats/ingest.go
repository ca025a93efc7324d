package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// forcibleFormats lists the formats that --format can force when
// detection fails.
const forcibleFormats = "zeek, zeek-json, sysmon, defender or csv"

// errNoEvents is returned for an input whose every usable-looking line was
// skipped, which nearly always means it was read in the wrong format.
var errNoEvents = errors.New("no events recorded")

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

// fileCounts is the number of events and skipped lines of the input being
// read, and its first skipped line.
type fileCounts struct {
	events    int64
	skipped   map[ingest.Reason]int64
	firstSkip *ingest.SkipError
}

// onlySkipped reports whether the input gave no event but skipped lines
// that were not merely records of another kind. Such an input is nearly
// always read in the wrong format, so its position is not saved.
func (c *fileCounts) onlySkipped() bool {
	if c.events > 0 {
		return false
	}
	for reason, n := range c.skipped {
		if reason != ingest.ReasonOtherEvent && n > 0 {
			return true
		}
	}
	return false
}

// ingestJob reads inputs into a store. ingest runs one over its FILE
// arguments, and serve runs one again on each follow pass.
type ingestJob struct {
	store    *domainstats.Store
	format   ingest.Format
	strict   bool
	restart  bool // read every input from its start, ignoring checkpoints
	logger   *slog.Logger
	env      environment
	progress *progress // nil when no bar is drawn
	summary  ingestSummary
	current  fileCounts

	// fileLogLevel is the level of the per-input "reading" and
	// "resuming" lines. serve lowers it to Debug after its first pass,
	// because every follow pass would repeat them.
	fileLogLevel slog.Level
}

func newIngestJob(store *domainstats.Store, format ingest.Format, logger *slog.Logger, env environment) *ingestJob {
	return &ingestJob{
		store:        store,
		format:       format,
		logger:       logger,
		env:          env,
		summary:      ingestSummary{skipped: map[ingest.Reason]int64{}},
		fileLogLevel: slog.LevelInfo,
	}
}

func runIngest(ctx context.Context, args []string, env environment, logger *slog.Logger) error {
	fs := newFlagSet("ingest", "ingest [flags] FILE...",
		"Reads DNS, TLS and HTTP logs and records which machine contacted which domain, and when.\n"+
			"FILE may be - for standard input, and gzip files are decompressed. A rerun of the same\n"+
			"command reads only what was added to each file since; a rotated file is read from its start.\n"+
			"The summary's lines_read counts the lines read in this run, after the point it resumed from.\n"+
			"\n"+
			"A file that gives no event but skips lines, other than records of another kind such as\n"+
			"Sysmon events other than 22, fails: check --format. Its position is not saved, so a\n"+
			"corrected rerun reads the same lines again. The other files are still read.\n"+
			"\n"+
			"Time fields, such as the time column of csv, accept "+ingest.TimeFormats+".", env)
	db := fs.String("db", defaultDB, "store file `path`, created if missing")
	formatName := fs.String("format", string(ingest.FormatAuto), "input `format`: auto (detect from content), zeek, zeek-json, sysmon, defender or csv")
	strict := fs.Bool("strict", false, "fail on the first line that cannot be used, instead of counting it as skipped")
	verbose := fs.Bool("verbose", false, "also log each commit of events and checkpoint, with its file, line and byte offset")
	retentionHours := fs.Int("retention", 0, "`hours` of data to keep, counted back from the newest event; stored in the file for later commands (default: the file's, or 720 for a new file)")
	noProgress := fs.Bool("no-progress", false, "do not draw the progress bar, which is drawn only when standard error is a terminal")
	restart := fs.Bool("restart", false, "ignore the saved position of each file and read it from its start; events read twice do not change the counts, which are of distinct machines")
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

	// A failed run must not leave an empty store behind, so the inputs
	// are checked before the store is opened, which creates it.
	if err := checkInputs(fs.Args()); err != nil {
		return err
	}
	store, err := openStoreWithRetention(*db, time.Duration(*retentionHours)*time.Hour, logger)
	if err != nil {
		return err
	}

	job := newIngestJob(store, format, logger, env)
	job.strict = *strict
	job.restart = *restart
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

// run reads paths in order. An input that gives no events does not stop
// the others, but run returns its error at the end. Any other error stops
// the run.
func (j *ingestJob) run(ctx context.Context, paths []string) error {
	var unusable []error
	for _, path := range paths {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before %s: %w", path, err)
		}
		err := j.ingestPath(ctx, path)
		if errors.Is(err, errNoEvents) {
			unusable = append(unusable, err)
			continue
		}
		if err != nil {
			return err
		}
		j.summary.files++
	}
	return errors.Join(unusable...)
}

// checkInputs returns an error for the first path that is missing, a
// directory or unreadable. "-" is standard input and always passes.
func checkInputs(paths []string) error {
	for _, path := range paths {
		if path == "-" {
			continue
		}

		info, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("input %s: no such file", path)
		}
		if err != nil {
			return fmt.Errorf("input %s: %w", path, err)
		}
		if info.IsDir() {
			return fmt.Errorf("input %s is a directory: pass the log files in it, for example with a glob such as %s", path, filepath.Join(path, "*.log"))
		}

		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("input %s: %w", path, err)
		}
		f.Close()
	}
	return nil
}

// openStoreWithRetention opens the store at path for writing with the
// given retention, zero to keep the stored one, and logs a change of the
// retention stored in an existing file.
func openStoreWithRetention(path string, retention time.Duration, logger *slog.Logger) (*domainstats.Store, error) {
	var previous time.Duration
	if _, err := os.Stat(path); retention > 0 && err == nil {
		// The store reports only the retention in force, so the stored
		// one is read by an open that keeps it.
		store, err := openStore(path, nowFlag{}, 0)
		if err != nil {
			return nil, err
		}
		previous = store.Retention()
		if err := store.Close(); err != nil {
			return nil, fmt.Errorf("close store %s: %w", path, err)
		}
	}

	store, err := openStore(path, nowFlag{}, retention)
	if err != nil {
		return nil, err
	}
	if current := store.Retention(); previous > 0 && current != previous {
		logger.Info("retention changed", "db", path, "previous_hours", int64(previous.Hours()), "hours", int64(current.Hours()))
	}
	return store, nil
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
	if j.restart {
		j.logger.Log(context.Background(), j.fileLogLevel, "reading from the start because of --restart", "file", path)
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
		j.logger.Log(context.Background(), j.fileLogLevel, "resuming", "file", path, "line", cp.Position.Line, "offset", cp.Position.Offset)
	}
	return cp.Position, nil
}

// ingestReader records the events of src. key is the checkpoint key, or
// empty for standard input, which is never resumed.
func (j *ingestJob) ingestReader(ctx context.Context, src io.Reader, name, key string, file inputFile, start ingest.Position) error {
	r, err := ingest.NewReader(src, &ingest.Options{Name: name, Format: j.format, Start: start})
	if errors.Is(err, ingest.ErrUnknownFormat) {
		return fmt.Errorf("%w; if you know the format, force it with --format %s", err, forcibleFormats)
	}
	if err != nil {
		return err
	}
	j.logger.Log(ctx, j.fileLogLevel, "reading", "file", name, "format", r.Format())
	j.current = fileCounts{skipped: map[ingest.Reason]int64{}}

	var (
		linesAtCheckpoint = r.LinesRead()
		linesAtCommit     = r.LinesRead()
		lastCommit        = time.Now()
	)
	setCheckpoint := func() error {
		linesAtCheckpoint = r.LinesRead()
		if key == "" || j.current.onlySkipped() {
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

	if err := commit(); err != nil {
		return err
	}
	if j.current.onlySkipped() {
		return j.noEventsError(name, r.Format())
	}
	return nil
}

// noEventsError describes an input that gave no events, with the format
// it was read in and why its lines were skipped.
func (j *ingestJob) noEventsError(name string, format ingest.Format) error {
	how := "detected from its first line"
	if j.format != ingest.FormatAuto {
		how = "set by --format"
	}

	var total int64
	reasons := make([]string, 0, len(j.current.skipped))
	for reason, n := range j.current.skipped {
		total += n
		reasons = append(reasons, fmt.Sprintf("%s %d", reason, n))
	}
	slices.Sort(reasons)

	first := j.current.firstSkip
	return fmt.Errorf("%s: %w: read as %s (%s), %d lines skipped (%s), the first at line %d: %s. Check --format: the position in this file is not saved, so the next run reads the same lines again",
		name, errNoEvents, format, how, total, strings.Join(reasons, ", "), first.Line, first.Detail)
}

// record records one event, counting a domain or machine that the store
// rejects as a skipped line.
func (j *ingestJob) record(r *ingest.Reader, name string, event ingest.Event) error {
	err := j.store.Record(event.Domain, event.Machine, event.Time)
	if err == nil {
		j.summary.events++
		j.current.events++
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
	j.current.skipped[skip.Reason]++
	if j.current.firstSkip == nil {
		j.current.firstSkip = skip
	}
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
