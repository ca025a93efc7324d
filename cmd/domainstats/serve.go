package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	statshttp "github.com/domainstats/domainstats/http"
	"github.com/domainstats/domainstats/ingest"
)

// Server limits against slow or greedy clients. A stats request is a
// short GET with a small response, so these leave a wide margin.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

func runServe(ctx context.Context, args []string, env environment, logger *slog.Logger) error {
	fs := newFlagSet("serve", "serve [flags] [FILE...]",
		"Serves GET /api/domains/DOMAIN/stats?lookBackHours=HOURS in the shape of Microsoft Defender\n"+
			"for Endpoint's \"Get domain statistics\" API. SIGINT or SIGTERM stops it cleanly.\n"+
			"\n"+
			"Each FILE is ingested at start, as ingest does, and then read again for what was appended\n"+
			"every --follow-interval. serve holds the store file locked while it runs, so a separate\n"+
			"ingest cannot write to it: pass the log files to serve instead.\n"+
			"\n"+
			"A FILE that is missing, unreadable or of a format that is not detected, at start or\n"+
			"later, is logged once per distinct error and read again on each pass, so a log that is\n"+
			"created later or is briefly missing during rotation is picked up. A FILE whose lines\n"+
			"are all skipped at start stops serve: check --format. A last line without a line\n"+
			"break is left for the next pass, because the producer may still be writing it.", env)
	db := fs.String("db", defaultDB, "store file `path`; created if missing when FILE arguments are given")
	formatName := fs.String("format", string(ingest.FormatAuto), "`format` of the FILE arguments: auto (detect from content), zeek, zeek-json, sysmon, defender or csv")
	followInterval := fs.Duration("follow-interval", 10*time.Second, "how often to read the FILE arguments again for appended lines, as a Go `duration` such as 10s; 0 reads them only at start")
	addr := fs.String("addr", "127.0.0.1:8080", "`host:port` to listen on")
	tokenFile := fs.String("token-file", "", "`file` of accepted bearer tokens: one per line, optionally followed by a space and a comma-separated permission list (default URL.Read.All); # starts a comment")
	allowAnonymous := fs.Bool("allow-anonymous", false, "serve without authentication on a non-loopback address; without --token-file, loopback addresses are served without authentication anyway")
	var now nowFlag
	fs.Var(&now, "now", nowUsage)
	baseURL := fs.String("base-url", "", "scheme, host and optional path prefix that @odata.context starts with, when behind a proxy (default: the request's scheme and Host header)")
	zero := fs.Bool("zero-for-unknown", false, "answer a domain without events with 200 and prevalence 0, as Defender does today, instead of 404")
	rateLimit := fs.Bool("rate-limit", false, "apply Defender's per-caller rate limits")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "how long to wait for requests in flight when stopping, as a Go `duration` such as 10s")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	format, err := ingest.ParseFormat(*formatName)
	if err != nil {
		return fmt.Errorf("%w: --format: %v", errUsage, err)
	}
	if *followInterval < 0 {
		return fmt.Errorf("%w: --follow-interval must not be negative, got %s", errUsage, *followInterval)
	}
	files := fs.Args()
	if slices.Contains(files, "-") {
		return fmt.Errorf("%w: serve cannot read standard input (-); pass log files, or pipe into domainstats ingest", errUsage)
	}

	opts := &statshttp.Options{BaseURL: *baseURL, ZeroForUnknown: *zero, Logger: logger}
	if *rateLimit {
		opts.RateLimit = &statshttp.RateLimit{}
	}
	switch {
	case *tokenFile != "":
		authenticator, err := loadTokenFile(*tokenFile, logger)
		if err != nil {
			return err
		}
		opts.Authenticator = authenticator
	case *allowAnonymous || isLoopback(*addr):
		opts.AllowAnonymous = true
		logger.Warn("serving without authentication; set --token-file to require bearer tokens", "addr", *addr)
	default:
		return fmt.Errorf("%w: --addr %s is not a loopback address: set --token-file, or --allow-anonymous to serve it without authentication", errUsage, *addr)
	}

	// With log files to ingest, serve creates the store like ingest does.
	// A file that is missing or unreadable now is only logged, because it
	// may be between rotations or not yet created, and serve reads it on a
	// later pass. A directory is a mistake in the command line.
	if len(files) > 0 {
		err = checkNoDirectory(files)
	} else {
		err = requireStore(*db)
	}
	if err != nil {
		return err
	}
	store, err := openStore(*db, now, 0)
	if err != nil {
		return err
	}

	var follow *follower
	if len(files) > 0 {
		job := newIngestJob(store, format, logger, env)
		job.follow = true
		follow = newFollower(job, files, logger)
		if err := follow.initial(ctx); err != nil {
			store.Close()
			return err
		}
	}

	handler, err := statshttp.NewHandler(store, opts)
	if err != nil {
		store.Close()
		return err
	}

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		store.Close()
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}

	server := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	logger.Info("serving", "addr", listener.Addr().String(), "db", *db)
	if env.listening != nil {
		env.listening <- listener.Addr().String()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()

	// The follower writes to the store, so it must stop before the store
	// closes, also when serving fails.
	followCtx, stopFollowing := context.WithCancel(ctx)
	followDone := make(chan struct{})
	if follow != nil && *followInterval > 0 {
		logger.Info("following log files", "files", len(files), "interval", *followInterval)
		go func() {
			defer close(followDone)
			follow.follow(followCtx, *followInterval)
		}()
	} else {
		close(followDone)
	}

	var runErr error
	select {
	case err := <-serveErr:
		runErr = fmt.Errorf("serve on %s: %w", listener.Addr(), err)
	case <-ctx.Done():
		logger.Info("stopping", "reason", context.Cause(ctx))
		shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		if err := server.Shutdown(shutdownCtx); err != nil {
			logger.Error("shutdown timed out; closing open connections", "error", err)
			server.Close()
		}
		cancel()
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("serve on %s: %w", listener.Addr(), err)
		}
	}

	stopFollowing()
	<-followDone

	if err := store.Close(); err != nil {
		logger.Error("close store failed", "db", *db, "error", err)
		if runErr == nil {
			runErr = fmt.Errorf("close store %s: %w", *db, err)
		}
	}
	logger.Info("stopped")
	return runErr
}

// checkNoDirectory returns an error for the first path that is a
// directory.
func checkNoDirectory(paths []string) error {
	for _, path := range paths {
		if err := checkInput(path); errors.Is(err, errDirectory) {
			return err
		}
	}
	return nil
}

// isLoopback reports whether addr's host is a loopback IP address or
// "localhost".
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// knownPermissions are the permissions a token file may grant.
var knownPermissions = []string{statshttp.PermissionURLRead}

// loadTokenFile reads a token file: one bearer token per line, optionally
// followed by white space and a comma-separated permission list. A line
// without permissions grants URL.Read.All. Blank lines and text from # to
// the end of a line are ignored. Each token's caller id is its line
// number, counted from 1, because ids are logged and tokens must not be.
// It logs how many tokens it loaded, and warns when group or others may
// access the file.
func loadTokenFile(path string, logger *slog.Logger) (*statshttp.StaticTokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open token file: %w", err)
	}
	defer f.Close()

	// Windows reports no permission bits that mean this.
	if info, err := f.Stat(); err == nil && runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		logger.Warn("token file is accessible to group or others; restrict it with chmod 600", "file", path, "mode", fmt.Sprintf("%04o", info.Mode().Perm()))
	}

	var tokens []statshttp.StaticToken
	scanner := bufio.NewScanner(f)
	for line := 1; scanner.Scan(); line++ {
		text, _, _ := strings.Cut(scanner.Text(), "#")
		parts := strings.Fields(text)
		if len(parts) == 0 {
			continue
		}
		if len(parts) > 2 {
			return nil, fmt.Errorf("token file %s line %d: expected a token and an optional comma-separated permission list without spaces, got %d fields", path, line, len(parts))
		}

		// A bearer token is a b64token (RFC 6750, section 2.1), which has
		// no comma, so a comma means the space before the permissions is
		// missing.
		if len(parts) == 1 && strings.Contains(parts[0], ",") {
			return nil, fmt.Errorf("token file %s line %d: the token contains a comma: separate the token and its permissions with a space, as in \"TOKEN %s\"", path, line, statshttp.PermissionURLRead)
		}

		permissions := []string{statshttp.PermissionURLRead}
		if len(parts) == 2 {
			permissions = nil
			for _, p := range strings.Split(parts[1], ",") {
				p = strings.TrimSpace(p)
				if p == "" {
					continue
				}
				if !slices.Contains(knownPermissions, p) {
					return nil, fmt.Errorf("token file %s line %d: unknown permission %q: the only known permission is %s", path, line, p, strings.Join(knownPermissions, ", "))
				}
				permissions = append(permissions, p)
			}
		}
		tokens = append(tokens, statshttp.StaticToken{
			Token:  parts[0],
			Caller: statshttp.Caller{ID: fmt.Sprintf("token-line-%d", line), Permissions: permissions},
		})
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("read token file %s: %w", path, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("token file %s has no tokens: write one token per line", path)
	}

	authenticator, err := statshttp.NewStaticTokens(tokens...)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	logger.Info("loaded bearer tokens", "file", path, "tokens", len(tokens))
	return authenticator, nil
}
