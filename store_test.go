package domainstats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// testNow is the fixed clock of most tests: windows end in its hour.
var testNow = time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)

// openTestStore opens a store in a fresh temporary folder with a fixed
// clock and no background flush, so tests decide when data is committed.
func openTestStore(t *testing.T, opts *Options) *Store {
	t.Helper()
	return openTestStoreAt(t, filepath.Join(t.TempDir(), "stats.db"), opts)
}

func openTestStoreAt(t *testing.T, path string, opts *Options) *Store {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = -1
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%q) failed: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// updateClosedFile runs update in a write transaction on the closed store
// file at path, opened with bbolt directly, to damage it behind the
// store's back.
func updateClosedFile(t *testing.T, path string, update func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(update)
	if closeErr := db.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func mustRecord(t *testing.T, s *Store, domain, machine string, at time.Time) {
	t.Helper()
	if err := s.Record(domain, machine, at); err != nil {
		t.Fatalf("Record(%q, %q, %s) failed: %v", domain, machine, at, err)
	}
}

func mustStats(t *testing.T, s *Store, domain string, lookBack time.Duration) Stats {
	t.Helper()
	got, err := s.StatsLookBack(domain, lookBack)
	if err != nil {
		t.Fatalf("StatsLookBack(%q, %s) failed: %v", domain, lookBack, err)
	}
	return got
}

// checkBothSides runs check on the buffered events, then again after a
// flush, because the two read different code paths.
func checkBothSides(t *testing.T, s *Store, check func(t *testing.T)) {
	t.Helper()
	t.Run("buffered", check)
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush failed: %v", err)
	}
	t.Run("flushed", check)
}

func TestStatsMatchesDefenderExample(t *testing.T) {
	// The example response of Defender's documentation, rebuilt from
	// events: 4,070 machines, first seen 2017-07-30T13:23:48Z and last seen
	// 2017-08-29T13:09:05Z, queried at 2017-08-29T13:30Z so that both
	// ends fall inside the 720 hours that end with 13:00 to 13:59.
	first := time.Date(2017, 7, 30, 13, 23, 48, 0, time.UTC)
	last := time.Date(2017, 8, 29, 13, 9, 5, 0, time.UTC)
	s := openTestStore(t, &Options{Now: func() time.Time { return time.Date(2017, 8, 29, 13, 30, 0, 0, time.UTC) }})
	for i := range 4070 {
		at := first.Add(last.Sub(first) / 4069 * time.Duration(i))
		if i == 4069 {
			at = last
		}
		mustRecord(t, s, "example.com", fmt.Sprintf("machine-%d", i), at)
	}

	want := Stats{Host: "example.com", OrgPrevalence: 4070, OrgFirstSeen: first, OrgLastSeen: last}
	checkBothSides(t, s, func(t *testing.T) {
		got, err := s.Stats("example.com")
		if err != nil {
			t.Fatalf("Stats failed: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Stats mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestStatsNormalizesNames(t *testing.T) {
	s := openTestStore(t, nil)
	at := testNow.Add(-time.Hour)
	mustRecord(t, s, "Example.COM.", "host-1", at)
	mustRecord(t, s, " example.com ", "HOST-1", at)
	mustRecord(t, s, "example.com", " host-2 ", at)
	mustRecord(t, s, "bücher.example", "host-1", at)
	mustRecord(t, s, "XN--BCHER-KVA.example", "host-2", at)

	checkBothSides(t, s, func(t *testing.T) {
		for _, name := range []string{"example.com", "Example.COM.", "EXAMPLE.com"} {
			got := mustStats(t, s, name, DefaultLookBack)
			if got.Host != "example.com" || got.OrgPrevalence != 2 {
				t.Errorf("Stats(%q) = %+v, want host example.com with prevalence 2", name, got)
			}
		}
		unicode := mustStats(t, s, "bücher.example", DefaultLookBack)
		puny := mustStats(t, s, "xn--bcher-kva.example", DefaultLookBack)
		if diff := cmp.Diff(unicode, puny); diff != "" {
			t.Errorf("Unicode and punycode names differ (-unicode +punycode):\n%s", diff)
		}
		if unicode.OrgPrevalence != 2 {
			t.Errorf("Stats(bücher.example).OrgPrevalence = %d, want 2", unicode.OrgPrevalence)
		}
	})
}

func TestRecordRejectsBadInput(t *testing.T) {
	s := openTestStore(t, nil)
	tests := []struct {
		reason  string
		domain  string
		machine string
		at      time.Time
		want    error
	}{
		{"URL as domain", "http://example.com/", "host-1", testNow, ErrInvalidDomain},
		{"empty domain", "", "host-1", testNow, ErrInvalidDomain},
		{"empty machine", "example.com", "", testNow, ErrInvalidMachine},
		{"blank machine", "example.com", " \t ", testNow, ErrInvalidMachine},
		{"invalid UTF-8 machine", "example.com", "h\xffst", testNow, ErrInvalidMachine},
		{"zero time", "example.com", "host-1", time.Time{}, ErrInvalidTime},
		{"time before 1970", "example.com", "host-1", time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC), ErrInvalidTime},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			err := s.Record(tt.domain, tt.machine, tt.at)
			if !errors.Is(err, tt.want) {
				t.Errorf("Record(%q, %q, %s) = %v, want an error wrapping %v", tt.domain, tt.machine, tt.at, err, tt.want)
			}
		})
	}

	if err := s.Flush(); err != nil {
		t.Fatalf("Flush failed: %v", err)
	}
	if _, err := s.Stats("example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stats after rejected events = %v, want ErrNotFound", err)
	}
}

func TestStatsTimeZonesAndPrecision(t *testing.T) {
	s := openTestStore(t, nil)
	tokyo := time.FixedZone("JST", 9*3600)
	first := time.Date(2024, 5, 1, 18, 0, 1, 123_000_000, tokyo) // 09:00:01.123Z
	last := time.Date(2024, 5, 1, 5, 15, 0, 987_000_000, time.FixedZone("EDT", -4*3600))

	mustRecord(t, s, "example.com", "host-1", last)
	mustRecord(t, s, "example.com", "host-2", first)

	want := Stats{
		Host:          "example.com",
		OrgPrevalence: 2,
		OrgFirstSeen:  time.Date(2024, 5, 1, 9, 0, 1, 123_000_000, time.UTC),
		OrgLastSeen:   time.Date(2024, 5, 1, 9, 15, 0, 987_000_000, time.UTC),
	}
	checkBothSides(t, s, func(t *testing.T) {
		got := mustStats(t, s, "example.com", DefaultLookBack)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Stats mismatch (-want +got):\n%s", diff)
		}
		if got.OrgFirstSeen.Location() != time.UTC {
			t.Errorf("OrgFirstSeen is in %v, want UTC", got.OrgFirstSeen.Location())
		}
	})
}

func TestRecordTwiceChangesNothing(t *testing.T) {
	s := openTestStore(t, nil)
	events := []struct {
		machine string
		at      time.Time
	}{
		{"host-1", testNow.Add(-3 * time.Hour)},
		{"host-2", testNow.Add(-2 * time.Hour)},
		{"host-1", testNow.Add(-time.Hour)},
	}
	for _, e := range events {
		mustRecord(t, s, "example.com", e.machine, e.at)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	before := mustStats(t, s, "example.com", DefaultLookBack)

	// Replay in reverse order, as a resumed ingest may.
	for i := len(events) - 1; i >= 0; i-- {
		mustRecord(t, s, "example.com", events[i].machine, events[i].at)
	}
	checkBothSides(t, s, func(t *testing.T) {
		after := mustStats(t, s, "example.com", DefaultLookBack)
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("replay changed the stats (-before +after):\n%s", diff)
		}
	})
}

func TestStatsWindows(t *testing.T) {
	// testNow is 12:30, so windows end at 12:59:59.999 and start at the
	// beginning of the hour of 12:30 minus the look-back.
	hour := func(h int, minute int) time.Time {
		return time.Date(2024, 5, 1, 0, minute, 0, 0, time.UTC).Add(time.Duration(h) * time.Hour)
	}
	s := openTestStore(t, nil)
	mustRecord(t, s, "example.com", "old", hour(12-720, 5))    // first hour of a 720 h window
	mustRecord(t, s, "example.com", "older", hour(12-721, 59)) // just outside it
	mustRecord(t, s, "example.com", "day", hour(12-30, 0))
	mustRecord(t, s, "example.com", "recent", hour(11, 0))
	mustRecord(t, s, "example.com", "now", hour(12, 45)) // later in the current hour

	tests := []struct {
		lookBack   time.Duration
		prevalence int64
		first      time.Time
		last       time.Time
	}{
		{30 * time.Minute, 1, hour(12, 45), hour(12, 45)},
		{time.Hour, 2, hour(11, 0), hour(12, 45)},
		{90 * time.Minute, 2, hour(11, 0), hour(12, 45)},
		{24 * time.Hour, 2, hour(11, 0), hour(12, 45)},
		{48 * time.Hour, 3, hour(12-30, 0), hour(12, 45)},
		{719 * time.Hour, 3, hour(12-30, 0), hour(12, 45)},
		{720 * time.Hour, 4, hour(12-720, 5), hour(12, 45)},
	}
	checkBothSides(t, s, func(t *testing.T) {
		for _, tt := range tests {
			got := mustStats(t, s, "example.com", tt.lookBack)
			want := Stats{Host: "example.com", OrgPrevalence: tt.prevalence, OrgFirstSeen: tt.first, OrgLastSeen: tt.last}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("StatsLookBack(%s) mismatch (-want +got):\n%s", tt.lookBack, diff)
			}
		}
	})
}

func TestStatsWindowBeforeNewestEvents(t *testing.T) {
	// A clock in the past: machines active before, inside and after the
	// window count only for their events inside it.
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	now := base.Add(10*time.Hour + 30*time.Minute)
	s := openTestStore(t, &Options{Now: func() time.Time { return now }})

	mustRecord(t, s, "example.com", "gap", base.Add(5*time.Hour))     // before a 2 h window
	mustRecord(t, s, "example.com", "gap", base.Add(20*time.Hour))    // after it
	mustRecord(t, s, "example.com", "inside", base.Add(9*time.Hour))  // in it
	mustRecord(t, s, "example.com", "inside", base.Add(30*time.Hour)) // and after it
	mustRecord(t, s, "example.com", "future", base.Add(40*time.Hour)) // only after it

	checkBothSides(t, s, func(t *testing.T) {
		got := mustStats(t, s, "example.com", 2*time.Hour)
		want := Stats{Host: "example.com", OrgPrevalence: 1, OrgFirstSeen: base.Add(9 * time.Hour), OrgLastSeen: base.Add(9 * time.Hour)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("StatsLookBack(2h) mismatch (-want +got):\n%s", diff)
		}
		got = mustStats(t, s, "example.com", 6*time.Hour)
		if got.OrgPrevalence != 2 {
			t.Errorf("StatsLookBack(6h).OrgPrevalence = %d, want 2", got.OrgPrevalence)
		}
	})
}

func TestStatsErrors(t *testing.T) {
	s := openTestStore(t, &Options{Retention: 48 * time.Hour})
	mustRecord(t, s, "example.com", "host-1", testNow.Add(-30*time.Hour))

	tests := []struct {
		reason   string
		domain   string
		lookBack time.Duration
		want     error
	}{
		{"unknown domain", "example.org", DefaultLookBack / 15, ErrNotFound},
		{"no event in window", "example.com", 24 * time.Hour, ErrNotFound},
		{"zero look-back", "example.com", 0, ErrInvalidLookBack},
		{"negative look-back", "example.com", -time.Hour, ErrInvalidLookBack},
		{"look-back longer than retention", "example.com", 49 * time.Hour, ErrInvalidLookBack},
		{"invalid domain", "exa mple.com", time.Hour, ErrInvalidDomain},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			_, err := s.StatsLookBack(tt.domain, tt.lookBack)
			if !errors.Is(err, tt.want) {
				t.Errorf("StatsLookBack(%q, %s) = %v, want an error wrapping %v", tt.domain, tt.lookBack, err, tt.want)
			}
		})
	}

	if _, err := s.Stats("example.com"); !errors.Is(err, ErrInvalidLookBack) {
		t.Errorf("Stats with the 720 h default over a 48 h retention = %v, want ErrInvalidLookBack", err)
	}
	if got := mustStats(t, s, "example.com", 48*time.Hour); got.OrgPrevalence != 1 {
		t.Errorf("StatsLookBack(48h).OrgPrevalence = %d, want 1", got.OrgPrevalence)
	}
}

func TestRetentionFollowsNewestEvent(t *testing.T) {
	// A replay of 2018 logs with today's clock: retention counts back from
	// the newest event, so nothing is pruned for being old by the wall
	// clock, and a clock ending at the newest event covers all of it.
	newest := time.Date(2018, 3, 24, 17, 36, 14, 0, time.UTC)
	s := openTestStore(t, &Options{
		Retention: 24 * time.Hour,
		Now:       func() time.Time { return newest },
	})
	mustRecord(t, s, "kept.example", "host-1", newest.Add(-23*time.Hour))
	mustRecord(t, s, "pruned.example", "host-1", newest.Add(-25*time.Hour))
	mustRecord(t, s, "pruned.example", "host-2", newest.Add(-26*time.Hour))
	mustRecord(t, s, "kept.example", "host-2", newest)

	checkBothSides(t, s, func(t *testing.T) {
		got := mustStats(t, s, "kept.example", 24*time.Hour)
		if got.OrgPrevalence != 2 {
			t.Errorf("kept.example prevalence = %d, want 2", got.OrgPrevalence)
		}
		if _, err := s.StatsLookBack("pruned.example", 24*time.Hour); !errors.Is(err, ErrNotFound) {
			t.Errorf("pruned.example = %v, want ErrNotFound", err)
		}
	})

	// The sweep deleted the record, not only hid it.
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(domainsBucket).Get([]byte("pruned.example")) != nil {
			return errors.New("pruned.example is still stored")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestRetentionPrunesWhenNewerEventsArrive(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := start
	s := openTestStore(t, &Options{Retention: 48 * time.Hour, Now: func() time.Time { return clock }})
	mustRecord(t, s, "old.example", "host-1", start)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	// Three days later the old event falls outside the retention and is
	// swept at the next flush.
	clock = start.Add(72 * time.Hour)
	mustRecord(t, s, "new.example", "host-1", clock)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(domainsBucket).Get([]byte("old.example")) != nil {
			return errors.New("old.example is still stored")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	// An event older than the retention arriving late is dropped.
	mustRecord(t, s, "late.example", "host-1", start)
	checkBothSides(t, s, func(t *testing.T) {
		if _, err := s.StatsLookBack("late.example", 48*time.Hour); !errors.Is(err, ErrNotFound) {
			t.Errorf("late.example = %v, want ErrNotFound", err)
		}
	})
}

func TestStorePersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	s := openTestStoreAt(t, path, nil)
	mustRecord(t, s, "example.com", "host-1", testNow.Add(-time.Hour))
	mustRecord(t, s, "example.com", "host-2", testNow)
	if err := s.SetCheckpoint("/var/log/dns.log", []byte("offset 42")); err != nil {
		t.Fatal(err)
	}
	want := mustStats(t, s, "example.com", DefaultLookBack)
	if err := s.Close(); err != nil {
		t.Fatalf("Close failed: %v", err)
	}

	if err := s.Record("example.com", "host-3", testNow); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Stats("example.com"); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close = %v, want ErrClosed", err)
	}

	reopened := openTestStoreAt(t, path, nil)
	got := mustStats(t, reopened, "example.com", DefaultLookBack)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats after reopen mismatch (-want +got):\n%s", diff)
	}
	checkpoint, err := reopened.Checkpoint("/var/log/dns.log")
	if err != nil || string(checkpoint) != "offset 42" {
		t.Errorf("Checkpoint after reopen = %q, %v; want \"offset 42\"", checkpoint, err)
	}
	newest, ok := reopened.Newest()
	if !ok || !newest.Equal(testNow) {
		t.Errorf("Newest after reopen = %s, %t; want %s", newest, ok, testNow)
	}
}

func TestReadOnlyOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	writer := openTestStoreAt(t, path, nil)
	mustRecord(t, writer, "example.com", "host-1", testNow)
	if err := writer.SetCheckpoint("dns.log", []byte("offset 7")); err != nil {
		t.Fatal(err)
	}
	want := mustStats(t, writer, "example.com", DefaultLookBack)
	if err := writer.Close(); err != nil {
		t.Fatal(err)
	}

	reader := openTestStoreAt(t, path, &Options{ReadOnly: true})
	got := mustStats(t, reader, "example.com", DefaultLookBack)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats read-only mismatch (-want +got):\n%s", diff)
	}
	checkpoint, err := reader.Checkpoint("dns.log")
	if err != nil || string(checkpoint) != "offset 7" {
		t.Errorf("Checkpoint read-only = %q, %v; want \"offset 7\"", checkpoint, err)
	}
	if err := reader.Record("example.com", "host-2", testNow); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Record read-only = %v, want ErrReadOnly", err)
	}
}

// TestReadOnlyBlankFile opens files as a process killed while creating
// one leaves them: empty, or with bbolt's first pages and no bucket.
func TestReadOnlyBlankFile(t *testing.T) {
	tests := []struct {
		name   string
		create func(t *testing.T, path string)
	}{
		{
			name: "empty file",
			create: func(t *testing.T, path string) {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "no bucket",
			create: func(t *testing.T, path string) {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "stats.db")
			tt.create(t, path)
			checkBlankReadOnly(t, path)

			writer := openTestStoreAt(t, path, nil)
			mustRecord(t, writer, "example.com", "host-1", testNow)
			if err := writer.Flush(); err != nil {
				t.Fatalf("Flush into a blank file failed: %v", err)
			}
			if got := mustStats(t, writer, "example.com", DefaultLookBack); got.OrgPrevalence != 1 {
				t.Errorf("prevalence after writing a blank file = %d, want 1", got.OrgPrevalence)
			}
		})
	}
}

// checkBlankReadOnly opens the file at path read-only and checks that it
// reads as a store without events.
func checkBlankReadOnly(t *testing.T, path string) {
	t.Helper()

	reader := openTestStoreAt(t, path, &Options{ReadOnly: true})
	if _, err := reader.Stats("example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stats on a blank file = %v, want ErrNotFound", err)
	}
	if checkpoint, err := reader.Checkpoint("dns.log"); err != nil || checkpoint != nil {
		t.Errorf("Checkpoint on a blank file = %q, %v; want nil, nil", checkpoint, err)
	}
	if newest, ok := reader.Newest(); ok {
		t.Errorf("Newest on a blank file = %s, want none", newest)
	}
	if got := reader.Retention(); got != DefaultRetention {
		t.Errorf("Retention on a blank file = %s, want %s", got, DefaultRetention)
	}

	report, err := reader.Verify()
	if err != nil {
		t.Fatalf("Verify on a blank file failed: %v", err)
	}
	if report.DamagedTotal != 0 || report.Domains != 0 || report.Sketches != 0 {
		t.Errorf("Verify on a blank file = %+v, want an empty clean report", report)
	}

	if err := reader.Close(); err != nil {
		t.Errorf("Close of a blank file failed: %v", err)
	}
	if _, err := reader.Stats("example.com"); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close = %v, want ErrClosed", err)
	}
}

func TestBackgroundFlushCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	flushed := make(chan struct{})
	var once sync.Once
	s, err := Open(path, &Options{
		Now:           func() time.Time { return testNow },
		FlushInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustRecord(t, s, "example.com", "host-1", testNow)

	// Poll the file, not the buffer, until the background flush lands.
	go func() {
		for range 5000 {
			var stored bool
			s.db.View(func(tx *bolt.Tx) error {
				stored = tx.Bucket(domainsBucket).Get([]byte("example.com")) != nil
				return nil
			})
			if stored {
				once.Do(func() { close(flushed) })
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	select {
	case <-flushed:
	case <-time.After(10 * time.Second):
		t.Fatal("the background flush did not commit within 10 s")
	}
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	openTestStoreAt(t, path, nil)

	started := time.Now()
	_, err := Open(path, &Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("Open of a locked file succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("Open error %q does not wrap ErrLocked and say the file is locked", err)
	}
	if waited := time.Since(started); waited > 5*time.Second {
		t.Errorf("Open waited %s, far past its 100 ms lock timeout", waited)
	}
}

func TestCorruptRecordNamesDomain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	s := openTestStoreAt(t, path, nil)
	mustRecord(t, s, "damaged.example", "host-1", testNow)
	mustRecord(t, s, "intact.example", "host-1", testNow)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Flip one byte in the middle of the stored record.
	updateClosedFile(t, path, func(tx *bolt.Tx) error {
		bucket := tx.Bucket(domainsBucket)
		data := append([]byte{}, bucket.Get([]byte("damaged.example"))...)
		data[len(data)/2] ^= 0x40
		return bucket.Put([]byte("damaged.example"), data)
	})

	reopened := openTestStoreAt(t, path, nil)
	_, err := reopened.Stats("damaged.example")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "damaged.example") {
		t.Errorf("Stats(damaged.example) = %v, want ErrCorrupt naming the domain", err)
	}
	if got := mustStats(t, reopened, "intact.example", DefaultLookBack); got.OrgPrevalence != 1 {
		t.Errorf("intact.example prevalence = %d, want 1", got.OrgPrevalence)
	}

	// A flush that would rewrite the damaged record fails and keeps the
	// event buffered rather than dropping what was stored.
	mustRecord(t, reopened, "damaged.example", "host-2", testNow)
	if err := reopened.Flush(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Flush over a damaged record = %v, want ErrCorrupt", err)
	}
}

func TestBufferStaysBounded(t *testing.T) {
	const bound = 6400
	s := openTestStore(t, &Options{MaxBufferedPairs: bound})
	for i := range 50_000 {
		mustRecord(t, s, fmt.Sprintf("d%d.example", i), "host-1", testNow)
		if buffered := s.buffered.Load(); buffered > 2*bound {
			t.Fatalf("after %d events the store buffers %d entries, above twice its bound of %d", i+1, buffered, bound)
		}
	}
	if got := mustStats(t, s, "d49999.example", DefaultLookBack); got.OrgPrevalence != 1 {
		t.Errorf("last domain prevalence = %d, want 1", got.OrgPrevalence)
	}
	if got := mustStats(t, s, "d0.example", DefaultLookBack); got.OrgPrevalence != 1 {
		t.Errorf("first domain prevalence = %d, want 1", got.OrgPrevalence)
	}
}

func TestConcurrentRecordStatsFlush(t *testing.T) {
	s := openTestStore(t, &Options{FlushInterval: time.Millisecond, ExactLimit: 50})
	const writers, perWriter = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})

	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				domain := fmt.Sprintf("d%d.example", i%10)
				machine := fmt.Sprintf("w%d-m%d", w, i/10%100)
				if err := s.Record(domain, machine, testNow.Add(-time.Duration(i)*time.Minute)); err != nil {
					t.Errorf("Record failed: %v", err)
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Stats("d1.example"); err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("Stats failed: %v", err)
					return
				}
				if err := s.Flush(); err != nil {
					t.Errorf("Flush failed: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	// Each domain saw 4 writers x 100 machines, over ExactLimit, so the
	// count is an estimate; at 400 it is within 2%.
	for d := range 10 {
		got := mustStats(t, s, fmt.Sprintf("d%d.example", d), DefaultLookBack)
		if diff := got.OrgPrevalence - writers*100; diff < -8 || diff > 8 {
			t.Errorf("d%d.example prevalence = %d, want 400 within 2%%", d, got.OrgPrevalence)
		}
	}
}

func TestCloseRacesRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	s, err := Open(path, &Options{Now: func() time.Time { return testNow }, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	// Every Record that returned nil must be in the file after Close.
	var mu sync.Mutex
	accepted := make(map[string]bool)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				machine := fmt.Sprintf("w%d-%d", w, i)
				err := s.Record(fmt.Sprintf("w%d.example", w), machine, testNow)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Record failed: %v", err)
					return
				}
				mu.Lock()
				accepted[machine] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close failed: %v", err)
	}
	wg.Wait()

	reopened := openTestStoreAt(t, path, nil)
	for w := range 4 {
		want := 0
		for machine := range accepted {
			if strings.HasPrefix(machine, fmt.Sprintf("w%d-", w)) {
				want++
			}
		}
		got, err := reopened.Stats(fmt.Sprintf("w%d.example", w))
		if want == 0 {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("w%d.example = %+v, %v; want ErrNotFound", w, got, err)
			}
			continue
		}
		if err != nil || got.OrgPrevalence != int64(want) {
			t.Errorf("w%d.example = %+v, %v; want prevalence %d", w, got, err, want)
		}
	}
}

func TestRetentionIsStoredInFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	s := openTestStoreAt(t, path, &Options{Retention: 1000 * time.Hour})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	reopened := openTestStoreAt(t, path, nil)
	if got := reopened.Retention(); got != 1000*time.Hour {
		t.Errorf("Retention after reopening without options = %s, want the stored 1000h", got)
	}
	if err := reopened.Close(); err != nil {
		t.Fatal(err)
	}

	changed := openTestStoreAt(t, path, &Options{Retention: 48 * time.Hour})
	if got := changed.Retention(); got != 48*time.Hour {
		t.Errorf("Retention with a new option = %s, want 48h", got)
	}
	if err := changed.Close(); err != nil {
		t.Fatal(err)
	}
	if got := openTestStoreAt(t, path, nil).Retention(); got != 48*time.Hour {
		t.Errorf("Retention after the change = %s, want 48h", got)
	}
}

func TestDefaultRetention(t *testing.T) {
	if got := openTestStore(t, nil).Retention(); got != DefaultRetention {
		t.Errorf("Retention of a new file without options = %s, want %s", got, DefaultRetention)
	}
}
