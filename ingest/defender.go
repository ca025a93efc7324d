package ingest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// networkEventsCategory is the category of DeviceNetworkEvents records in
// Defender's streaming API.
const networkEventsCategory = "AdvancedHunting-DeviceNetworkEvents"

// defenderParser reads DeviceNetworkEvents. Its first line decides between
// JSON, where each line is a row, a JSON array of rows, an Advanced Hunting
// API response or a streaming API object, and CSV, where it is the header.
type defenderParser struct {
	decided bool
	isCSV   bool
	csv     csvParser
}

func (p *defenderParser) header(line []byte) headerKind {
	if !p.decided {
		p.decided = true
		trimmed := bytes.TrimSpace(line)
		p.isCSV = len(trimmed) > 0 && trimmed[0] != '{' && trimmed[0] != '['
		p.csv.defender = true
	}
	if p.isCSV {
		return p.csv.header(line)
	}
	return dataLine
}

func (p *defenderParser) parse(line []byte, emit func(fields), skip func(Reason, string)) error {
	if p.isCSV {
		return p.csv.parse(line, emit, skip)
	}

	trimmed := bytes.TrimSpace(line)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		rows, err := decodeArray(trimmed)
		if err != nil {
			return err
		}
		defenderRows(rows, emit, skip)
		return nil
	}

	object, err := decodeObject(line)
	if err != nil {
		return err
	}
	switch {
	case object["records"] != nil:
		records, ok := object["records"].([]any)
		if !ok {
			return fmt.Errorf("records is not a JSON array")
		}
		defenderRows(records, emit, skip)
	case object["Results"] != nil || object["results"] != nil:
		// The Defender for Endpoint API names the rows Results, the
		// Microsoft Graph runHuntingQuery action results.
		key := "Results"
		if object[key] == nil {
			key = "results"
		}
		results, ok := object[key].([]any)
		if !ok {
			return fmt.Errorf("%s is not a JSON array", key)
		}
		defenderRows(results, emit, skip)
	default:
		defenderRow(object, emit, skip)
	}
	return nil
}

func decodeArray(line []byte) ([]any, error) {
	var rows []any
	decoder := json.NewDecoder(bytes.NewReader(line))
	decoder.UseNumber()
	if err := decoder.Decode(&rows); err != nil {
		return nil, errors.New(describeJSONError(err, "array"))
	}
	if decoder.More() {
		return nil, fmt.Errorf("invalid JSON array: data after the array")
	}
	return rows, nil
}

func defenderRows(rows []any, emit func(fields), skip func(Reason, string)) {
	for _, row := range rows {
		object, ok := row.(map[string]any)
		if !ok {
			skip(ReasonMalformed, "record is not a JSON object")
			continue
		}
		defenderRow(object, emit, skip)
	}
}

// defenderRow reads one row, or one streaming API record whose row is in
// its properties.
func defenderRow(object map[string]any, emit func(fields), skip func(Reason, string)) {
	row := object
	if properties, ok := object["properties"].(map[string]any); ok {
		category, _ := object["category"].(string)
		if category != "" && !strings.EqualFold(category, networkEventsCategory) {
			skip(ReasonOtherEvent, "record category "+category)
			return
		}
		row = properties
	}

	raw := func(key string) string { return stringValue(row[key]) }
	f, reason, detail := defenderFields(raw("RemoteUrl"), raw("DeviceId"), raw("DeviceName"), raw("Timestamp"))
	if reason == ReasonInvalidTime && raw("Timestamp") == "" {
		// A streaming API record carries the event time in time as well.
		f, reason, detail = defenderFields(raw("RemoteUrl"), raw("DeviceId"), raw("DeviceName"), stringValue(object["time"]))
	}
	if reason != "" {
		skip(reason, detail)
		return
	}
	emit(f)
}

func defenderFields(remoteURL, deviceID, deviceName, timestamp string) (fields, Reason, string) {
	if strings.TrimSpace(remoteURL) == "" {
		return fields{}, ReasonMissingDomain, "RemoteUrl is empty"
	}
	host := urlHost(remoteURL)
	if host == "" {
		return fields{}, ReasonMissingDomain, fmt.Sprintf("RemoteUrl %q has no host", remoteURL)
	}

	machine := deviceID
	if machine == "" {
		machine = deviceName
	}
	if machine == "" {
		return fields{}, ReasonMissingMachine, "DeviceId and DeviceName are empty"
	}

	at, err := parseTime(timestamp)
	if err != nil {
		return fields{}, ReasonInvalidTime, "Timestamp: " + err.Error()
	}
	return fields{domain: host, machine: machine, time: at}, "", ""
}

// csvParser reads CSV whose header names domain, machine and time columns,
// or, for Defender, RemoteUrl, DeviceId or DeviceName, and Timestamp.
type csvParser struct {
	defender bool

	seenHeader bool
	width      int
	columns    map[string]int
}

func (p *csvParser) header(line []byte) headerKind {
	if p.seenHeader {
		return dataLine
	}
	record, err := csv.NewReader(bytes.NewReader(line)).Read()
	if err != nil {
		return dataLine
	}
	p.seenHeader = true
	p.width = len(record)
	p.columns = csvColumns(record)
	return headerStart
}

func csvColumns(header []string) map[string]int {
	columns := make(map[string]int, len(header))
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		if _, ok := columns[name]; !ok {
			columns[name] = i
		}
	}
	return columns
}

func hasGenericColumns(columns map[string]int) bool {
	for _, name := range []string{"domain", "machine", "time"} {
		if _, ok := columns[name]; !ok {
			return false
		}
	}
	return true
}

func (p *csvParser) parse(line []byte, emit func(fields), skip func(Reason, string)) error {
	if !p.seenHeader {
		skip(ReasonNoHeader, "data line before the CSV header")
		return nil
	}

	reader := csv.NewReader(bytes.NewReader(line))
	reader.FieldsPerRecord = -1
	record, err := reader.Read()
	if err != nil {
		return errors.New(describeCSVError(err))
	}
	if len(record) != p.width {
		return fmt.Errorf("%d columns, but the header names %d", len(record), p.width)
	}

	column := func(name string) string {
		if i, ok := p.columns[name]; ok {
			return strings.TrimSpace(record[i])
		}
		return ""
	}

	if p.defender {
		f, reason, detail := defenderFields(column("remoteurl"), column("deviceid"), column("devicename"), column("timestamp"))
		if reason != "" {
			skip(reason, detail)
			return nil
		}
		emit(f)
		return nil
	}

	if !hasGenericColumns(p.columns) {
		skip(ReasonNoHeader, "the CSV header does not name domain, machine and time columns")
		return nil
	}
	f := fields{domain: column("domain"), machine: column("machine")}
	if f.domain == "" {
		skip(ReasonMissingDomain, "domain is empty")
		return nil
	}
	if f.machine == "" {
		skip(ReasonMissingMachine, "machine is empty")
		return nil
	}
	f.time, err = parseTime(column("time"))
	if err != nil {
		skip(ReasonInvalidTime, err.Error())
		return nil
	}
	emit(f)
	return nil
}

// describeCSVError turns an encoding/csv error on one line into words. It
// drops the error's line number, which counts from the line passed in and
// so is always 1; the skip report carries the line number in the file.
func describeCSVError(err error) string {
	var parseErr *csv.ParseError
	if !errors.As(err, &parseErr) {
		return "invalid CSV"
	}

	switch {
	case errors.Is(parseErr.Err, csv.ErrBareQuote):
		return fmt.Sprintf("invalid CSV at column %d: a quote (\") inside a field that does not start with one; double it (\"\") or quote the whole field", parseErr.Column)
	case errors.Is(parseErr.Err, csv.ErrQuote):
		return fmt.Sprintf("invalid CSV at column %d: a quoted field is not closed on this line, or a quote follows its closing quote", parseErr.Column)
	}
	return fmt.Sprintf("invalid CSV at column %d: %v", parseErr.Column, parseErr.Err)
}
