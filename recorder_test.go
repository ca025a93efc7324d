package domainstats

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestRecordersShareDomains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	s := openTestStoreAt(t, path, nil)

	// Two workers and Store.Record all write the same domain.
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recorder := s.NewRecorder()
			for i := range 100 {
				machine := fmt.Sprintf("worker%d-%d", w, i%50)
				if err := recorder.Record("shared.example", machine, testNow.Add(-time.Duration(i)*time.Minute)); err != nil {
					t.Errorf("Recorder.Record failed: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	mustRecord(t, s, "shared.example", "worker0-0", testNow.Add(-3*time.Hour))
	mustRecord(t, s, "shared.example", "direct", testNow)

	want := Stats{
		Host:          "shared.example",
		OrgPrevalence: 101,
		OrgFirstSeen:  testNow.Add(-3 * time.Hour),
		OrgLastSeen:   testNow,
	}
	checkBothSides(t, s, func(t *testing.T) {
		got := mustStats(t, s, "shared.example", DefaultLookBack)
		if got != want {
			t.Errorf("Stats = %+v, want %+v", got, want)
		}
	})
	if newest, ok := s.Newest(); !ok || !newest.Equal(testNow) {
		t.Errorf("Newest = %s, %t; want %s", newest, ok, testNow)
	}
}

func TestRecorderFlushedByClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	s := openTestStoreAt(t, path, nil)
	recorder := s.NewRecorder()
	if err := recorder.Record("example.com", "host-1", testNow); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recorder.Record("example.com", "host-2", testNow); !errors.Is(err, ErrClosed) {
		t.Errorf("Recorder.Record after Close = %v, want ErrClosed", err)
	}

	reopened := openTestStoreAt(t, path, nil)
	if got := mustStats(t, reopened, "example.com", DefaultLookBack); got.OrgPrevalence != 1 {
		t.Errorf("prevalence after reopen = %d, want 1", got.OrgPrevalence)
	}
}

func TestRecorderBufferStaysBounded(t *testing.T) {
	const bound = 1000
	s := openTestStore(t, &Options{MaxBufferedPairs: bound})
	recorder := s.NewRecorder()
	for i := range 20_000 {
		if err := recorder.Record(fmt.Sprintf("d%d.example", i), "host-1", testNow); err != nil {
			t.Fatal(err)
		}
		if buffered := s.buffered.Load(); buffered > 2*bound {
			t.Fatalf("after %d events the store buffers %d entries, above twice its bound of %d", i+1, buffered, bound)
		}
	}
	if got := mustStats(t, s, "d0.example", DefaultLookBack); got.OrgPrevalence != 1 {
		t.Errorf("first domain prevalence = %d, want 1", got.OrgPrevalence)
	}
}
