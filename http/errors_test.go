package statshttp

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewRequestID(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := newRequestID()
		if !isUUIDv4(id) {
			t.Fatalf("newRequestID() = %q, want a lowercase version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("newRequestID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidClientRequestID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{id: "6d8f3a2e-0b1c-4b8e-9a57-1c2d3e4f5a6b", want: true},
		{id: "x", want: true},
		{id: strings.Repeat("a", 128), want: true},
		{id: ""},
		{id: strings.Repeat("a", 129)},
		{id: "with space"},
		{id: "tab\there"},
		{id: "é"},
	}

	for _, tt := range tests {
		if got := validClientRequestID(tt.id); got != tt.want {
			t.Errorf("validClientRequestID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestTruncateInput(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "short", in: "example.com", want: "example.com"},
		{name: "at the limit", in: strings.Repeat("a", 256), want: strings.Repeat("a", 256)},
		{name: "over the limit", in: strings.Repeat("a", 300), want: strings.Repeat("a", 256) + "…"},
		{name: "cut inside a rune", in: strings.Repeat("a", 255) + "éé", want: strings.Repeat("a", 255) + "…"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := truncateInput(tt.in); got != tt.want {
				t.Errorf("truncateInput(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestWriteErrorBody(t *testing.T) {
	w := httptest.NewRecorder()
	writeError(w, http.StatusBadRequest, codeInvalidDomainName, "Domain name a<b>&c is invalid.", "id-1")

	want := `{"error":{"code":"InvalidDomainName","message":"Domain name a<b>&c is invalid.","target":"id-1"}}`
	if diff := cmp.Diff(want, w.Body.String()); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}

	wantHeader := http.Header{
		"Content-Type":           {"application/json"},
		"Content-Length":         {strconv.Itoa(len(want))},
		"Cache-Control":          {"no-store"},
		"X-Content-Type-Options": {"nosniff"},
	}
	if diff := cmp.Diff(wantHeader, w.Header()); diff != "" {
		t.Errorf("headers mismatch (-want +got):\n%s", diff)
	}
	if w.Code != http.StatusBadRequest {
		t.Errorf("status = %d, want %d", w.Code, http.StatusBadRequest)
	}
}

func TestParseLookBack(t *testing.T) {
	const retention = 720 * time.Hour

	tests := []struct {
		name      string
		query     string
		retention time.Duration
		want      int64
		wantErr   string // substring of the rejection, empty when accepted
	}{
		{name: "absent", query: "", want: 720},
		{name: "given", query: "lookBackHours=48", want: 48},
		{name: "lower case name", query: "lookbackhours=48", want: 48},
		{name: "upper case name", query: "LOOKBACKHOURS=48", want: 48},
		{name: "one", query: "lookBackHours=1", want: 1},
		{name: "the retention", query: "lookBackHours=720", want: 720},
		{name: "leading zeros", query: "lookBackHours=048", want: 48},
		{name: "short retention lowers the default", query: "", retention: 48 * time.Hour, want: 48},
		{name: "over the retention", query: "lookBackHours=721", wantErr: "from 1 to 720"},
		{name: "over a short retention", query: "lookBackHours=49", retention: 48 * time.Hour, wantErr: "from 1 to 48"},
		{name: "zero", query: "lookBackHours=0", wantErr: "lookBackHours=0"},
		{name: "negative", query: "lookBackHours=-1", wantErr: "lookBackHours=-1"},
		{name: "plus sign", query: "lookBackHours=%2B48", wantErr: "lookBackHours=+48"},
		{name: "not a number", query: "lookBackHours=abc", wantErr: "lookBackHours=abc"},
		{name: "fraction", query: "lookBackHours=1.5", wantErr: "lookBackHours=1.5"},
		{name: "empty", query: "lookBackHours=", wantErr: "lookBackHours="},
		{name: "space", query: "lookBackHours=%2048", wantErr: "lookBackHours= 48"},
		{name: "overflow", query: "lookBackHours=99999999999999999999", wantErr: "from 1 to 720"},
		{name: "repeated", query: "lookBackHours=1&lookBackHours=2", wantErr: "more than once"},
		{name: "repeated in other case", query: "lookBackHours=1&lookbackhours=1", wantErr: "more than once"},
		{name: "unknown parameter", query: "lookBackHour=48", wantErr: "Invalid input lookBackHour: unknown parameter"},
		{name: "OData option", query: "$select=host", wantErr: "Invalid input $select: unknown parameter"},
		{name: "bad escape", query: "lookBackHours=%zz", wantErr: "cannot be decoded"},
		{name: "semicolon", query: "lookBackHours=1;x=2", wantErr: "cannot be decoded"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.retention
			if r == 0 {
				r = retention
			}

			got, rejection := parseLookBack(tt.query, r)
			if tt.wantErr != "" {
				if !strings.Contains(rejection, tt.wantErr) {
					t.Errorf("parseLookBack(%q) rejection = %q, want one containing %q", tt.query, rejection, tt.wantErr)
				}
				return
			}
			if rejection != "" {
				t.Fatalf("parseLookBack(%q) rejected: %s", tt.query, rejection)
			}
			if got != tt.want {
				t.Errorf("parseLookBack(%q) = %d, want %d", tt.query, got, tt.want)
			}
		})
	}
}

func TestIsCleanPath(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{path: "/", want: true},
		{path: "/api/domains/example.com/stats", want: true},
		{path: "/api/", want: true},
		{path: ""},
		{path: "api/domains"},
		{path: "//api"},
		{path: "/api//domains"},
		{path: "/api/./domains"},
		{path: "/api/../api/domains"},
		{path: "/api/domains/.."},
	}

	for _, tt := range tests {
		if got := isCleanPath(tt.path); got != tt.want {
			t.Errorf("isCleanPath(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestStatsBodyMatchesEncodingJSON(t *testing.T) {
	first, last := "2017-07-30T13:23:48Z", "2017-08-29T13:09:05Z"
	tests := []struct {
		reason string
		body   statsBody
	}{
		{"documented example", statsBody{
			ODataContext: "https://stats.example.org" + odataContextSuffix, Host: "example.com",
			OrgPrevalence: "4070", OrganizationPrevalence: 4070, OrgFirstSeen: &first, OrgLastSeen: &last,
		}},
		{"zero prevalence with null times", statsBody{
			ODataContext: "http://127.0.0.1:8080" + odataContextSuffix, Host: "xn--bcher-kva.example",
			OrgPrevalence: "0",
		}},
		{"host header needing escapes", statsBody{
			ODataContext: "http://a\"b\\c\x01<&>é" + odataContextSuffix, Host: "example.com",
			OrgPrevalence: "1", OrganizationPrevalence: 1, OrgFirstSeen: &first, OrgLastSeen: &first,
		}},
		{"invalid UTF-8", statsBody{ODataContext: "http://\xff", Host: "h", OrgPrevalence: "-1", OrganizationPrevalence: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			want, err := marshalJSON(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(tt.body.appendJSON(nil))); diff != "" {
				t.Errorf("appendJSON mismatch (-encoding/json +appendJSON):\n%s", diff)
			}
		})
	}
}
