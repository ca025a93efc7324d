package ingest

import "fmt"

// Reason is the cause of a skipped line or record. Its values are stable
// and suitable as metric labels.
type Reason string

// Reasons for skipping a line or record.
const (
	// ReasonMalformed is a line that does not parse in its format, such as
	// invalid JSON or a wrong number of columns.
	ReasonMalformed Reason = "malformed"

	// ReasonNoHeader is a data line of a Zeek TSV or CSV input that comes
	// before its header, or whose header lacks a required column.
	ReasonNoHeader Reason = "no_header"

	// ReasonMissingDomain is a record without a domain, such as a Zeek DNS
	// record whose query is unset or a network event without a RemoteUrl.
	ReasonMissingDomain Reason = "missing_domain"

	// ReasonMissingMachine is a record without a machine.
	ReasonMissingMachine Reason = "missing_machine"

	// ReasonInvalidTime is a record whose time is missing or cannot be
	// parsed.
	ReasonInvalidTime Reason = "invalid_time"

	// ReasonOtherEvent is a well-formed record of another kind: a Sysmon
	// event other than ID 22, a Defender record of another table, or a
	// Zeek log that carries no domain.
	ReasonOtherEvent Reason = "other_event"

	// ReasonIPAddress is a record whose host is an IPv4 or IPv6 address
	// literal, such as a Zeek http.log host of 192.0.2.1 or a Defender
	// RemoteUrl of http://192.0.2.1/. An address is not a domain, so it
	// is not recorded.
	ReasonIPAddress Reason = "ip_address"

	// ReasonLineTooLong is a line longer than Options.MaxLineBytes.
	ReasonLineTooLong Reason = "line_too_long"

	// ReasonInvalidDomain is an event whose domain the store rejected. The
	// reader never returns it; callers that record events use it.
	ReasonInvalidDomain Reason = "invalid_domain"

	// ReasonInvalidMachine is an event whose machine the store rejected.
	// The reader never returns it; callers that record events use it.
	ReasonInvalidMachine Reason = "invalid_machine"
)

// SkipError reports a line or record that was skipped. Reading can go on
// after it.
type SkipError struct {
	File   string // Options.Name, or "input"
	Line   int64  // 1-based line number
	Reason Reason
	Detail string // description of the problem, for people
}

// Error returns the file, line, reason and detail.
func (e *SkipError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s:%d: skipped (%s)", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s:%d: skipped (%s): %s", e.File, e.Line, e.Reason, e.Detail)
}
