package domainstats

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits on domain names, from RFC 1035 section 2.3.4 as applied to the
// text form without the trailing dot.
const (
	maxDomainLength = 253
	maxLabelLength  = 63
)

// idnaProfile maps internationalized names to their ASCII form as UTS #46
// does for lookup, but without the STD3 rules, so that underscores, which
// real DNS uses in service names such as _ldap._tcp, pass through.
// CheckHyphens is off because names such as r3---sn-abc.example are common.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.CheckHyphens(false),
)

// NormalizeDomain returns the canonical form of domain under which the store
// keys it: spaces trimmed, lowercase, one trailing dot dropped and
// internationalized labels converted to punycode following UTS #46. It then
// checks that the name is at most 253 octets long, that each label has 1 to
// 63 octets, and that labels contain only letters, digits, hyphens and
// underscores. Single-label names such as "wpad" are valid. A rejected value
// returns an error wrapping ErrInvalidDomain that shows the value.
func NormalizeDomain(domain string) (string, error) {
	name := strings.TrimSpace(domain)

	// The common case, a name that is already lowercase ASCII, returns
	// without allocating.
	if isCanonicalASCII(name) {
		if err := checkDomain(name); err != nil {
			return "", invalidDomain(domain, err.Error())
		}
		return name, nil
	}

	if !utf8.ValidString(name) {
		return "", invalidDomain(domain, "not valid UTF-8")
	}
	name = strings.ToLower(name)
	name, trimmed := strings.CutSuffix(name, ".")
	if name == "" {
		return "", invalidDomain(domain, "empty name")
	}

	// Only names with non-ASCII runes or punycode labels need the IDNA
	// mapping; it also checks that punycode labels decode. The mapping
	// turns full-width and ideographic full stops into dots, so the one
	// trailing dot may only appear after it.
	if !isASCII(name) || strings.Contains(name, "xn--") {
		ascii, err := idnaProfile.ToASCII(name)
		if err != nil {
			return "", invalidDomain(domain, "not a valid internationalized name")
		}
		name = strings.ToLower(ascii)
		if !trimmed {
			name = strings.TrimSuffix(name, ".")
		}
	}

	if err := checkDomain(name); err != nil {
		return "", invalidDomain(domain, err.Error())
	}
	return name, nil
}

func invalidDomain(value, reason string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidDomain, value, reason)
}

// isCanonicalASCII reports whether name contains only the bytes a normalized
// name may contain and no punycode label, so that it needs no mapping.
func isCanonicalASCII(name string) bool {
	if name == "" || name[len(name)-1] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isDomainByte(name[i]) && name[i] != '.' {
			return false
		}
	}
	return !strings.Contains(name, "xn--")
}

func isDomainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// checkDomain checks the length and character rules on a lowercase ASCII
// name without a trailing dot.
func checkDomain(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	if len(name) > maxDomainLength {
		return fmt.Errorf("name is %d octets long, more than %d", len(name), maxDomainLength)
	}

	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			if !isDomainByte(name[i]) {
				return fmt.Errorf("character %q is not a letter, digit, hyphen or underscore", name[i])
			}
			continue
		}
		switch length := i - start; {
		case length == 0:
			return fmt.Errorf("empty label")
		case length > maxLabelLength:
			return fmt.Errorf("label %q is %d octets long, more than %d", name[start:i], length, maxLabelLength)
		}
		start = i + 1
	}
	return nil
}
