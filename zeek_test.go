package domainstats

import (
	"bufio"
	"compress/gzip"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sharedData returns the path of a file under ../shared/data beside the
// checkout, or skips the test when it is absent.
func sharedData(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join("..", "shared", "data", name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("real telemetry %s is absent (%v); place the shared data folder beside the checkout to run this test", path, err)
	}
	return path
}

// zeekDNSEvent is one line of a Zeek dns.log.
type zeekDNSEvent struct {
	at      time.Time
	machine string
	query   string
}

// readZeekDNS reads the ts, id.orig_h and query columns of a gzipped Zeek
// TSV dns.log, skipping lines whose query is unset ("-") or empty
// ("(empty)").
func readZeekDNS(t *testing.T, path string) []zeekDNSEvent {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	unzipped, err := gzip.NewReader(file)
	if err != nil {
		t.Fatal(err)
	}

	var events []zeekDNSEvent
	columns := map[string]int{}
	scanner := bufio.NewScanner(unzipped)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if rest, ok := strings.CutPrefix(line, "#fields\t"); ok {
			for i, name := range strings.Split(rest, "\t") {
				columns[name] = i
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		query := fields[columns["query"]]
		if query == "-" || query == "(empty)" {
			continue
		}
		events = append(events, zeekDNSEvent{
			at:      parseZeekTime(t, fields[columns["ts"]]),
			machine: fields[columns["id.orig_h"]],
			query:   query,
		})
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

// parseZeekTime parses epoch seconds with a fraction without going through
// a float, so that no microsecond is lost.
func parseZeekTime(t *testing.T, ts string) time.Time {
	t.Helper()
	seconds, fraction, _ := strings.Cut(ts, ".")
	sec, err := strconv.ParseInt(seconds, 10, 64)
	if err != nil {
		t.Fatalf("bad ts %q: %v", ts, err)
	}
	fraction = (fraction + "000000000")[:9]
	nanos, err := strconv.ParseInt(fraction, 10, 64)
	if err != nil {
		t.Fatalf("bad ts %q: %v", ts, err)
	}
	return time.Unix(sec, nanos).UTC()
}

func TestZeekDNSMatchesExactCount(t *testing.T) {
	events := readZeekDNS(t, sharedData(t, "zeek-wrccdc-2018/dns.log.gz"))

	// The exact statistics, computed without the store. Times keep whole
	// milliseconds, the precision the store guarantees.
	type exactStats struct {
		machines    map[string]bool
		first, last time.Time
	}
	exact := make(map[string]*exactStats)
	var newest time.Time
	for _, e := range events {
		name := strings.TrimSuffix(strings.ToLower(e.query), ".")
		at := e.at.Truncate(time.Millisecond)
		st := exact[name]
		if st == nil {
			st = &exactStats{machines: map[string]bool{}, first: at, last: at}
			exact[name] = st
		}
		st.machines[e.machine] = true
		if at.Before(st.first) {
			st.first = at
		}
		if at.After(st.last) {
			st.last = at
		}
		if at.After(newest) {
			newest = at
		}
	}

	s := openTestStore(t, &Options{Now: func() time.Time { return newest }})
	rejected := make(map[string]bool)
	for _, e := range events {
		err := s.Record(e.query, e.machine, e.at)
		if errors.Is(err, ErrInvalidDomain) {
			rejected[strings.TrimSuffix(strings.ToLower(e.query), ".")] = true
			continue
		}
		if err != nil {
			t.Fatalf("Record(%q, %q) failed: %v", e.query, e.machine, err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, %d distinct names, %d rejected as invalid: %v", len(events), len(exact), len(rejected), slices.Sorted(maps.Keys(rejected)))
	if len(exact) != 1649 {
		t.Errorf("the file has %d distinct names, want 1,649", len(exact))
	}

	checked := 0
	for name, want := range exact {
		if rejected[name] {
			continue
		}
		got, err := s.Stats(name)
		if err != nil {
			t.Errorf("Stats(%q) failed: %v", name, err)
			continue
		}
		if got.OrgPrevalence != int64(len(want.machines)) || !got.OrgFirstSeen.Equal(want.first) || !got.OrgLastSeen.Equal(want.last) {
			t.Errorf("Stats(%q) = %d machines, %s to %s; exact count: %d machines, %s to %s",
				name, got.OrgPrevalence, got.OrgFirstSeen, got.OrgLastSeen, len(want.machines), want.first, want.last)
		}
		checked++
	}
	if checked+len(rejected) != len(exact) {
		t.Errorf("checked %d names and rejected %d, want %d in all", checked, len(rejected), len(exact))
	}

	google, err := s.Stats("www.google.com")
	if err != nil {
		t.Fatal(err)
	}
	if google.OrgPrevalence != 27 || google.OrgFirstSeen.Format(time.RFC3339) != "2018-03-24T17:15:23Z" || google.OrgLastSeen.Format(time.RFC3339) != "2018-03-24T17:36:14Z" {
		t.Errorf("www.google.com = %+v, want 27 machines from 2018-03-24T17:15:23Z to 17:36:14Z", google)
	}
}
