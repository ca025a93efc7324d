package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

type jsonKind int

const (
	zeekJSON jsonKind = iota
	sysmonJSON
)

// jsonParser reads one JSON object per line, as Zeek or Sysmon events.
type jsonParser struct {
	kind jsonKind
}

func (jsonParser) header([]byte) headerKind { return dataLine }

func (p jsonParser) parse(line []byte, emit func(fields), skip func(Reason, string)) error {
	object, err := decodeObject(line)
	if err != nil {
		return err
	}

	var (
		f      fields
		reason Reason
		detail string
	)
	if p.kind == zeekJSON {
		f, reason, detail = zeekJSONFields(object)
	} else {
		f, reason, detail = sysmonFields(object)
	}
	if reason != "" {
		skip(reason, detail)
		return nil
	}
	emit(f)
	return nil
}

func decodeObject(line []byte) (map[string]any, error) {
	var object map[string]any
	decoder := json.NewDecoder(bytes.NewReader(line))
	decoder.UseNumber()
	if err := decoder.Decode(&object); err != nil {
		return nil, errors.New(describeJSONError(err, "object"))
	}
	if decoder.More() {
		return nil, fmt.Errorf("invalid JSON object: data after the object")
	}
	if object == nil {
		return nil, fmt.Errorf("invalid JSON object: null")
	}
	return object, nil
}

// zeekLogs maps a Zeek log path to the field that holds its domain.
//
// NOTE: a _path set by a custom log filter, such as "dns_internal", is
// skipped as another log even when the record has a query field.
var zeekLogs = map[string]string{
	"dns":  "query",
	"ssl":  "server_name",
	"http": "host",
}

func zeekJSONFields(object map[string]any) (fields, Reason, string) {
	path, _ := object["_path"].(string)
	domainKey := zeekLogs[path]
	if path != "" && domainKey == "" {
		return fields{}, ReasonOtherEvent, fmt.Sprintf("zeek log %q carries no domain", path)
	}

	// Zeek leaves unset fields out of JSON, so without _path the log is
	// known only from the domain field that is present.
	if domainKey == "" {
		for _, key := range []string{"query", "server_name", "host"} {
			if _, ok := object[key]; ok {
				domainKey = key
				break
			}
		}
	}
	domain := ""
	if domainKey != "" {
		domain = stringValue(object[domainKey])
	}
	if domain == "" {
		return fields{}, ReasonMissingDomain, "no query, server_name or host"
	}
	if domainKey == "host" {
		domain = hostWithoutPort(domain)
	}

	machine := firstString(object, []string{"id.orig_h"}, []string{"id_orig_h"}, []string{"id", "orig_h"})
	if machine == "" {
		return fields{}, ReasonMissingMachine, "no id.orig_h"
	}

	at, err := jsonTime(object["ts"])
	if err != nil {
		return fields{}, ReasonInvalidTime, "ts: " + err.Error()
	}
	return fields{domain: domain, machine: machine, time: at}, "", ""
}

func sysmonFields(object map[string]any) (fields, Reason, string) {
	// A collector that reads several event logs writes events of other
	// providers too, and their IDs overlap Sysmon's. The provider, unlike
	// the channel, stays the same when events are forwarded.
	provider := firstString(object, []string{"SourceName"}, []string{"source_name"}, []string{"winlog", "provider_name"}, []string{"event", "provider"})
	if provider != "" && !strings.Contains(provider, "Sysmon") {
		return fields{}, ReasonOtherEvent, "event of provider " + provider + ", not Sysmon"
	}

	id := firstString(object, []string{"EventID"}, []string{"event_id"}, []string{"winlog", "event_id"}, []string{"event", "code"}, []string{"event.code"})
	if id != "" && id != "22" {
		return fields{}, ReasonOtherEvent, "Sysmon event ID " + id + ", not 22 (DnsQuery)"
	}

	domain := firstString(object, []string{"QueryName"}, []string{"event_data", "QueryName"}, []string{"winlog", "event_data", "QueryName"}, []string{"dns", "question", "name"}, []string{"dns.question.name"})
	if domain == "" {
		return fields{}, ReasonMissingDomain, "no QueryName, event_data.QueryName or dns.question.name"
	}

	// NXLog's lowercase "host" is the collector, so only the ECS object
	// form of host is read.
	machine := firstString(object, []string{"Computer"}, []string{"Hostname"}, []string{"computer_name"}, []string{"winlog", "computer_name"},
		[]string{"host", "name"}, []string{"host", "hostname"}, []string{"host.name"}, []string{"host.hostname"})
	if machine == "" {
		return fields{}, ReasonMissingMachine, "no Computer, Hostname, computer_name, winlog.computer_name, host.name or host.hostname"
	}

	// UtcTime is when the query happened. The other fields are when the
	// event was written or collected, and serve only when it is missing.
	for _, source := range sysmonTimeFields {
		raw, ok := lookup(object, source.path)
		if !ok || raw == nil {
			continue
		}
		at, err := jsonTime(raw)
		if err != nil {
			return fields{}, ReasonInvalidTime, source.name + ": " + err.Error()
		}
		return fields{domain: domain, machine: machine, time: at}, "", ""
	}
	return fields{}, ReasonInvalidTime, "no UtcTime, TimeCreated or @timestamp"
}

// sysmonTimeFields are the fields a Sysmon event's time is read from, in
// order of preference.
var sysmonTimeFields = []struct {
	name string
	path []string
}{
	{"UtcTime", []string{"UtcTime"}},
	{"event_data.UtcTime", []string{"event_data", "UtcTime"}},
	{"winlog.event_data.UtcTime", []string{"winlog", "event_data", "UtcTime"}},
	{"TimeCreated", []string{"TimeCreated"}},
	{"@timestamp", []string{"@timestamp"}},
}

// lookup follows path through an object. Producers write the same field
// nested ({"id":{"orig_h":…}}), flat with dots ({"id.orig_h":…}) or as a
// mix of both, so at each level it tries every key that joins the next
// path elements with dots, the longest first. A path element that itself
// contains a dot, such as "id.orig_h", matches only a flat key.
func lookup(object map[string]any, path []string) (any, bool) {
	for n := len(path); n >= 1; n-- {
		value, ok := object[strings.Join(path[:n], ".")]
		if !ok {
			continue
		}
		if n == len(path) {
			return value, true
		}
		if inner, ok := value.(map[string]any); ok {
			if found, ok := lookup(inner, path[n:]); ok {
				return found, true
			}
		}
	}
	return nil, false
}

func firstValue(object map[string]any, paths ...[]string) (any, bool) {
	for _, path := range paths {
		if v, ok := lookup(object, path); ok && v != nil {
			return v, true
		}
	}
	return nil, false
}

// firstString returns the first non-empty string or number found at paths.
func firstString(object map[string]any, paths ...[]string) string {
	for _, path := range paths {
		v, _ := lookup(object, path)
		if s := stringValue(v); s != "" {
			return s
		}
	}
	return ""
}

func stringValue(v any) string {
	switch v := v.(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	}
	return ""
}

// jsonTime reads a JSON time: a number of epoch seconds or milliseconds,
// or a string in any form parseTime reads.
func jsonTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case json.Number:
		return parseEpoch(v.String())
	case string:
		return parseTime(v)
	case nil:
		return time.Time{}, errEmptyTime
	}
	return time.Time{}, fmt.Errorf("time is %s, not a number or string", jsonKindOf(v))
}

// describeJSONError turns an encoding/json error, from decoding a line
// into a JSON value of kind want ("object", "array" or "value"), into
// words that name no Go types. Only an object or array target yields a
// type error, so "an" always fits.
func describeJSONError(err error, want string) string {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &typeErr):
		return fmt.Sprintf("the line is a JSON %s, not an %s", typeErr.Value, want)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the line ends before the JSON " + want + " is complete"
	}
	return "invalid JSON " + want
}

// jsonKindOf names the JSON kind of a value that encoding/json decoded.
func jsonKindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a JSON object"
	case []any:
		return "a JSON array"
	case bool:
		return "true or false"
	case string:
		return "a JSON string"
	case json.Number, float64:
		return "a JSON number"
	}
	return "null"
}
