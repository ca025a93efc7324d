package ingest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

var errEmptyTime = errors.New("time is empty")

// TimeFormats describes, for people, the forms that parseTime reads and so
// every time field of every format accepts: Zeek ts, Sysmon UtcTime,
// Defender Timestamp and the time column of generic CSV.
const TimeFormats = "RFC 3339 (2024-03-01T14:00:00Z or 2024-03-01T15:00:00+01:00); " +
	"2024-03-01 14:00:00 or 2024-03-01T14:00:00, with optional fractional seconds, read as UTC; " +
	"Mar 1, 2024 2:00:00 PM or 3/1/2024 2:00:00 PM, read as UTC; " +
	"or epoch seconds (optionally with a fraction), milliseconds, microseconds or nanoseconds, told apart by magnitude; " +
	"no time before 1970-01-01T00:00:00Z"

// zonelessLayouts are read as UTC. Sysmon writes UtcTime in the first
// form, and Defender portal exports use the last two.
var zonelessLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"Jan 2, 2006 3:04:05.999999999 PM",
	"1/2/2006 3:04:05.999999999 PM",
}

// parseTime reads epoch seconds, milliseconds, microseconds or nanoseconds
// (distinguished by magnitude), RFC 3339, or one of zonelessLayouts as UTC.
// A time before the Unix epoch is an error, because the store records none
// and in telemetry such a time usually comes from an unset clock.
func parseTime(s string) (time.Time, error) {
	t, err := parseTimeForm(s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Before(time.Unix(0, 0)) {
		return time.Time{}, fmt.Errorf("invalid time %q: before 1970-01-01T00:00:00Z, the earliest time the store records", strings.TrimSpace(s))
	}
	return t, nil
}

// parseTimeForm reads s in the first of the accepted forms that fits.
func parseTimeForm(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errEmptyTime
	}

	if s[0] >= '0' && s[0] <= '9' || s[0] == '-' {
		if t, err := parseEpoch(s); err == nil {
			return t, nil
		}
	}

	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range zonelessLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q is in no known form; expected %s", s, TimeFormats)
}

// Epoch values at or above these magnitudes are read in the smaller unit.
// 1e11 seconds is the year 5138, so no real seconds value reaches it.
const (
	millisFrom = 1e11
	microsFrom = 1e14
	nanosFrom  = 1e17
)

// parseEpoch reads an epoch timestamp. The integer and fraction parts are
// parsed separately because a float64 cannot hold microseconds of a
// present-day epoch exactly.
func parseEpoch(s string) (time.Time, error) {
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || math.Abs(f) >= millisFrom {
			return time.Time{}, fmt.Errorf("invalid epoch time %q", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}

	whole, fraction, hasFraction := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid epoch time %q", s)
	}

	if !hasFraction {
		switch abs := absInt(sec); {
		case abs >= nanosFrom:
			return time.Unix(0, sec).UTC(), nil
		case abs >= microsFrom:
			return time.UnixMicro(sec).UTC(), nil
		case abs >= millisFrom:
			return time.UnixMilli(sec).UTC(), nil
		}
		return time.Unix(sec, 0).UTC(), nil
	}

	if absInt(sec) >= millisFrom || fraction == "" || len(fraction) > 9 {
		return time.Time{}, fmt.Errorf("invalid epoch time %q", s)
	}
	nanos, err := strconv.ParseUint(fraction+strings.Repeat("0", 9-len(fraction)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid epoch time %q", s)
	}
	if strings.HasPrefix(whole, "-") {
		return time.Unix(sec, -int64(nanos)).UTC(), nil
	}
	return time.Unix(sec, int64(nanos)).UTC(), nil
}

func absInt(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
