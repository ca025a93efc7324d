package bench

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ReadZeekDNS calls fn for each query of a Zeek dns.log in the default TSV
// format, with the query name lowercased and its trailing dot removed as
// Domain, the client address (id.orig_h) as Machine and ts as At. Records
// whose query is unset ("-") or empty ("(empty)") are skipped. It stops at
// the first error from fn and returns it.
func ReadZeekDNS(r io.Reader, fn func(Event) error) error {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)

	tsColumn, hostColumn, queryColumn := -1, -1, -1
	line := 0
	for scanner.Scan() {
		line++
		text := scanner.Text()

		if header, ok := strings.CutPrefix(text, "#"); ok {
			if separator, ok := strings.CutPrefix(header, "separator "); ok && separator != `\x09` {
				return fmt.Errorf("zeek: line %d: separator %q is not supported, only tab (\\x09)", line, separator)
			}
			if fields, ok := strings.CutPrefix(header, "fields\t"); ok {
				for i, name := range strings.Split(fields, "\t") {
					switch name {
					case "ts":
						tsColumn = i
					case "id.orig_h":
						hostColumn = i
					case "query":
						queryColumn = i
					}
				}
			}
			continue
		}

		if tsColumn < 0 || hostColumn < 0 || queryColumn < 0 {
			return fmt.Errorf("zeek: line %d: data before a #fields line naming ts, id.orig_h and query", line)
		}
		columns := strings.Split(text, "\t")
		if len(columns) <= max(tsColumn, hostColumn, queryColumn) {
			return fmt.Errorf("zeek: line %d: %d columns, want at least %d", line, len(columns), max(tsColumn, hostColumn, queryColumn)+1)
		}

		query := columns[queryColumn]
		if query == "-" || query == "(empty)" {
			continue
		}
		at, err := parseZeekTime(columns[tsColumn])
		if err != nil {
			return fmt.Errorf("zeek: line %d: %w", line, err)
		}

		event := Event{
			Domain:  strings.TrimSuffix(strings.ToLower(query), "."),
			Machine: columns[hostColumn],
			At:      at,
		}
		if err := fn(event); err != nil {
			return err
		}
	}
	if err := scanner.Err(); err != nil {
		return fmt.Errorf("zeek: read line %d: %w", line+1, err)
	}
	return nil
}

// parseZeekTime parses epoch seconds with an optional fraction, such as
// 1521911720.600309, without the rounding of a float64.
func parseZeekTime(value string) (time.Time, error) {
	secondsText, fractionText, _ := strings.Cut(value, ".")
	seconds, err := strconv.ParseInt(secondsText, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid ts %q: %w", value, err)
	}

	var nanos int64
	if fractionText != "" {
		if len(fractionText) > 9 {
			fractionText = fractionText[:9]
		}
		padded := fractionText + strings.Repeat("0", 9-len(fractionText))
		if nanos, err = strconv.ParseInt(padded, 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("invalid ts %q: %w", value, err)
		}
	}
	return time.Unix(seconds, nanos).UTC(), nil
}

// ReadZeekDNSFile reads a Zeek dns.log from path, gunzipping it when the
// name ends in .gz.
func ReadZeekDNSFile(path string, fn func(Event) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()

	var r io.Reader = file
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(file)
		if err != nil {
			return fmt.Errorf("zeek: %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	return ReadZeekDNS(r, fn)
}

// LibraryModuleRoot returns the folder of the go.mod that declares the
// domainstats library, walking up from the working folder. The real
// telemetry lives in ../shared/data beside it.
func LibraryModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/domainstats/domainstats\n") {
			return dir, nil
		}

		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("bench: no go.mod of github.com/domainstats/domainstats above the working folder")
		}
		dir = parent
	}
}

// ZeekDNSPath returns the path of the Zeek sample dns.log beside the
// checkout, which may not exist.
func ZeekDNSPath() (string, error) {
	root, err := LibraryModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "..", "shared", "data", "zeek-wrccdc-2018", "dns.log.gz"), nil
}
