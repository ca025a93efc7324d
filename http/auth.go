package statshttp

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// PermissionURLRead is the permission a caller needs to read domain
// statistics. It has the name of the Defender permission for this API.
const PermissionURLRead = "URL.Read.All"

// ErrUnauthenticated is returned, possibly wrapped, by an [Authenticator]
// when a request carries no credentials, malformed credentials or unknown
// credentials. The handler responds to it with 401 Unauthorized.
var ErrUnauthenticated = errors.New("statshttp: unauthenticated")

// Caller is the identity that an [Authenticator] finds for a request.
type Caller struct {
	// ID names the caller for rate limiting: callers with the same ID
	// share their limits. It must not be a secret.
	ID string

	// Permissions lists what the caller may do, such as
	// [PermissionURLRead].
	Permissions []string
}

// Authenticator finds the caller of a request.
//
// Authenticate returns an error wrapping [ErrUnauthenticated] when the
// request is not authenticated, and the handler then responds with 401.
// For any other error, such as an unreachable identity provider, the
// handler logs the error and responds with 500, so the error must not
// contain a credential. An Authenticator is
// called from many goroutines at once.
type Authenticator interface {
	Authenticate(r *http.Request) (Caller, error)
}

// AuthenticatorFunc adapts a function to the [Authenticator] interface.
type AuthenticatorFunc func(r *http.Request) (Caller, error)

// Authenticate calls f(r).
func (f AuthenticatorFunc) Authenticate(r *http.Request) (Caller, error) {
	return f(r)
}

// StaticToken is a bearer token accepted by [StaticTokens] and the caller
// it authenticates.
type StaticToken struct {
	// Token is the secret that follows "Bearer " in the Authorization
	// header. It must be in the token68 syntax of RFC 7235: letters,
	// digits and -._~+/ followed by optional = padding.
	Token string

	// Caller is the identity and permissions that the token grants.
	Caller Caller
}

// StaticTokens is an [Authenticator] over a fixed set of bearer tokens. It
// compares the presented token with every configured token in constant
// time, so response times do not reveal how much of a token matched.
// A StaticTokens is safe for concurrent use by multiple goroutines.
type StaticTokens struct {
	entries []staticEntry
}

// staticEntry stores a token as its SHA-256 digest, so that every
// comparison is over 32 bytes whatever the token lengths.
type staticEntry struct {
	digest [sha256.Size]byte
	caller Caller
}

// NewStaticTokens returns a [StaticTokens] that accepts the given tokens.
// It returns an error when a token is empty, not in token68 syntax or
// given twice, or when a caller id is empty. Several tokens may share a
// caller id, for example while a token is rotated, and then share that
// caller's rate limits.
func NewStaticTokens(tokens ...StaticToken) (*StaticTokens, error) {
	if len(tokens) == 0 {
		return nil, errors.New("statshttp: no static tokens given")
	}

	entries := make([]staticEntry, 0, len(tokens))
	seen := make(map[[sha256.Size]byte]bool, len(tokens))
	for i, t := range tokens {
		// Errors name the token's position and caller, never the token.
		if !isToken68(t.Token) {
			return nil, fmt.Errorf("statshttp: static token %d (caller %q) is empty or not in token68 syntax (letters, digits, -._~+/ and trailing =)", i, t.Caller.ID)
		}
		if t.Caller.ID == "" {
			return nil, fmt.Errorf("statshttp: static token %d has an empty caller id", i)
		}

		digest := sha256.Sum256([]byte(t.Token))
		if seen[digest] {
			return nil, fmt.Errorf("statshttp: static token %d (caller %q) repeats an earlier token", i, t.Caller.ID)
		}
		seen[digest] = true

		entries = append(entries, staticEntry{
			digest: digest,
			caller: Caller{ID: t.Caller.ID, Permissions: slices.Clone(t.Caller.Permissions)},
		})
	}

	return &StaticTokens{entries: entries}, nil
}

// Authenticate returns the caller whose token the request's Authorization
// header carries, or an error wrapping [ErrUnauthenticated].
func (s *StaticTokens) Authenticate(r *http.Request) (Caller, error) {
	token, err := BearerToken(r)
	if err != nil {
		return Caller{}, err
	}

	// Compare with every entry, without stopping at a match, so the time
	// taken does not depend on which entry matched.
	digest := sha256.Sum256([]byte(token))
	match := -1
	for i := range s.entries {
		if subtle.ConstantTimeCompare(digest[:], s.entries[i].digest[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Caller{}, fmt.Errorf("%w: unknown bearer token", ErrUnauthenticated)
	}

	c := s.entries[match].caller
	return Caller{ID: c.ID, Permissions: slices.Clone(c.Permissions)}, nil
}

// BearerToken returns the token of the request's "Authorization: Bearer"
// header. The scheme name is matched without regard to case, as RFC 7235
// requires. It returns an error wrapping [ErrUnauthenticated] when the
// header is missing, repeated, of another scheme or not in token68 syntax.
// The error never contains the header's value.
func BearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", fmt.Errorf("%w: missing Authorization header", ErrUnauthenticated)
	case 1:
	default:
		return "", fmt.Errorf("%w: %d Authorization headers, expected one", ErrUnauthenticated, len(values))
	}

	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: Authorization header is not of the Bearer scheme", ErrUnauthenticated)
	}

	token = strings.TrimLeft(token, " ")
	if !isToken68(token) {
		return "", fmt.Errorf("%w: malformed bearer token", ErrUnauthenticated)
	}
	return token, nil
}

// isToken68 reports whether s matches the token68 rule of RFC 7235,
// section 2.1: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}

	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
