package domainstats

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestNormalizeDomain(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(label63+".", 3) + strings.Repeat("b", 61)

	tests := []struct {
		reason string
		input  string
		want   string // empty: the input is rejected
	}{
		{"already normalized", "example.com", "example.com"},
		{"upper case", "EXAMPLE.COM", "example.com"},
		{"mixed case", "Www.Example.Com", "www.example.com"},
		{"trailing dot", "example.com.", "example.com"},
		{"upper case and trailing dot", "Example.COM.", "example.com"},
		{"leading and trailing spaces", "  example.com \t", "example.com"},
		{"spaces around a trailing dot", " example.com. ", "example.com"},
		{"single label", "wpad", "wpad"},
		{"localhost", "localhost", "localhost"},
		{"single label with digits", "HR001", "hr001"},
		{"service record with underscores", "_ldap._tcp.dc._msdcs.corp.example", "_ldap._tcp.dc._msdcs.corp.example"},
		{"underscore inside a label", "my_host.example.com", "my_host.example.com"},
		{"hyphens", "r3---sn-abc.example.net", "r3---sn-abc.example.net"},
		{"digits only", "1234.example", "1234.example"},
		{"reverse lookup", "25.247.63.23.in-addr.arpa", "25.247.63.23.in-addr.arpa"},
		{"IPv4 address text", "192.0.2.1", "192.0.2.1"},
		{"Unicode name", "bücher.example", "xn--bcher-kva.example"},
		{"Unicode upper case", "BÜCHER.example", "xn--bcher-kva.example"},
		{"punycode passes through", "xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"punycode upper case", "XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example"},
		{"Unicode with trailing dot", "bücher.example.", "xn--bcher-kva.example"},
		{"bidi rule violation", "\u05d0a.example", ""},
		{"full-width dot maps to a dot", "example\u3002com", "example.com"},
		{"Japanese name", "例え.jp", "xn--r8jz45g.jp"},
		{"German sharp s is kept, not mapped to ss", "straße.example", "xn--strae-oqa.example"},
		{"63-octet label", label63 + ".example", label63 + ".example"},
		{"253-octet name", name253, name253},
		{"253-octet name with trailing dot", name253 + ".", name253},

		{"empty", "", ""},
		{"only spaces", "   ", ""},
		{"only a dot", ".", ""},
		{"two trailing dots", "example.com..", ""},
		{"leading dot", ".example.com", ""},
		{"empty label inside", "example..com", ""},
		{"64-octet label", strings.Repeat("a", 64) + ".example", ""},
		{"254-octet name", name253 + "c", ""},
		{"space inside", "exa mple.com", ""},
		{"URL", "http://example.com/", ""},
		{"URL without path", "https://example.com", ""},
		{"port", "example.com:443", ""},
		{"path", "example.com/index.html", ""},
		{"user info", "user@example.com", ""},
		{"wildcard", "*.example.com", ""},
		{"invalid UTF-8", "exa\xffmple.com", ""},
		{"NUL byte", "example\x00.com", ""},
		{"invalid punycode", "xn--a.example", ""},
		{"emoji that UTS #46 maps", "\u2764\ufe0f.example", "xn--qei.example"},
		{"control character", "example\x07.com", ""},
		{"backslash", `example\.com`, ""},
		{"percent encoding", "example%2ecom", ""},
	}
	if len(tests) < 40 {
		t.Fatalf("only %d cases", len(tests))
	}

	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			got, err := NormalizeDomain(tt.input)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidDomain) {
					t.Fatalf("NormalizeDomain(%q) = %q, %v; want an error wrapping ErrInvalidDomain", tt.input, got, err)
				}
				if !strings.Contains(err.Error(), strconv.Quote(tt.input)) {
					t.Errorf("error %q does not show the value %q", err, tt.input)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeDomain(%q) failed: %v", tt.input, err)
			}
			if got != tt.want {
				t.Errorf("NormalizeDomain(%q) = %q, want %q", tt.input, got, tt.want)
			}
		})
	}
}

func TestNormalizeDomainIsIdempotent(t *testing.T) {
	for _, input := range []string{"Example.COM.", "bücher.example", "_ldap._tcp.example", "wpad"} {
		once, err := NormalizeDomain(input)
		if err != nil {
			t.Fatalf("NormalizeDomain(%q) failed: %v", input, err)
		}
		twice, err := NormalizeDomain(once)
		if err != nil {
			t.Fatalf("NormalizeDomain(%q) failed: %v", once, err)
		}
		if once != twice {
			t.Errorf("NormalizeDomain(%q) = %q, but normalizing that again gives %q", input, once, twice)
		}
	}
}

func FuzzNormalizeDomain(f *testing.F) {
	for _, seed := range []string{"example.com", "Example.COM.", "bücher.example", "xn--bcher-kva.example",
		"_ldap._tcp.example", "http://example.com:80/", "a..b", "\xff", strings.Repeat("a.", 130)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		got, err := NormalizeDomain(input)
		if err != nil {
			if !errors.Is(err, ErrInvalidDomain) {
				t.Fatalf("NormalizeDomain(%q) error %v does not wrap ErrInvalidDomain", input, err)
			}
			return
		}
		if checkErr := checkDomain(got); checkErr != nil {
			t.Fatalf("NormalizeDomain(%q) = %q, which breaks the rules: %v", input, got, checkErr)
		}
		again, err := NormalizeDomain(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeDomain(%q) = %q, not a fixed point: %q, %v", input, got, again, err)
		}
	})
}
