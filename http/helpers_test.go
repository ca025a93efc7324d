package statshttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/domainstats/domainstats"
)

// Bearer tokens of the test authenticator.
const (
	readerToken    = "reader-token-0123456789"
	noPermToken    = "no-permission-token-42"
	readerCallerID = "soar-reader"
)

// event is one recorded contact of machine with domain.
type event struct {
	domain  string
	machine string
	at      time.Time
}

// openStore opens a real store in a temporary folder whose windows end at
// now, records events and flushes them.
func openStore(t testing.TB, now time.Time, events ...event) *domainstats.Store {
	t.Helper()

	return openStoreWith(t, &domainstats.Options{Now: func() time.Time { return now }}, events...)
}

// openStoreWith opens a real store in a temporary folder with opts, whose
// background flush it turns off, records events and flushes them.
func openStoreWith(t testing.TB, opts *domainstats.Options, events ...event) *domainstats.Store {
	t.Helper()

	opts.FlushInterval = -1
	store, err := domainstats.Open(filepath.Join(t.TempDir(), "stats.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	for _, e := range events {
		if err := store.Record(e.domain, e.machine, e.at); err != nil {
			t.Fatalf("Record(%q, %q, %v): %v", e.domain, e.machine, e.at, err)
		}
	}
	if err := store.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return store
}

// testAuthenticator returns a StaticTokens that accepts readerToken with
// the read permission and noPermToken without it.
func testAuthenticator(t testing.TB) *StaticTokens {
	t.Helper()

	tokens, err := NewStaticTokens(
		StaticToken{Token: readerToken, Caller: Caller{ID: readerCallerID, Permissions: []string{PermissionURLRead}}},
		StaticToken{Token: noPermToken, Caller: Caller{ID: "no-permission", Permissions: []string{"Machine.Read.All"}}},
	)
	if err != nil {
		t.Fatalf("NewStaticTokens: %v", err)
	}
	return tokens
}

// startServer serves handler on a loopback port until the test ends.
func startServer(t testing.TB, handler http.Handler) *httptest.Server {
	t.Helper()

	server := httptest.NewServer(handler)
	t.Cleanup(server.Close)
	return server
}

// newTestHandler returns a handler over store with opts, failing the test
// when NewHandler rejects opts.
func newTestHandler(t testing.TB, store *domainstats.Store, opts *Options) http.Handler {
	t.Helper()

	h, err := NewHandler(store, opts)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	return h
}

// response is what a test reads back from a request.
type response struct {
	status int
	header http.Header
	body   string
}

// send issues one request with the given headers and reads the response.
// The token, when not empty, goes into an Authorization: Bearer header.
func send(t testing.TB, method, url, token string, header http.Header) response {
	t.Helper()

	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("NewRequest(%s, %s): %v", method, url, err)
	}
	for name, values := range header {
		req.Header[name] = values
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}

	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of %s %s: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// fakeClock is a settable clock for the rate limits.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// mustParseTime parses an RFC 3339 time or fails the test.
func mustParseTime(t testing.TB, s string) time.Time {
	t.Helper()

	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time.Parse(%q): %v", s, err)
	}
	return at
}

// isUUIDv4 reports whether s is a lowercase version 4 UUID.
func isUUIDv4(s string) bool {
	if len(s) != 36 || s[14] != '4' || !strings.ContainsRune("89ab", rune(s[19])) {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
	}
	return true
}
