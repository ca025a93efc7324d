package statshttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/domainstats/domainstats"
	"github.com/google/go-cmp/cmp"
)

// Times of Defender's documented example response.
const (
	exampleFirstSeen = "2017-07-30T13:23:48Z"
	exampleLastSeen  = "2017-08-29T13:09:05Z"
)

// exampleNow ends the window a minute after the example's last event.
var exampleNow = time.Date(2017, 8, 29, 13, 10, 0, 0, time.UTC)

// exampleEvents returns events of 4,070 distinct machines contacting
// example.com, the first at exampleFirstSeen and the last at
// exampleLastSeen, as in Defender's documented example.
func exampleEvents(t testing.TB) []event {
	first := mustParseTime(t, exampleFirstSeen)
	last := mustParseTime(t, exampleLastSeen)

	const machines = 4070
	step := last.Sub(first) / (machines - 1)
	events := make([]event, 0, machines)
	for i := range machines {
		at := first.Add(time.Duration(i) * step)
		if i == machines-1 {
			at = last
		}
		events = append(events, event{domain: "example.com", machine: fmt.Sprintf("machine-%04d", i), at: at})
	}
	return events
}

// exampleStore opens a store holding exampleEvents and a few events of
// bücher.example.
func exampleStore(t testing.TB) *domainstats.Store {
	events := exampleEvents(t)
	events = append(events,
		event{domain: "bücher.example", machine: "m1", at: exampleNow.Add(-4 * time.Hour)},
		event{domain: "BÜCHER.example", machine: "m2", at: exampleNow.Add(-3 * time.Hour)},
	)
	return openStore(t, exampleNow, events...)
}

// authOptions returns options with the test authenticator.
func authOptions(t testing.TB) *Options {
	return &Options{Authenticator: testAuthenticator(t)}
}

func TestStatsDocumentedExample(t *testing.T) {
	store := openStore(t, exampleNow, exampleEvents(t)...)
	opts := authOptions(t)
	opts.BaseURL = "https://api.security.microsoft.com"
	server := startServer(t, newTestHandler(t, store, opts))

	for _, query := range []string{"", "?lookBackHours=720"} {
		t.Run("query="+query, func(t *testing.T) {
			got := send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats"+query, readerToken, nil)

			want := `{"@odata.context":"https://api.security.microsoft.com/api/$metadata#microsoft.windowsDefenderATP.api.InOrgDomainStats",` +
				`"host":"example.com","orgPrevalence":"4070","organizationPrevalence":4070,` +
				`"orgFirstSeen":"2017-07-30T13:23:48Z","orgLastSeen":"2017-08-29T13:09:05Z"}`
			if diff := cmp.Diff(want, got.body); diff != "" {
				t.Errorf("body mismatch (-want +got):\n%s", diff)
			}
			if got.status != http.StatusOK {
				t.Errorf("status = %d, want 200", got.status)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if id := got.header.Get("request-id"); !isUUIDv4(id) {
				t.Errorf("request-id = %q, want a version 4 UUID", id)
			}
		})
	}
}

func TestStatsLookBackMatchesStore(t *testing.T) {
	store := openStore(t, exampleNow, exampleEvents(t)...)
	server := startServer(t, newTestHandler(t, store, authOptions(t)))

	tests := []struct {
		query string
		hours int
	}{
		{query: "", hours: 720},
		{query: "?lookBackHours=720", hours: 720},
		{query: "?lookBackHours=48", hours: 48},
		{query: "?LookBackHours=2", hours: 2},
	}

	for _, tt := range tests {
		t.Run(fmt.Sprintf("hours=%d query=%s", tt.hours, tt.query), func(t *testing.T) {
			// The store decides which events the window contains. The
			// handler must pass it the hours and render its result unchanged.
			stats, err := store.StatsLookBack("example.com", time.Duration(tt.hours)*time.Hour)
			if err != nil {
				t.Fatalf("StatsLookBack(%d hours): %v", tt.hours, err)
			}
			first := stats.OrgFirstSeen.Format(timeLayout)
			last := stats.OrgLastSeen.Format(timeLayout)
			want := statsBody{
				ODataContext:           server.URL + odataContextSuffix,
				Host:                   "example.com",
				OrgPrevalence:          strconv.FormatInt(stats.OrgPrevalence, 10),
				OrganizationPrevalence: stats.OrgPrevalence,
				OrgFirstSeen:           &first,
				OrgLastSeen:            &last,
			}

			got := send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats"+tt.query, readerToken, nil)
			if got.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", got.status, got.body)
			}

			var body statsBody
			if err := json.Unmarshal([]byte(got.body), &body); err != nil {
				t.Fatalf("decoding %s: %v", got.body, err)
			}
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatsContextFromRequest(t *testing.T) {
	store := exampleStore(t)
	server := startServer(t, newTestHandler(t, store, authOptions(t)))

	got := send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats", readerToken, nil)

	want := `"@odata.context":"` + server.URL + `/api/$metadata#microsoft.windowsDefenderATP.api.InOrgDomainStats"`
	if !strings.Contains(got.body, want) {
		t.Errorf("body %s does not contain %s", got.body, want)
	}
}

func TestStatsTruncatesToSeconds(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	store := openStore(t, now,
		event{domain: "example.org", machine: "m1", at: time.Date(2024, 3, 1, 9, 0, 1, 999_000_000, time.UTC)},
		event{domain: "example.org", machine: "m2", at: time.Date(2024, 3, 1, 10, 30, 59, 500_000_000, time.FixedZone("UTC+2", 2*3600))},
	)
	server := startServer(t, newTestHandler(t, store, authOptions(t)))

	got := send(t, http.MethodGet, server.URL+"/api/domains/example.org/stats", readerToken, nil)

	for _, want := range []string{`"orgFirstSeen":"2024-03-01T08:30:59Z"`, `"orgLastSeen":"2024-03-01T09:00:01Z"`} {
		if !strings.Contains(got.body, want) {
			t.Errorf("body %s does not contain %s", got.body, want)
		}
	}
}

func TestStatsHead(t *testing.T) {
	store := exampleStore(t)
	server := startServer(t, newTestHandler(t, store, authOptions(t)))
	url := server.URL + "/api/domains/example.com/stats"

	get := send(t, http.MethodGet, url, readerToken, nil)
	head := send(t, http.MethodHead, url, readerToken, nil)

	if head.status != http.StatusOK {
		t.Errorf("HEAD status = %d, want 200", head.status)
	}
	if head.body != "" {
		t.Errorf("HEAD body = %q, want empty", head.body)
	}
	if got, want := head.header.Get("Content-Length"), strconv.Itoa(len(get.body)); got != want {
		t.Errorf("HEAD Content-Length = %s, want %s, the length of the GET body", got, want)
	}
	if ct := head.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("HEAD Content-Type = %q, want application/json", ct)
	}

	missing := send(t, http.MethodHead, server.URL+"/api/domains/unseen.example/stats", readerToken, nil)
	if missing.status != http.StatusNotFound || missing.body != "" {
		t.Errorf("HEAD of an unseen domain = %d with body %q, want 404 without a body", missing.status, missing.body)
	}
}

func TestStatsDomainSpellings(t *testing.T) {
	store := exampleStore(t)
	server := startServer(t, newTestHandler(t, store, authOptions(t)))

	tests := []struct {
		name     string
		path     string // escaped, as sent on the wire
		wantHost string
	}{
		{name: "plain", path: "example.com", wantHost: "example.com"},
		{name: "upper case", path: "EXAMPLE.COM", wantHost: "example.com"},
		{name: "percent-encoded ASCII", path: "%65xample%2Ecom", wantHost: "example.com"},
		{name: "percent-encoded Unicode", path: "b%C3%BCcher.example", wantHost: "xn--bcher-kva.example"},
		{name: "Unicode upper case", path: "B%C3%9CCHER.EXAMPLE", wantHost: "xn--bcher-kva.example"},
		{name: "punycode", path: "xn--bcher-kva.example", wantHost: "xn--bcher-kva.example"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := send(t, http.MethodGet, server.URL+"/api/domains/"+tt.path+"/stats", readerToken, nil)
			if got.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", got.status, got.body)
			}

			var body statsBody
			if err := json.Unmarshal([]byte(got.body), &body); err != nil {
				t.Fatalf("decoding %s: %v", got.body, err)
			}
			if body.Host != tt.wantHost {
				t.Errorf("host = %q, want %q", body.Host, tt.wantHost)
			}
		})
	}
}

func TestStatsZeroForUnknown(t *testing.T) {
	store := exampleStore(t)
	opts := authOptions(t)
	opts.ZeroForUnknown = true
	opts.BaseURL = "https://stats.example.org/"
	server := startServer(t, newTestHandler(t, store, opts))

	got := send(t, http.MethodGet, server.URL+"/api/domains/Unseen.Example/stats", readerToken, nil)

	want := `{"@odata.context":"https://stats.example.org/api/$metadata#microsoft.windowsDefenderATP.api.InOrgDomainStats",` +
		`"host":"unseen.example","orgPrevalence":"0","organizationPrevalence":0,"orgFirstSeen":null,"orgLastSeen":null}`
	if diff := cmp.Diff(want, got.body); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
	if got.status != http.StatusOK {
		t.Errorf("status = %d, want 200", got.status)
	}

	// Invalid input is still rejected.
	bad := send(t, http.MethodGet, server.URL+"/api/domains/a..b/stats", readerToken, nil)
	if bad.status != http.StatusBadRequest {
		t.Errorf("invalid domain status = %d, want 400", bad.status)
	}
}

// errorCase is a request that must fail with an OData error body.
type errorCase struct {
	name       string
	method     string
	path       string // after the server URL, escaped
	token      string
	header     http.Header
	wantStatus int
	wantCode   string
	wantHeader http.Header // headers the response must carry
	wantInMsg  string      // substring of the message
}

// checkErrorResponse checks status, code, message, headers and that the
// target equals the request-id header.
func checkErrorResponse(t *testing.T, tc errorCase, got response) {
	t.Helper()

	if got.status != tc.wantStatus {
		t.Errorf("status = %d, want %d; body %s", got.status, tc.wantStatus, got.body)
	}

	var body errorBody
	dec := json.NewDecoder(strings.NewReader(got.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("decoding the error body %s: %v", got.body, err)
	}
	if body.Error.Code != tc.wantCode {
		t.Errorf("code = %q, want %q", body.Error.Code, tc.wantCode)
	}
	if !strings.Contains(body.Error.Message, tc.wantInMsg) {
		t.Errorf("message = %q, want one containing %q", body.Error.Message, tc.wantInMsg)
	}

	id := got.header.Get("request-id")
	if !isUUIDv4(id) {
		t.Errorf("request-id = %q, want a version 4 UUID", id)
	}
	if body.Error.Target != id {
		t.Errorf("target = %q, want the request-id header %q", body.Error.Target, id)
	}

	for name, values := range tc.wantHeader {
		if diff := cmp.Diff(values, got.header.Values(name)); diff != "" {
			t.Errorf("header %s mismatch (-want +got):\n%s", name, diff)
		}
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if strings.Contains(got.body, readerToken) || strings.Contains(got.body, noPermToken) {
		t.Errorf("body %s contains a token", got.body)
	}
}

func TestStatsErrors(t *testing.T) {
	store := exampleStore(t)
	server := startServer(t, newTestHandler(t, store, authOptions(t)))

	const stats = "/api/domains/example.com/stats"
	bearer := http.Header{"WWW-Authenticate": {"Bearer"}}

	tests := []errorCase{
		{name: "invalid domain", path: "/api/domains/a..b/stats", token: readerToken,
			wantStatus: 400, wantCode: "InvalidDomainName", wantInMsg: "Domain name a..b is invalid"},
		{name: "domain with encoded slash", path: "/api/domains/a%2Fb.com/stats", token: readerToken,
			wantStatus: 400, wantCode: "InvalidDomainName", wantInMsg: "Domain name a/b.com is invalid"},
		{name: "pasted URL", path: "/api/domains/https:%2F%2Fevil.example.net%2F/stats", token: readerToken,
			wantStatus: 400, wantCode: "InvalidDomainName", wantInMsg: "Domain name https://evil.example.net/ is invalid"},
		{name: "domain with space", path: "/api/domains/exa%20mple.com/stats", token: readerToken,
			wantStatus: 400, wantCode: "InvalidDomainName", wantInMsg: "exa mple.com"},
		{name: "look-back zero", path: stats + "?lookBackHours=0", token: readerToken,
			wantStatus: 400, wantCode: "InvalidInput", wantInMsg: "lookBackHours=0"},
		{name: "look-back negative", path: stats + "?lookBackHours=-5", token: readerToken,
			wantStatus: 400, wantCode: "InvalidInput", wantInMsg: "lookBackHours=-5"},
		{name: "look-back over retention", path: stats + "?lookBackHours=721", token: readerToken,
			wantStatus: 400, wantCode: "InvalidInput", wantInMsg: "from 1 to 720"},
		{name: "look-back not a number", path: stats + "?lookBackHours=week", token: readerToken,
			wantStatus: 400, wantCode: "InvalidInput", wantInMsg: "lookBackHours=week"},
		{name: "look-back repeated", path: stats + "?lookBackHours=1&lookBackHours=2", token: readerToken,
			wantStatus: 400, wantCode: "InvalidInput", wantInMsg: "more than once"},
		{name: "unknown parameter", path: stats + "?lookbackhour=2", token: readerToken,
			wantStatus: 400, wantCode: "InvalidInput", wantInMsg: "unknown parameter"},
		{name: "undecodable query", path: stats + "?lookBackHours=%zz", token: readerToken,
			wantStatus: 400, wantCode: "InvalidInput", wantInMsg: "cannot be decoded"},
		{name: "no token", path: stats,
			wantStatus: 401, wantCode: "Unauthorized", wantHeader: bearer},
		{name: "unknown token", path: stats, token: "not-a-known-token",
			wantStatus: 401, wantCode: "Unauthorized", wantHeader: bearer},
		{name: "malformed token", path: stats, header: http.Header{"Authorization": {"Bearer a b"}},
			wantStatus: 401, wantCode: "Unauthorized", wantHeader: bearer},
		{name: "basic scheme", path: stats, header: http.Header{"Authorization": {"Basic " + readerToken}},
			wantStatus: 401, wantCode: "Unauthorized", wantHeader: bearer},
		{name: "token before invalid input", path: "/api/domains/a..b/stats",
			wantStatus: 401, wantCode: "Unauthorized", wantHeader: bearer},
		{name: "token without permission", path: stats, token: noPermToken,
			wantStatus: 403, wantCode: "Forbidden", wantInMsg: "URL.Read.All"},
		{name: "domain without events", path: "/api/domains/unseen.example/stats", token: readerToken,
			wantStatus: 404, wantCode: "NotFound", wantInMsg: "unseen.example has no events in the last 720 hours"},
		{name: "domain outside a short window", path: "/api/domains/xn--bcher-kva.example/stats?lookBackHours=1", token: readerToken,
			wantStatus: 404, wantCode: "NotFound", wantInMsg: "in the last hour."},
		{name: "unknown route", path: "/api/machines", token: readerToken,
			wantStatus: 404, wantCode: "NotFound", wantInMsg: "/api/machines"},
		{name: "unknown route without token", path: "/",
			wantStatus: 404, wantCode: "NotFound"},
		{name: "trailing slash", path: stats + "/", token: readerToken,
			wantStatus: 404, wantCode: "NotFound"},
		{name: "unclean path", path: "/api//domains/example.com/stats", token: readerToken,
			wantStatus: 404, wantCode: "NotFound"},
		{name: "dot segment", path: "/api/domains/example.com/./stats", token: readerToken,
			wantStatus: 404, wantCode: "NotFound"},
		{name: "POST", method: http.MethodPost, path: stats, token: readerToken,
			wantStatus: 405, wantCode: "MethodNotAllowed", wantInMsg: "POST", wantHeader: http.Header{"Allow": {"GET, HEAD"}}},
		{name: "DELETE without token", method: http.MethodDelete, path: stats,
			wantStatus: 405, wantCode: "MethodNotAllowed", wantHeader: http.Header{"Allow": {"GET, HEAD"}}},
		{name: "OPTIONS", method: http.MethodOptions, path: stats, token: readerToken,
			wantStatus: 405, wantCode: "MethodNotAllowed", wantHeader: http.Header{"Allow": {"GET, HEAD"}}},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}

			got := send(t, method, server.URL+tc.path, tc.token, tc.header)
			checkErrorResponse(t, tc, got)
		})
	}
}

func TestStatsRequestIDsDiffer(t *testing.T) {
	store := exampleStore(t)
	server := startServer(t, newTestHandler(t, store, authOptions(t)))

	first := send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats", "", nil)
	second := send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats", "", nil)

	if a, b := first.header.Get("request-id"), second.header.Get("request-id"); a == b {
		t.Errorf("two responses share request-id %q", a)
	}
}

func TestStatsClientRequestID(t *testing.T) {
	store := exampleStore(t)
	server := startServer(t, newTestHandler(t, store, authOptions(t)))
	url := server.URL + "/api/domains/example.com/stats"

	const clientID = "7b0e6c1a-5d2f-4e88-9c3b-2a1f0e9d8c7b"
	got := send(t, http.MethodGet, url, readerToken, http.Header{"Client-Request-Id": {clientID}})
	if echoed := got.header.Get("client-request-id"); echoed != clientID {
		t.Errorf("client-request-id = %q, want the request's %q", echoed, clientID)
	}
	if id := got.header.Get("request-id"); id == clientID || !isUUIDv4(id) {
		t.Errorf("request-id = %q, want a fresh version 4 UUID", id)
	}

	long := send(t, http.MethodGet, url, readerToken, http.Header{"Client-Request-Id": {strings.Repeat("x", 200)}})
	if echoed := long.header.Values("client-request-id"); len(echoed) != 0 {
		t.Errorf("client-request-id of 200 bytes echoed as %q, want no header", echoed)
	}

	none := send(t, http.MethodGet, url, readerToken, nil)
	if echoed := none.header.Values("client-request-id"); len(echoed) != 0 {
		t.Errorf("client-request-id = %q without one in the request, want no header", echoed)
	}
}

func TestStatsRateLimit(t *testing.T) {
	store := exampleStore(t)
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := authOptions(t)
	opts.RateLimit = &RateLimit{}
	opts.Now = clock.Now
	server := startServer(t, newTestHandler(t, store, opts))
	url := server.URL + "/api/domains/example.com/stats"

	for i := range 100 {
		got := send(t, http.MethodGet, url, readerToken, nil)
		if got.status != http.StatusOK {
			t.Fatalf("call %d of 100 status = %d, want 200; body %s", i+1, got.status, got.body)
		}
	}

	limited := send(t, http.MethodGet, url, readerToken, nil)
	checkErrorResponse(t, errorCase{
		wantStatus: 429,
		wantCode:   "TooManyRequests",
		wantInMsg:  "100 calls per minute",
		wantHeader: http.Header{"Retry-After": {"1"}},
	}, limited)

	// Other callers have their own limits.
	other := send(t, http.MethodGet, url, noPermToken, nil)
	if other.status != http.StatusForbidden {
		t.Errorf("other caller status = %d, want 403 from its own check, not 429", other.status)
	}

	clock.Advance(time.Second)
	again := send(t, http.MethodGet, url, readerToken, nil)
	if again.status != http.StatusOK {
		t.Errorf("status after Retry-After = %d, want 200; body %s", again.status, again.body)
	}
}

func TestStatsRateLimitAnonymous(t *testing.T) {
	store := exampleStore(t)
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	server := startServer(t, newTestHandler(t, store, &Options{
		AllowAnonymous: true,
		RateLimit:      &RateLimit{PerMinute: -1, PerHour: 2},
		Now:            clock.Now,
	}))
	url := server.URL + "/api/domains/example.com/stats"

	for i := range 2 {
		if got := send(t, http.MethodGet, url, "", nil); got.status != http.StatusOK {
			t.Fatalf("anonymous call %d status = %d, want 200; body %s", i+1, got.status, got.body)
		}
	}

	limited := send(t, http.MethodGet, url, "", nil)
	checkErrorResponse(t, errorCase{
		wantStatus: 429,
		wantCode:   "TooManyRequests",
		wantInMsg:  "2 calls per hour",
		wantHeader: http.Header{"Retry-After": {"1800"}},
	}, limited)
}

func TestStatsPrefixMount(t *testing.T) {
	store := exampleStore(t)
	opts := authOptions(t)
	opts.BaseURL = "https://soc.example.org/defender"
	handler := newTestHandler(t, store, opts)

	mux := http.NewServeMux()
	mux.Handle("/defender/", http.StripPrefix("/defender", handler))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	})
	server := startServer(t, mux)

	got := send(t, http.MethodGet, server.URL+"/defender/api/domains/example.com/stats", readerToken, nil)
	if got.status != http.StatusOK {
		t.Fatalf("status under the prefix = %d, want 200; body %s", got.status, got.body)
	}
	want := `"@odata.context":"https://soc.example.org/defender/api/$metadata#`
	if !strings.Contains(got.body, want) {
		t.Errorf("body %s does not contain %s", got.body, want)
	}

	health := send(t, http.MethodGet, server.URL+"/healthz", "", nil)
	if health.status != http.StatusOK || health.body != "ok" {
		t.Errorf("host route = %d %q, want 200 \"ok\"", health.status, health.body)
	}

	unknown := send(t, http.MethodGet, server.URL+"/defender/api/unknown", readerToken, nil)
	checkErrorResponse(t, errorCase{wantStatus: 404, wantCode: "NotFound", wantInMsg: "/api/unknown"}, unknown)

	unprefixed := send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats", readerToken, nil)
	if unprefixed.status != http.StatusNotFound || unprefixed.header.Get("request-id") != "" {
		t.Errorf("path without the prefix = %d with request-id %q, want the host mux's own 404",
			unprefixed.status, unprefixed.header.Get("request-id"))
	}
}

func TestStatsSharedMux(t *testing.T) {
	store := exampleStore(t)
	handler := newTestHandler(t, store, authOptions(t))

	mux := http.NewServeMux()
	mux.Handle("/api/domains/", handler)
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "v1")
	})
	server := startServer(t, mux)

	got := send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats", readerToken, nil)
	if got.status != http.StatusOK {
		t.Errorf("stats status = %d, want 200; body %s", got.status, got.body)
	}

	version := send(t, http.MethodGet, server.URL+"/api/version", "", nil)
	if version.status != http.StatusOK || version.body != "v1" {
		t.Errorf("host route = %d %q, want 200 \"v1\"", version.status, version.body)
	}
}

func TestStatsAnonymous(t *testing.T) {
	store := exampleStore(t)
	server := startServer(t, newTestHandler(t, store, &Options{AllowAnonymous: true}))

	got := send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats", "", nil)
	if got.status != http.StatusOK {
		t.Errorf("anonymous status = %d, want 200; body %s", got.status, got.body)
	}
}

func TestStatsInternalErrors(t *testing.T) {
	const secret = "idp-secret-token"

	tests := []struct {
		name    string
		opts    func(*Options)
		close   bool   // close the store before the request
		wantLog string // substring of the logged error
	}{
		{
			name: "store closed",
			opts: func(o *Options) {
				o.Authenticator = testAuthenticator(t)
			},
			close:   true,
			wantLog: "store closed",
		},
		{
			name: "authenticator failure",
			opts: func(o *Options) {
				o.Authenticator = AuthenticatorFunc(func(*http.Request) (Caller, error) {
					return Caller{}, errors.New("identity provider unreachable")
				})
			},
			wantLog: "identity provider unreachable",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := domainstats.Open(filepath.Join(t.TempDir(), "stats.db"), &domainstats.Options{Now: func() time.Time { return exampleNow }})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { _ = store.Close() })

			var logs bytes.Buffer
			opts := &Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
			tt.opts(opts)
			server := startServer(t, newTestHandler(t, store, opts))

			if tt.close {
				if err := store.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}

			got := send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats", readerToken,
				http.Header{"Client-Request-Id": {"client-42"}, "X-Api-Key": {secret}})
			checkErrorResponse(t, errorCase{wantStatus: 500, wantCode: "InternalServerError"}, got)
			if strings.Contains(got.body, tt.wantLog) {
				t.Errorf("500 body %s contains the internal error", got.body)
			}

			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("decoding the log line %q: %v", logs.String(), err)
			}
			if line["request_id"] != got.header.Get("request-id") {
				t.Errorf("logged request_id = %v, want %q", line["request_id"], got.header.Get("request-id"))
			}
			if line["client_request_id"] != "client-42" {
				t.Errorf("logged client_request_id = %v, want client-42", line["client_request_id"])
			}
			if errText, _ := line["error"].(string); !strings.Contains(errText, tt.wantLog) {
				t.Errorf("logged error = %q, want one containing %q", errText, tt.wantLog)
			}
			if line["level"] != "ERROR" {
				t.Errorf("logged level = %v, want ERROR", line["level"])
			}
			if strings.Contains(logs.String(), readerToken) || strings.Contains(logs.String(), secret) {
				t.Errorf("log %s contains a token", logs.String())
			}
		})
	}
}

func TestStatsLogsOnlyServerErrors(t *testing.T) {
	store := exampleStore(t)
	var logs bytes.Buffer
	opts := authOptions(t)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	server := startServer(t, newTestHandler(t, store, opts))

	send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats", readerToken, nil)
	send(t, http.MethodGet, server.URL+"/api/domains/a..b/stats", readerToken, nil)
	send(t, http.MethodGet, server.URL+"/api/domains/example.com/stats", "wrong-token", nil)
	send(t, http.MethodPost, server.URL+"/api/domains/example.com/stats", readerToken, nil)

	if logs.Len() != 0 {
		t.Errorf("log after 2xx and 4xx responses = %q, want empty", logs.String())
	}
}

func TestNewHandlerRejects(t *testing.T) {
	store := openStore(t, exampleNow)
	auth := testAuthenticator(t)

	tests := []struct {
		name  string
		store *domainstats.Store
		opts  *Options
		want  string // substring of the error
	}{
		{name: "nil store", opts: &Options{AllowAnonymous: true}, want: "store is nil"},
		{name: "nil options", store: store, want: "no Authenticator"},
		{name: "zero options", store: store, opts: &Options{}, want: "no Authenticator"},
		{name: "anonymous and authenticator", store: store, opts: &Options{Authenticator: auth, AllowAnonymous: true}, want: "both set"},
		{name: "relative base URL", store: store, opts: &Options{Authenticator: auth, BaseURL: "/defender"}, want: "BaseURL"},
		{name: "ftp base URL", store: store, opts: &Options{Authenticator: auth, BaseURL: "ftp://example.org"}, want: "BaseURL"},
		{name: "base URL with query", store: store, opts: &Options{Authenticator: auth, BaseURL: "https://example.org/?a=1"}, want: "BaseURL"},
		{name: "base URL with user", store: store, opts: &Options{Authenticator: auth, BaseURL: "https://u:p@example.org"}, want: "BaseURL"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHandler(tt.store, tt.opts)
			if err == nil {
				t.Fatalf("NewHandler returned %T, want an error", h)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewHandler error = %q, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestStatsRateLimitConcurrent(t *testing.T) {
	store := exampleStore(t)
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := authOptions(t)
	opts.RateLimit = &RateLimit{PerMinute: 150, PerHour: -1}
	opts.Now = clock.Now
	server := startServer(t, newTestHandler(t, store, opts))
	url := server.URL + "/api/domains/example.com/stats"

	// 8 goroutines send 40 requests each on a stopped clock, so exactly
	// the 150 calls of the bucket succeed, however the requests interleave.
	const workers, perWorker = 8, 40
	statuses := make(chan int, workers*perWorker)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			// send calls t.Fatalf, which only the test goroutine may call,
			// so these requests report errors with t.Errorf.
			for range perWorker {
				req, err := http.NewRequest(http.MethodGet, url, nil)
				if err != nil {
					t.Errorf("NewRequest: %v", err)
					return
				}
				req.Header.Set("Authorization", "Bearer "+readerToken)

				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("GET %s: %v", url, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses <- resp.StatusCode
			}
		})
	}
	wg.Wait()
	close(statuses)

	counts := make(map[int]int)
	for status := range statuses {
		counts[status]++
	}
	want := map[int]int{http.StatusOK: 150, http.StatusTooManyRequests: workers*perWorker - 150}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("statuses of concurrent requests mismatch (-want +got):\n%s", diff)
	}
}
