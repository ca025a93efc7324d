package ingest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// zeekTSV parses Zeek's default ASCII log format. Its header lines set the
// field separator, the unset and empty markers and the column names.
type zeekTSV struct {
	separator []byte
	unset     string
	empty     string
	path      string
	columns   []string

	// Column indexes of the event's parts, or -1. hostIsHTTP marks a
	// domain column that holds an HTTP Host header, which may carry a port.
	domainColumn  int
	machineColumn int
	timeColumn    int
	hostIsHTTP    bool

	split [][]byte
}

func newZeekTSV() *zeekTSV {
	return &zeekTSV{
		separator:     []byte{'\t'},
		unset:         "-",
		empty:         "(empty)",
		domainColumn:  -1,
		machineColumn: -1,
		timeColumn:    -1,
	}
}

func (z *zeekTSV) header(line []byte) headerKind {
	if len(line) == 0 || line[0] != '#' {
		return dataLine
	}

	// #separator opens every header block. It is the only header line
	// whose value follows a space, because it defines the separator of
	// the others.
	if rest, ok := bytes.CutPrefix(line, []byte("#separator ")); ok {
		z.separator = []byte(unescapeZeek(string(rest)))
		if len(z.separator) == 0 {
			z.separator = []byte{'\t'}
		}
		return headerStart
	}

	// The writer escapes white space and unprintable bytes in the values
	// of set_separator, empty_field, unset_field and path, but writes the
	// markers into data lines as they are, so they are compared decoded.
	name, value, _ := bytes.Cut(line[1:], z.separator)
	switch string(name) {
	case "unset_field":
		z.unset = unescapeZeek(string(value))
	case "empty_field":
		z.empty = unescapeZeek(string(value))
	case "path":
		z.path = unescapeZeek(string(value))
	case "fields":
		z.setColumns(strings.Split(string(value), string(z.separator)))
	}
	return headerLine
}

func (z *zeekTSV) setColumns(columns []string) {
	z.columns = columns
	z.domainColumn, z.machineColumn, z.timeColumn = -1, -1, -1
	z.hostIsHTTP = false

	index := make(map[string]int, len(columns))
	for i, c := range columns {
		index[c] = i
	}

	if i, ok := index["ts"]; ok {
		z.timeColumn = i
	}
	for _, name := range []string{"id.orig_h", "id_orig_h"} {
		if i, ok := index[name]; ok {
			z.machineColumn = i
			break
		}
	}

	// dns.log names the domain query, ssl.log server_name (the TLS SNI)
	// and http.log host (the Host header).
	for _, name := range []string{"query", "server_name", "host"} {
		if i, ok := index[name]; ok {
			z.domainColumn = i
			z.hostIsHTTP = name == "host"
			break
		}
	}
}

func (z *zeekTSV) parse(line []byte, emit func(fields), skip func(Reason, string)) error {
	if z.columns == nil {
		skip(ReasonNoHeader, "data line before the #fields header")
		return nil
	}
	if z.domainColumn < 0 {
		skip(ReasonOtherEvent, fmt.Sprintf("zeek log %q has no query, server_name or host field", z.path))
		return nil
	}
	if z.machineColumn < 0 || z.timeColumn < 0 {
		skip(ReasonNoHeader, "#fields has no ts or id.orig_h field")
		return nil
	}

	z.split = splitInto(z.split[:0], line, z.separator)
	if len(z.split) != len(z.columns) {
		return fmt.Errorf("%d fields, but #fields names %d", len(z.split), len(z.columns))
	}

	domain, ok := z.value(z.domainColumn)
	if !ok {
		skip(ReasonMissingDomain, z.columns[z.domainColumn]+" is unset or empty")
		return nil
	}
	if z.hostIsHTTP {
		domain = hostWithoutPort(domain)
	}

	machine, ok := z.value(z.machineColumn)
	if !ok {
		skip(ReasonMissingMachine, z.columns[z.machineColumn]+" is unset or empty")
		return nil
	}

	ts, ok := z.value(z.timeColumn)
	if !ok {
		skip(ReasonInvalidTime, "ts is unset or empty")
		return nil
	}
	at, err := parseTime(ts)
	if err != nil {
		skip(ReasonInvalidTime, err.Error())
		return nil
	}

	emit(fields{domain: domain, machine: machine, time: at})
	return nil
}

// value returns column i decoded, and false when it is unset or empty. The
// markers are compared before decoding, because Zeek escapes a value that
// equals a marker: \x2d is a literal "-".
func (z *zeekTSV) value(i int) (string, bool) {
	raw := string(z.split[i])
	if raw == "" || raw == z.unset || raw == z.empty {
		return "", false
	}
	return unescapeZeek(raw), true
}

func splitInto(dst [][]byte, line, separator []byte) [][]byte {
	for {
		i := bytes.Index(line, separator)
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+len(separator):]
	}
}

// unescapeZeek decodes the escapes of Zeek's ASCII writer: \xNN for a
// separator, an unprintable byte or a non-ASCII byte, and \\ for a
// backslash, which current versions write (get_escaped_string in
// zeek/zeek src/util.cc). Older versions wrote a backslash as \x5c, so a
// \\ never stands for two backslashes. Other backslashes are kept.
func unescapeZeek(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}

	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}

		switch {
		case s[i+1] == '\\':
			b.WriteByte('\\')
			i++
			continue
		case s[i+1] == 'x' && i+3 < len(s):
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
