package statshttp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name      string
		headers   []string // values of Authorization, in order
		wantToken string
		wantErr   bool
	}{
		{name: "valid", headers: []string{"Bearer abc.DEF-123_~+/=="}, wantToken: "abc.DEF-123_~+/=="},
		{name: "scheme in lower case", headers: []string{"bearer abc"}, wantToken: "abc"},
		{name: "scheme in upper case", headers: []string{"BEARER abc"}, wantToken: "abc"},
		{name: "several spaces", headers: []string{"Bearer   abc"}, wantToken: "abc"},
		{name: "missing", wantErr: true},
		{name: "empty", headers: []string{""}, wantErr: true},
		{name: "scheme only", headers: []string{"Bearer"}, wantErr: true},
		{name: "scheme and space", headers: []string{"Bearer "}, wantErr: true},
		{name: "basic scheme", headers: []string{"Basic dXNlcjpwYXNz"}, wantErr: true},
		{name: "token with space", headers: []string{"Bearer abc def"}, wantErr: true},
		{name: "token with comma", headers: []string{"Bearer abc,def"}, wantErr: true},
		{name: "padding only", headers: []string{"Bearer ==="}, wantErr: true},
		{name: "padding in the middle", headers: []string{"Bearer ab=c"}, wantErr: true},
		{name: "non-ASCII token", headers: []string{"Bearer jeton-é"}, wantErr: true},
		{name: "two headers", headers: []string{"Bearer abc", "Bearer abc"}, wantErr: true},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/api/domains/example.com/stats", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}

			token, err := BearerToken(r)
			if tt.wantErr {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("BearerToken(%q) error = %v, want one wrapping ErrUnauthenticated", tt.headers, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("BearerToken(%q): %v", tt.headers, err)
			}
			if token != tt.wantToken {
				t.Errorf("BearerToken(%q) = %q, want %q", tt.headers, token, tt.wantToken)
			}
		})
	}
}

func TestBearerTokenErrorOmitsToken(t *testing.T) {
	const secret = "s3cret"
	for _, header := range []string{"Bearer " + secret + " extra", "Basic " + secret, "Bearer " + secret + ","} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", header)

		_, err := BearerToken(r)
		if err == nil {
			t.Fatalf("BearerToken(%q) succeeded, want an error", header)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("BearerToken(%q) error %q contains the token", header, err)
		}
	}
}

func TestStaticTokensAuthenticate(t *testing.T) {
	tokens := testAuthenticator(t)

	tests := []struct {
		name    string
		header  string
		want    Caller
		wantErr bool
	}{
		{name: "reader", header: "Bearer " + readerToken, want: Caller{ID: readerCallerID, Permissions: []string{PermissionURLRead}}},
		{name: "other permission", header: "Bearer " + noPermToken, want: Caller{ID: "no-permission", Permissions: []string{"Machine.Read.All"}}},
		{name: "unknown token", header: "Bearer unknown", wantErr: true},
		{name: "prefix of a token", header: "Bearer " + readerToken[:len(readerToken)-1], wantErr: true},
		{name: "token with suffix", header: "Bearer " + readerToken + "0", wantErr: true},
		{name: "token in other case", header: "Bearer " + strings.ToUpper(readerToken), wantErr: true},
		{name: "missing header", wantErr: true},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}

			got, err := tokens.Authenticate(r)
			if tt.wantErr {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("Authenticate error = %v, want one wrapping ErrUnauthenticated", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Authenticate mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStaticTokensCopiesPermissions(t *testing.T) {
	permissions := []string{PermissionURLRead}
	tokens, err := NewStaticTokens(StaticToken{Token: "abc", Caller: Caller{ID: "c", Permissions: permissions}})
	if err != nil {
		t.Fatalf("NewStaticTokens: %v", err)
	}
	permissions[0] = "changed by the caller"

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer abc")
	got, err := tokens.Authenticate(r)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	got.Permissions[0] = "changed by the handler"

	again, err := tokens.Authenticate(r)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if diff := cmp.Diff([]string{PermissionURLRead}, again.Permissions); diff != "" {
		t.Errorf("permissions after changes to returned slices mismatch (-want +got):\n%s", diff)
	}
}

func TestNewStaticTokensRejects(t *testing.T) {
	const secret = "secret-token"
	reader := Caller{ID: "reader", Permissions: []string{PermissionURLRead}}

	tests := []struct {
		name   string
		tokens []StaticToken
	}{
		{name: "no tokens"},
		{name: "empty token", tokens: []StaticToken{{Token: "", Caller: reader}}},
		{name: "token with space", tokens: []StaticToken{{Token: secret + " x", Caller: reader}}},
		{name: "empty caller id", tokens: []StaticToken{{Token: secret}}},
		{name: "repeated token", tokens: []StaticToken{{Token: secret, Caller: reader}, {Token: secret, Caller: Caller{ID: "other"}}}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewStaticTokens(tt.tokens...)
			if err == nil {
				t.Fatal("NewStaticTokens succeeded, want an error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("NewStaticTokens error %q contains the token", err)
			}
		})
	}
}

func TestStaticTokensSharedCallerID(t *testing.T) {
	reader := Caller{ID: "reader", Permissions: []string{PermissionURLRead}}
	tokens, err := NewStaticTokens(StaticToken{Token: "old", Caller: reader}, StaticToken{Token: "new", Caller: reader})
	if err != nil {
		t.Fatalf("NewStaticTokens with two tokens of one caller: %v", err)
	}

	for _, token := range []string{"old", "new"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		got, err := tokens.Authenticate(r)
		if err != nil {
			t.Fatalf("Authenticate(%s): %v", token, err)
		}
		if got.ID != "reader" {
			t.Errorf("Authenticate(%s).ID = %q, want %q", token, got.ID, "reader")
		}
	}
}
