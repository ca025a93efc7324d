package ingest

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sharedData returns the path of a file in the telemetry folder that sits
// beside the module root, or skips the test when it is absent.
func sharedData(t *testing.T, name string) string {
	t.Helper()

	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's folder")
		}
		dir = parent
	}

	path := filepath.Join(dir, "..", "shared", "data", name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared telemetry %s is absent (%v); it lives beside the module root in CI", name, err)
	}
	return path
}

func readFileEvents(t *testing.T, path string) []string {
	t.Helper()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	r, err := NewReader(f, &Options{Name: path})
	if err != nil {
		t.Fatal(err)
	}
	return drain(t, r).Events
}

// TestZeekSharedDNSLog compares the reader with a plain split of every
// data line of a real Zeek dns.log.
func TestZeekSharedDNSLog(t *testing.T) {
	path := sharedData(t, "zeek-wrccdc-2018/dns.log.gz")

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}

	var want []string
	scanner := bufio.NewScanner(zr)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		columns := strings.Split(line, "\t")
		ts, machine, query := columns[0], columns[2], columns[9]
		// Zeek writes "-" for an unset query and "(empty)" for an empty
		// one. This log has 2 of the first and 12 of the second.
		if query == "-" || query == "(empty)" {
			continue
		}
		// An IP address literal is skipped as no domain. This log
		// has 6 queries of 10.47.7.30.
		if _, err := netip.ParseAddr(query); err == nil {
			continue
		}
		sec, frac, _ := strings.Cut(ts, ".")
		at, err := time.Parse(time.RFC3339Nano, "1970-01-01T00:00:00Z")
		if err != nil {
			t.Fatal(err)
		}
		at = at.Add(mustDuration(t, sec+"s") + mustDuration(t, frac+"us"))
		want = append(want, query+" "+machine+" "+at.Format(time.RFC3339Nano))
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}

	got := readFileEvents(t, path)
	if len(want) != 53595 {
		t.Errorf("independent count found %d events, want 53,615 records less 14 without a query and 6 of an IP address", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()

	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSysmonSharedEvents compares the reader with a plain decode of every
// line of real Sysmon Event ID 22 records.
func TestSysmonSharedEvents(t *testing.T) {
	path := sharedData(t, "sysmon-otrf/dns-query-events.ndjson")

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var want []string
	machines := map[string]bool{}
	domains := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var record struct {
			Hostname  string
			QueryName string
			UtcTime   string
		}
		if err := json.Unmarshal([]byte(line), &record); err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse("2006-01-02 15:04:05.000", record.UtcTime)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, record.QueryName+" "+record.Hostname+" "+at.Format(time.RFC3339Nano))
		machines[record.Hostname] = true
		domains[strings.ToLower(record.QueryName)] = true
	}
	if len(want) != 130 || len(machines) != 7 || len(domains) != 56 {
		t.Errorf("independent decode found %d events, %d machines, %d names; want 130, 7, 56", len(want), len(machines), len(domains))
	}

	got := readFileEvents(t, path)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
}
