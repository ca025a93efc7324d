// Command domainstats ingests DNS, TLS and HTTP logs into a domain
// statistics store, prints the statistics of domains, serves them over
// HTTP in the shape of Microsoft Defender for Endpoint's "Get domain
// statistics" API, and checks a store file for damage.
//
// Usage:
//
//	domainstats ingest [flags] FILE...
//	domainstats stats [flags] DOMAIN...
//	domainstats serve [flags] [FILE...]
//	domainstats verify [flags]
//
// Run "domainstats COMMAND --help" for the flags of each command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/domainstats/domainstats"
)

// defaultDB is the store file used when --db is not given.
const defaultDB = "domainstats.db"

const usage = `domainstats stores which machines contacted which domains, and when.

Usage:
  domainstats ingest [--db PATH] [--format auto|zeek|zeek-json|sysmon|defender|csv] FILE...
  domainstats stats [--db PATH] [--lookback HOURS] [--now TIME|latest] DOMAIN...
  domainstats serve [--db PATH] [--addr HOST:PORT] [--token-file FILE] [--now TIME|latest] [FILE...]
  domainstats verify [--db PATH]

Run "domainstats COMMAND --help" for the flags of each command.
`

// errUsage is returned when the command line is invalid. The message has
// already been printed.
var errUsage = errors.New("invalid command line")

// environment is the set of streams and hooks a command uses besides its
// arguments.
type environment struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	// stderrIsTerminal turns on the ingest progress bar.
	stderrIsTerminal bool

	// listening, if not nil, receives the address serve listens on.
	listening chan<- string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := environment{
		stdin:            os.Stdin,
		stdout:           os.Stdout,
		stderr:           os.Stderr,
		stderrIsTerminal: isTerminal(os.Stderr),
	}
	code := run(ctx, os.Args[1:], env)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status: 0 on
// success, 2 for an invalid command line and 1 for any other failure.
func run(ctx context.Context, args []string, env environment) int {
	if len(args) == 0 {
		fmt.Fprint(env.stderr, usage)
		return 2
	}

	logger := slog.New(slog.NewTextHandler(env.stderr, nil))

	var err error
	switch args[0] {
	case "ingest":
		err = runIngest(ctx, args[1:], env, logger)
	case "stats":
		err = runStats(ctx, args[1:], env, logger)
	case "serve":
		err = runServe(ctx, args[1:], env, logger)
	case "verify":
		err = runVerify(ctx, args[1:], env)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(env.stdout, usage)
		return 0
	default:
		fmt.Fprintf(env.stderr, "domainstats: unknown command %q\n\n%s", args[0], usage)
		return 2
	}

	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage {
			fmt.Fprintf(env.stderr, "domainstats %s: %v\n", args[0], err)
		}
		return 2
	}
	fmt.Fprintf(env.stderr, "domainstats %s: %v\n", args[0], err)
	return 1
}

// newFlagSet returns a FlagSet that prints its usage to env.stderr and
// returns parse errors instead of exiting.
func newFlagSet(name, synopsis, description string, env environment) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: domainstats %s\n\n%s\n\nFlags:\n", synopsis, description)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args. The flag package prints a parse error with the
// usage, so parseFlags returns the bare errUsage for it, which run does
// not print again.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// nowFlag is the --now flag: empty for the wall clock, "latest" for the
// newest event in the store, or an RFC 3339 time.
type nowFlag struct {
	latest bool
	at     time.Time
}

func (n *nowFlag) String() string {
	switch {
	case n.latest:
		return "latest"
	case !n.at.IsZero():
		return n.at.Format(time.RFC3339)
	}
	return ""
}

func (n *nowFlag) Set(value string) error {
	if value == "latest" {
		n.latest = true
		return nil
	}
	at, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return fmt.Errorf("expected latest or an RFC 3339 time such as 2018-03-24T17:40:00Z, got %q", value)
	}
	n.latest, n.at = false, at
	return nil
}

const nowUsage = "end of the statistics window: an RFC 3339 time, or `latest` for the newest event in the store, which suits replayed old logs (default: the current time)"

// openStore opens the store at path with the clock that now selects. A
// zero retention keeps the one stored in the file.
func openStore(path string, now nowFlag, retention time.Duration) (*domainstats.Store, error) {
	var store *domainstats.Store
	opts := &domainstats.Options{Retention: retention}

	switch {
	case now.latest:
		// The closure runs only after Open has returned, when store is set.
		opts.Now = func() time.Time {
			newest, ok := store.Newest()
			if !ok {
				return time.Now()
			}
			return newest
		}
	case !now.at.IsZero():
		at := now.at
		opts.Now = func() time.Time { return at }
	}

	store, err := domainstats.Open(path, opts)
	if errors.Is(err, domainstats.ErrLocked) {
		return nil, fmt.Errorf("open store %s: %w: another domainstats process, such as serve, has it open; stop that process, or pass the log files to serve (domainstats serve --db %s FILE...), which ingests them while it serves", path, err, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return store, nil
}

// requireStore returns an error when the store file at path does not exist,
// so a command that only reads does not create an empty store by mistake.
func requireStore(path string) error {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("store %s not found: run domainstats ingest first, or set --db", path)
		}
		return fmt.Errorf("store %s: %w", path, err)
	}
	return nil
}
