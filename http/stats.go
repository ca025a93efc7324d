package statshttp

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/domainstats/domainstats"
)

// timeLayout is RFC 3339 in UTC with second precision, the format of
// Defender's orgFirstSeen and orgLastSeen.
const timeLayout = "2006-01-02T15:04:05Z"

// statsBody is the 200 response. The field order is Defender's.
type statsBody struct {
	ODataContext           string  `json:"@odata.context"`
	Host                   string  `json:"host"`
	OrgPrevalence          string  `json:"orgPrevalence"`
	OrganizationPrevalence int64   `json:"organizationPrevalence"`
	OrgFirstSeen           *string `json:"orgFirstSeen"` // null when prevalence is 0
	OrgLastSeen            *string `json:"orgLastSeen"`  // null when prevalence is 0
}

// newStatsBody builds the 200 response for s.
func (h *handler) newStatsBody(r *http.Request, s domainstats.Stats) statsBody {
	body := statsBody{
		ODataContext:           h.base(r) + odataContextSuffix,
		Host:                   s.Host,
		OrgPrevalence:          strconv.FormatInt(s.OrgPrevalence, 10),
		OrganizationPrevalence: s.OrgPrevalence,
	}

	if s.OrgPrevalence > 0 {
		body.OrgFirstSeen = formatTime(s.OrgFirstSeen)
		body.OrgLastSeen = formatTime(s.OrgLastSeen)
	}
	return body
}

// appendJSON appends b as encoding/json with HTML escaping off would, in
// the field order of the struct.
func (b statsBody) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"@odata.context":`...)
	dst = appendJSONString(dst, b.ODataContext)
	dst = append(dst, `,"host":`...)
	dst = appendJSONString(dst, b.Host)
	dst = append(dst, `,"orgPrevalence":`...)
	dst = appendJSONString(dst, b.OrgPrevalence)
	dst = append(dst, `,"organizationPrevalence":`...)
	dst = strconv.AppendInt(dst, b.OrganizationPrevalence, 10)
	dst = append(dst, `,"orgFirstSeen":`...)
	dst = appendOptionalJSONString(dst, b.OrgFirstSeen)
	dst = append(dst, `,"orgLastSeen":`...)
	dst = appendOptionalJSONString(dst, b.OrgLastSeen)
	return append(dst, '}')
}

func appendOptionalJSONString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, *s)
}

// appendJSONString appends s as a JSON string. Printable ASCII without
// quotes or backslashes, which every field but a strange Host header is,
// is copied as it is; anything else goes through marshalJSON.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			encoded, err := marshalJSON(s)
			if err != nil {
				// A string always encodes.
				panic("statshttp: encoding a string: " + err.Error())
			}
			return append(dst, encoded...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// formatTime formats t in timeLayout, truncating fractions of a second.
func formatTime(t time.Time) *string {
	s := t.UTC().Format(timeLayout)
	return &s
}

// base returns the start of @odata.context: Options.BaseURL, or else the
// request's scheme and host.
func (h *handler) base(r *http.Request) string {
	if h.baseURL != "" {
		return h.baseURL
	}

	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// parseLookBack returns the lookBackHours of a raw query string: 720, or
// the retention in whole hours when that is shorter, if the parameter is
// absent. For an invalid query it returns the message of the 400 body as
// rejection. A query is invalid when it cannot be decoded, has a parameter
// other than lookBackHours or repeats lookBackHours. It is also invalid
// when lookBackHours is not a whole number from 1 to the retention in hours.
func parseLookBack(rawQuery string, retention time.Duration) (hours int64, rejection string) {
	maxHours := int64(retention / time.Hour)

	// The two common queries skip url.ParseQuery and its allocations:
	// none, and lookBackHours with plain digits. Anything else, other
	// spellings included, takes the full path below.
	if rawQuery == "" {
		return min(defaultLookBackHours, maxHours), ""
	}
	if digits, ok := strings.CutPrefix(rawQuery, "lookBackHours="); ok && isDigits(digits) && len(digits) <= 9 {
		hours, _ = strconv.ParseInt(digits, 10, 64)
		if hours >= 1 && hours <= maxHours {
			return hours, ""
		}
	}

	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, fmt.Sprintf("Invalid input: the query string %s cannot be decoded. Percent-encode reserved characters and separate parameters with &.", truncateInput(rawQuery))
	}

	var (
		found bool
		raw   string
	)
	for _, name := range slices.Sorted(maps.Keys(values)) {
		// Defender's documentation spells the name in two cases.
		if !strings.EqualFold(name, "lookBackHours") {
			return 0, fmt.Sprintf("Invalid input %s: unknown parameter. The only parameter is lookBackHours.", truncateInput(name))
		}
		if found || len(values[name]) != 1 {
			return 0, "Invalid input: lookBackHours is given more than once."
		}
		found = true
		raw = values[name][0]
	}

	if !found {
		return min(defaultLookBackHours, maxHours), ""
	}

	hours, err = strconv.ParseInt(raw, 10, 64)
	if err != nil || !isDigits(raw) || hours < 1 || hours > maxHours {
		return 0, fmt.Sprintf("Invalid input lookBackHours=%s: expected a whole number of hours from 1 to %d.", truncateInput(raw), maxHours)
	}
	return hours, ""
}

// isDigits reports whether s is made of ASCII digits only, which rules out
// the sign that strconv.ParseInt accepts.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// requestIDKey is the context key of the request id.
type requestIDKey struct{}

// withRequestID returns ctx carrying the request id.
func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// requestID returns the request id that ServeHTTP stored in ctx.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
