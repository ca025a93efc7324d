package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"

	statshttp "github.com/domainstats/domainstats/http"
)

// defaultBaseURL is the URL of serve's default address. stats uses it in
// @odata.context so that its output equals the body serve returns.
const defaultBaseURL = "http://127.0.0.1:8080"

func runStats(ctx context.Context, args []string, env environment, logger *slog.Logger) error {
	fs := newFlagSet("stats", "stats [flags] DOMAIN...",
		"Prints, for each domain, one line with the JSON body that serve returns for\n"+
			"GET /api/domains/DOMAIN/stats. Exits with status 1 if any domain got an error body,\n"+
			"such as a domain without events in the window.", env)
	db := fs.String("db", defaultDB, "store file `path`")
	lookBack := fs.Int64("lookback", 0, "window length in `hours`, from 1 to the store's retention in hours (default: 720, or the retention if shorter)")
	var now nowFlag
	fs.Var(&now, "now", nowUsage)
	baseURL := fs.String("base-url", defaultBaseURL, "scheme, host and optional path prefix that @odata.context starts with")
	zero := fs.Bool("zero-for-unknown", false, "print prevalence 0 with null first and last seen for a domain without events, instead of a NotFound error body")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(env.stderr, "domainstats stats: no domains; give one or more, such as www.example.com")
		return errUsage
	}
	// Zero is the flag's default and means "not set", so an explicit zero
	// is recognized by whether the flag was given.
	lookBackSet := false
	fs.Visit(func(f *flag.Flag) { lookBackSet = lookBackSet || f.Name == "lookback" })
	if lookBackSet && *lookBack < 1 {
		return fmt.Errorf("%w: --lookback %d: expected a number of hours from 1 to the store's retention; leave the flag out for the default", errUsage, *lookBack)
	}

	if err := requireStore(*db); err != nil {
		return err
	}
	store, err := openStore(*db, now, 0)
	if err != nil {
		return err
	}
	defer store.Close()

	// The HTTP handler builds the output, so stats and serve cannot differ.
	// It logs the cause of a 5xx response, which the body leaves out.
	handler, err := statshttp.NewHandler(store, &statshttp.Options{
		AllowAnonymous: true,
		BaseURL:        *baseURL,
		ZeroForUnknown: *zero,
		Logger:         logger,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	failed, serverErrors := 0, 0
	for _, domain := range fs.Args() {
		target := "/api/domains/" + url.PathEscape(domain) + "/stats"
		if *lookBack > 0 {
			target += "?lookBackHours=" + strconv.FormatInt(*lookBack, 10)
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)

		body := rec.Body.Bytes()
		if !bytes.HasSuffix(body, []byte("\n")) {
			body = append(body, '\n')
		}
		if _, err := env.stdout.Write(body); err != nil {
			return err
		}
		if rec.Code != http.StatusOK {
			failed++
		}
		if rec.Code >= http.StatusInternalServerError {
			serverErrors++
		}
	}

	if closeErr := store.Close(); closeErr != nil {
		return fmt.Errorf("close store %s: %w", *db, closeErr)
	}
	if serverErrors > 0 {
		return fmt.Errorf("%d of %d domains returned an error body, %d of them a server error whose cause is logged above; if the cause is a corrupt record, check the store with domainstats verify --db %s",
			failed, fs.NArg(), serverErrors, *db)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d domains returned an error body", failed, fs.NArg())
	}
	return nil
}
