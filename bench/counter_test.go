package bench

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exactResult computes the Result for domain over lookBack from the raw
// events, which every Counter should return.
func exactResult(events []Event, domain string, now time.Time, lookBack time.Duration) (Result, bool) {
	from := now.Add(-lookBack)
	machines := map[string]bool{}
	var result Result
	for _, e := range events {
		if e.Domain != domain || e.At.Before(from) || e.At.After(now) {
			continue
		}
		machines[e.Machine] = true
		if result.FirstSeen.IsZero() || e.At.Before(result.FirstSeen) {
			result.FirstSeen = e.At
		}
		if e.At.After(result.LastSeen) {
			result.LastSeen = e.At
		}
	}
	result.Machines = int64(len(machines))
	return result, len(machines) > 0
}

// counterCase is one Counter under test, with which of its times are exact.
type counterCase struct {
	name       string
	open       func(t *testing.T) Counter
	firstExact bool // FirstSeen equals the earliest event in the window
	lastExact  bool // LastSeen equals the latest event in the window

	// precision is the unit that the counter truncates times to, or zero
	// when it keeps nanoseconds.
	precision time.Duration
}

func counterCases() []counterCase {
	return []counterCase{
		{
			name:       "map",
			open:       func(t *testing.T) Counter { return NewMapCounter(BenchNow) },
			firstExact: false,
			lastExact:  true,
		},
		{
			name: "sqlite-pairs",
			open: func(t *testing.T) Counter {
				c, err := OpenSQLite(filepath.Join(t.TempDir(), "pairs.db"), SQLitePairs, BenchNow)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			lastExact: true,
		},
		{
			name: "sqlite-events",
			open: func(t *testing.T) Counter {
				c, err := OpenSQLite(filepath.Join(t.TempDir(), "events.db"), SQLiteEvents, BenchNow)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			firstExact: true,
			lastExact:  true,
		},
		{
			name: "redis-hll",
			open: func(t *testing.T) Counter {
				c, err := NewRedisCounter(context.Background(), sharedRedis(t), redisDBTests, BenchNow)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
		},
		{
			name: "store",
			open: func(t *testing.T) Counter {
				c, err := OpenStore(filepath.Join(t.TempDir(), "store.db"), BenchNow, -1)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			firstExact: true,
			lastExact:  true,
			precision:  time.Millisecond,
		},
	}
}

func TestCountersMatchExactCount(t *testing.T) {
	w := Workload{Seed: 5, Events: 5_000, Domains: 40, Machines: 30, Days: 30, ZipfS: 1.2, End: BenchNow}
	events := collect(w)

	for _, tc := range counterCases() {
		t.Run(tc.name, func(t *testing.T) {
			counter := tc.open(t)
			defer func() {
				if err := counter.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()

			for _, e := range events {
				if err := counter.Record(e); err != nil {
					t.Fatalf("Record(%+v): %v", e, err)
				}
			}
			if err := counter.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}

			for domain := range w.Domains {
				name := DomainName(domain)
				for _, window := range Windows {
					want, found := exactResult(events, name, BenchNow, window)
					if tc.precision > 0 {
						want.FirstSeen = want.FirstSeen.Truncate(tc.precision)
						want.LastSeen = want.LastSeen.Truncate(tc.precision)
					}
					got, err := counter.Count(name, window)

					if !found {
						if !errors.Is(err, ErrNoEvents) {
							t.Errorf("Count(%s, %v) error = %v, want ErrNoEvents", name, window, err)
						}
						continue
					}
					if err != nil {
						t.Errorf("Count(%s, %v): %v", name, window, err)
						continue
					}
					if got.Machines != want.Machines {
						t.Errorf("Count(%s, %v).Machines = %d, want %d", name, window, got.Machines, want.Machines)
					}
					if tc.firstExact && !got.FirstSeen.Equal(want.FirstSeen) {
						t.Errorf("Count(%s, %v).FirstSeen = %v, want %v", name, window, got.FirstSeen, want.FirstSeen)
					}
					if tc.lastExact && !got.LastSeen.Equal(want.LastSeen) {
						t.Errorf("Count(%s, %v).LastSeen = %v, want %v", name, window, got.LastSeen, want.LastSeen)
					}
				}
			}
		})
	}
}

func TestReadZeekDNS(t *testing.T) {
	log := "#separator \\x09\n" +
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tquery\n" +
		"#types\ttime\tstring\taddr\tport\tstring\n" +
		"1521911720.600309\tC1\t10.0.0.1\t5353\tWWW.Example.COM.\n" +
		"1521911721\tC2\t10.0.0.2\t5353\t-\n" +
		"1521911722.5\tC3\t10.0.0.3\t5353\t(empty)\n" +
		"1521911723.000001\tC4\t10.0.0.4\t5353\tmail.example.org\n"

	var got []Event
	err := ReadZeekDNS(strings.NewReader(log), func(e Event) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadZeekDNS: %v", err)
	}

	want := []Event{
		{Domain: "www.example.com", Machine: "10.0.0.1", At: time.Unix(1521911720, 600309000).UTC()},
		{Domain: "mail.example.org", Machine: "10.0.0.4", At: time.Unix(1521911723, 1000).UTC()},
	}
	if len(got) != len(want) {
		t.Fatalf("ReadZeekDNS returned %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Domain != want[i].Domain || got[i].Machine != want[i].Machine || !got[i].At.Equal(want[i].At) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadZeekDNSRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		log  string
	}{
		{"comma separator", "#separator ,\n"},
		{"data before fields", "1521911720.6\tC1\t10.0.0.1\n"},
		{"short line", "#fields\tts\tid.orig_h\tquery\n1521911720.6\t10.0.0.1\n"},
		{"invalid ts", "#fields\tts\tid.orig_h\tquery\nnoon\t10.0.0.1\texample.com\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ReadZeekDNS(strings.NewReader(tt.log), func(Event) error { return nil })
			if err == nil {
				t.Errorf("ReadZeekDNS(%q) returned no error", tt.log)
			}
		})
	}
}
