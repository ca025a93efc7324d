package main

import (
	"context"
	"errors"
	"flag"
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

// errInputsFailed is returned by an ingest run that read its other inputs
// but could not use some. The error of each has already been logged.
var errInputsFailed = errors.New("some inputs failed")

// errDirectory is returned for an input that is a directory, which is a
// mistake in the command line rather than a problem of one file.
var errDirectory = errors.New("is a directory")

// inputError is the failure of one input, such as a missing file, an
// unknown format or a corrupt gzip stream. It leaves the store and the
// other inputs usable, unlike a failure to write the store.
type inputError struct {
	err error
}

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// inputFailure marks err as the failure of one input.
func inputFailure(err error) error {
	if err == nil {
		return nil
	}
	return &inputError{err: err}
}

// ingestSummary counts what an ingest run did.
type ingestSummary struct {
	files   int
	failed  int // inputs that could not be read or gave no events
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
	attrs := []any{"files", s.files, "files_failed", s.failed, "lines_read", s.lines, "events_recorded", s.events, "skipped", s.totalSkipped()}
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
	follow   bool // leave a last line without a line break for the next pass
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
			"corrected rerun reads the same lines again. A file that cannot be opened, whose format\n"+
			"is not detected or whose gzip stream is corrupt fails too. The error of each failed file\n"+
			"is logged, the other files are still read, and the command exits with status 1 and a\n"+
			"list of the failed files. With --strict the first failed file stops the run.\n"+
			"\n"+
			"A skipped line is counted by reason in the summary (skipped_REASON): malformed,\n"+
			"no_header, missing_domain, missing_machine, invalid_time, other_event, line_too_long,\n"+
			"invalid_domain, invalid_machine, or ip_address for a host that is an IPv4 or IPv6\n"+
			"address, such as an http.log host of 192.0.2.1, because an address is not a domain.\n"+
			"\n"+
			"Time fields, such as the time column of csv, accept "+ingest.TimeFormats+".", env)
	db := fs.String("db", defaultDB, "store file `path`, created if missing")
	formatName := fs.String("format", string(ingest.FormatAuto), "input `format`: auto (detect from content), zeek, zeek-json, sysmon, defender or csv")
	strict := fs.Bool("strict", false, "fail on the first line or file that cannot be used, instead of counting the line as skipped or going on with the next file")
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

	// Zero is the flag's default and means "keep the file's retention", so
	// an explicit zero is recognized by whether the flag was given.
	retentionSet := false
	fs.Visit(func(f *flag.Flag) { retentionSet = retentionSet || f.Name == "retention" })
	if *retentionHours < 0 || (retentionSet && *retentionHours == 0) {
		return fmt.Errorf("%w: --retention must be a positive number of hours, got %d; leave the flag out to keep the file's retention", errUsage, *retentionHours)
	}

	// A run that can read no input must not leave an empty store behind,
	// so the inputs are checked before the store is opened, which creates
	// it.
	if err := checkInputs(fs.Args(), *strict); err != nil {
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
	switch {
	case closeErr != nil || (runErr != nil && !errors.Is(runErr, errInputsFailed)):
		logger.Error("ingest stopped", attrs...)
	case runErr != nil:
		logger.Error("ingest finished, but some inputs failed", attrs...)
	default:
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

// run reads paths in order. The failure of one input, such as a missing
// file, an unknown format or no events, is logged and does not stop the
// others, and run returns an error wrapping errInputsFailed that names the
// failed inputs at the end. In strict mode the first failure stops the
// run. Any other error, such as a failed write to the store, stops it.
func (j *ingestJob) run(ctx context.Context, paths []string) error {
	var failed []string
	for _, path := range paths {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before %s: %w", path, err)
		}

		err := inputFailure(checkInput(path))
		if err == nil {
			err = j.ingestPath(ctx, path)
		}
		var inputErr *inputError
		if err != nil && (j.strict || !errors.As(err, &inputErr)) {
			return err
		}
		if err != nil {
			j.logger.Error("input failed; going on with the next", "file", path, "error", err)
			j.summary.failed++
			failed = append(failed, path)
			continue
		}
		j.summary.files++
	}

	if len(failed) > 0 {
		return fmt.Errorf("%w: %d of %d inputs failed and were not read in full, see the errors logged above: %s",
			errInputsFailed, len(failed), len(paths), strings.Join(failed, ", "))
	}
	return nil
}

// checkInputs checks paths before a run opens the store. It returns an
// error when a path is a directory, when every path fails, or in strict
// mode when any path fails. Otherwise the run reads the paths that pass
// and reports the others.
func checkInputs(paths []string, strict bool) error {
	var errs []error
	for _, path := range paths {
		err := checkInput(path)
		if errors.Is(err, errDirectory) || (strict && err != nil) {
			return err
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(paths) {
		return errors.Join(errs...)
	}
	return nil
}

// checkInput returns an error when path is missing, a directory or
// unreadable. "-" is standard input and always passes.
func checkInput(path string) error {
	if path == "-" {
		return nil
	}

	info, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("input %s: no such file", path)
	}
	if err != nil {
		return fmt.Errorf("input %s: %w", path, err)
	}
	if info.IsDir() {
		return fmt.Errorf("input %s %w: pass the log files in it, for example with a glob such as %s", path, errDirectory, filepath.Join(path, "*.log"))
	}

	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("input %s: %w", path, err)
	}
	f.Close()
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
		return inputFailure(fmt.Errorf("open input: %w", err))
	}
	defer f.Close()

	file, err := identifyFile(f)
	if err != nil {
		return inputFailure(fmt.Errorf("read input %s: %w", path, err))
	}
	key, err := checkpointKey(path)
	if err != nil {
		return inputFailure(err)
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
		return ingest.Position{}, inputFailure(fmt.Errorf("compare %s with its checkpoint: %w", path, err))
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
	r, err := ingest.NewReader(src, &ingest.Options{Name: name, Format: j.format, Start: start, Follow: j.follow})
	if errors.Is(err, ingest.ErrUnknownFormat) {
		return inputFailure(fmt.Errorf("%w; if you know the format, force it with --format %s", err, forcibleFormats))
	}
	if err != nil {
		return inputFailure(err)
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
				return inputFailure(err)
			}
		case err != nil:
			return inputFailure(err)
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
		return inputFailure(j.noEventsError(name, r.Format()))
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
