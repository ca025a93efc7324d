package bench

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/domainstats/domainstats"
)

// zeekEvents are the events of the Zeek sample dns.log beside the checkout,
// with domains normalized by domainstats.NormalizeDomain so that every
// implementation gets the same names. Queries that the store rejects as
// invalid domains are dropped.
var zeekEvents = sync.OnceValues(func() ([]Event, error) {
	path, err := ZeekDNSPath()
	if err != nil {
		return nil, err
	}

	var events []Event
	err = ReadZeekDNSFile(path, func(e Event) error {
		domain, err := domainstats.NormalizeDomain(e.Domain)
		if errors.Is(err, domainstats.ErrInvalidDomain) {
			return nil
		}
		if err != nil {
			return err
		}
		e.Domain = domain
		events = append(events, e)
		return nil
	})
	return events, err
})

// loadZeek returns the Zeek sample events, or skips tb when the file is
// absent.
func loadZeek(tb testing.TB) []Event {
	tb.Helper()

	path, err := ZeekDNSPath()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		tb.Skipf("skipping: the Zeek sample %s is absent (it lives in ../shared/data beside the checkout)", path)
	}

	events, err := zeekEvents()
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return events
}

func countPairs(events []Event) int64 {
	seen := map[[2]string]struct{}{}
	for _, e := range events {
		seen[[2]string{e.Domain, e.Machine}] = struct{}{}
	}
	return int64(len(seen))
}

// BenchmarkDiskSize loads a data set into a new file and reports the file's
// bytes per distinct (domain, machine) pair and per event, on the real
// Zeek sample and on 100k generated events. The timed part is the load.
func BenchmarkDiskSize(b *testing.B) {
	sets := []struct {
		name   string
		events func(testing.TB) []Event
	}{
		{"zeek", loadZeek},
		{"generated-100k", func(testing.TB) []Event { return collect(DefaultWorkload(100_000)) }},
	}

	for _, set := range sets {
		for _, impl := range []string{"store", "sqlite-pairs", "sqlite-events"} {
			b.Run(fmt.Sprintf("data=%s/impl=%s", set.name, impl), func(b *testing.B) {
				benchmarkDiskSize(b, set.events(b), impl)
			})
		}
	}
}

func benchmarkDiskSize(b *testing.B, events []Event, impl string) {
	var bytes int64
	for b.Loop() {
		dir := b.TempDir()
		counter, err := openCounter(impl, dir, redisDBZeek)
		if err != nil {
			skipOrFatal(b, err)
		}
		for _, e := range events {
			if err := counter.Record(e); err != nil {
				b.Fatalf("%s: Record(%+v): %v", impl, e, err)
			}
		}
		if err := counter.Close(); err != nil {
			b.Fatalf("%s: Close: %v", impl, err)
		}
		bytes = dirBytes(b, dir)
	}

	b.ReportMetric(float64(bytes)/float64(countPairs(events)), "bytes/pair")
	b.ReportMetric(float64(bytes)/float64(len(events)), "bytes/event")
}

func TestZeekSampleCounts(t *testing.T) {
	path, err := ZeekDNSPath()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		t.Skipf("skipping: the Zeek sample %s is absent (it lives in ../shared/data beside the checkout)", path)
	}

	var events int
	domains, clients := map[string]bool{}, map[string]bool{}
	err = ReadZeekDNSFile(path, func(e Event) error {
		events++
		domains[e.Domain] = true
		clients[e.Machine] = true
		return nil
	})
	if err != nil {
		t.Fatalf("ReadZeekDNSFile(%s): %v", path, err)
	}

	// The data set's description: 53,615 records of which 14 have no
	// query, 1,649 distinct names and 77 distinct clients.
	if events != 53_615-14 {
		t.Errorf("read %d events, want %d", events, 53_615-14)
	}
	if len(domains) != 1_649 {
		t.Errorf("read %d distinct domains, want 1,649", len(domains))
	}
	if len(clients) != 77 {
		t.Errorf("read %d distinct clients, want 77", len(clients))
	}
}
