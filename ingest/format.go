package ingest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Format names an input format.
type Format string

// Input formats.
const (
	// FormatAuto detects the format from the first line of content.
	FormatAuto Format = "auto"

	// FormatZeek is a Zeek TSV log: dns.log, ssl.log or http.log.
	FormatZeek Format = "zeek"

	// FormatZeekJSON is a Zeek JSON log, one object per line, including
	// Corelight's json-streaming-logs.
	FormatZeekJSON Format = "zeek-json"

	// FormatSysmon is Sysmon events as JSON lines, of which Event ID 22
	// (DnsQuery) is read.
	FormatSysmon Format = "sysmon"

	// FormatDefender is Defender DeviceNetworkEvents as JSON lines, as CSV
	// with a header, or as streaming API {"records":[…]} objects.
	FormatDefender Format = "defender"

	// FormatCSV is CSV whose header names domain, machine and time columns.
	FormatCSV Format = "csv"
)

var formats = []Format{FormatAuto, FormatZeek, FormatZeekJSON, FormatSysmon, FormatDefender, FormatCSV}

func (f Format) valid() bool {
	for _, known := range formats {
		if f == known {
			return true
		}
	}
	return false
}

func formatNames() []string {
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = string(f)
	}
	return names
}

// ParseFormat returns the Format named name, or an error wrapping
// ErrUnknownFormat.
func ParseFormat(name string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(name)))
	if !f.valid() {
		return "", fmt.Errorf("%w %q: use one of %s", ErrUnknownFormat, name, strings.Join(formatNames(), ", "))
	}
	return f, nil
}

// Detect returns the format of an input that starts with prefix, judged by
// its first non-blank line. It returns an error wrapping ErrUnknownFormat
// when no format matches.
func Detect(prefix []byte) (Format, error) {
	line := firstLine(prefix)
	if len(line) == 0 {
		return "", fmt.Errorf("%w: the input is empty", ErrUnknownFormat)
	}

	switch line[0] {
	case '#':
		if bytes.HasPrefix(line, []byte("#separator")) || bytes.HasPrefix(line, []byte("#fields")) {
			return FormatZeek, nil
		}
		return "", fmt.Errorf("%w: the first line starts with # but is not a Zeek #separator or #fields header", ErrUnknownFormat)

	case '{', '[':
		return detectJSON(line)
	}
	return detectCSV(line)
}

// firstLine returns the first non-blank line of prefix without its line
// break and byte order mark.
func firstLine(prefix []byte) []byte {
	prefix = bytes.TrimPrefix(prefix, utf8BOM)
	for len(prefix) > 0 {
		line, rest, _ := bytes.Cut(prefix, []byte("\n"))
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			return line
		}
		prefix = rest
	}
	return nil
}

func detectJSON(line []byte) (Format, error) {
	var value any
	if err := json.Unmarshal(line, &value); err != nil {
		return "", fmt.Errorf("%w: the first line starts like JSON but is not one complete JSON value (%s); JSON input must hold one value per line", ErrUnknownFormat, describeJSONError(err, "value"))
	}

	object, ok := value.(map[string]any)
	if !ok {
		// A JSON array of rows is how Defender query results are exported.
		if rows, ok := value.([]any); ok && len(rows) > 0 {
			if row, ok := rows[0].(map[string]any); ok && isDefenderRow(row) {
				return FormatDefender, nil
			}
		}
		return "", fmt.Errorf("%w: the first line is JSON but not an object of a known log", ErrUnknownFormat)
	}

	switch {
	case isDefenderRow(object) || object["records"] != nil || object["Results"] != nil || object["results"] != nil:
		return FormatDefender, nil
	case isSysmon(object):
		return FormatSysmon, nil
	case isZeekJSON(object):
		return FormatZeekJSON, nil
	}
	return "", fmt.Errorf("%w: the first JSON object has none of the keys of Zeek (ts, _path, id.orig_h), Sysmon (EventID, QueryName, winlog, event_data.QueryName, source_name with event_id, event.module sysmon, or event.code with dns.question.name) or Defender (RemoteUrl, DeviceId, records)", ErrUnknownFormat)
}

func isDefenderRow(object map[string]any) bool {
	if category, ok := object["category"].(string); ok && strings.HasPrefix(category, "AdvancedHunting-") {
		return true
	}
	_, url := object["RemoteUrl"]
	_, device := object["DeviceId"]
	return url || device
}

func isSysmon(object map[string]any) bool {
	for _, key := range []string{"EventID", "QueryName", "winlog"} {
		if _, ok := object[key]; ok {
			return true
		}
	}

	// Exports of Elasticsearch documents may flatten winlog into dotted
	// keys such as "winlog.event_id".
	for key := range object {
		if strings.HasPrefix(key, "winlog.") {
			return true
		}
	}
	channel, _ := object["Channel"].(string)
	if strings.Contains(channel, "Sysmon") {
		return true
	}

	// Winlogbeat 5.x and 6.x write source_name and event_id at the top
	// level and the event data under event_data.
	sourceName, _ := object["source_name"].(string)
	if _, ok := object["event_id"]; ok && strings.Contains(sourceName, "Sysmon") {
		return true
	}
	if _, ok := lookup(object, []string{"event_data", "QueryName"}); ok {
		return true
	}

	// Elastic's ECS shape names the source in event.module. Filebeat's
	// Zeek module and Packetbeat also write dns.question.name, so an event
	// of another module is not Sysmon, and one without a module is Sysmon
	// only when it carries a Sysmon event ID in event.code as well.
	module := strings.ToLower(firstString(object, []string{"event", "module"}, []string{"event.module"}))
	if module != "" {
		return module == "sysmon"
	}
	_, hasCode := firstValue(object, []string{"event", "code"}, []string{"event.code"})
	_, hasQuestion := firstValue(object, []string{"dns", "question", "name"}, []string{"dns.question.name"})
	return hasCode && hasQuestion
}

func isZeekJSON(object map[string]any) bool {
	for _, key := range []string{"ts", "_path", "id.orig_h", "id_orig_h", "uid"} {
		if _, ok := object[key]; ok {
			return true
		}
	}
	return false
}

func detectCSV(line []byte) (Format, error) {
	header, err := csv.NewReader(bytes.NewReader(line)).Read()
	if err != nil {
		return "", fmt.Errorf("%w: the first line is not Zeek, JSON or a CSV header (%s)", ErrUnknownFormat, describeCSVError(err))
	}

	columns := csvColumns(header)
	if _, ok := columns["remoteurl"]; ok {
		return FormatDefender, nil
	}
	if hasGenericColumns(columns) {
		return FormatCSV, nil
	}
	return "", fmt.Errorf("%w: the first line is not Zeek or JSON, and as a CSV header it names neither domain, machine and time nor Defender's RemoteUrl", ErrUnknownFormat)
}

// fields is the domain, machine and time that a parser extracts from one
// record.
type fields struct {
	domain  string
	machine string
	time    time.Time
}

// headerKind classifies a line as data or header.
type headerKind int

const (
	dataLine headerKind = iota

	// headerLine continues the current header block, or starts one after
	// a data line.
	headerLine

	// headerStart always starts a new header block.
	headerStart
)

// parser turns lines of one format into events.
type parser interface {
	// header reports whether line is a header line, and if so takes in
	// its settings.
	header(line []byte) headerKind

	// parse calls emit for each event and skip for each unusable record
	// of a data line. A returned error marks the whole line malformed.
	parse(line []byte, emit func(fields), skip func(Reason, string)) error
}

func newParser(format Format) parser {
	switch format {
	case FormatZeek:
		return newZeekTSV()
	case FormatZeekJSON:
		return jsonParser{kind: zeekJSON}
	case FormatSysmon:
		return jsonParser{kind: sysmonJSON}
	case FormatDefender:
		return &defenderParser{}
	case FormatCSV:
		return &csvParser{}
	}
	panic("ingest: no parser for format " + string(format))
}
