package domainstats

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heapInUse returns the bytes in in-use heap spans, which include garbage
// that the next collection frees.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestBufferedMemoryBurst records a burst of new domains, one event each,
// which is the worst case for the buffer: every event adds a domain, a
// machine pair and an hour. It checks that the heap stays bounded by the
// buffer limit rather than growing with the burst.
func TestBufferedMemoryBurst(t *testing.T) {
	burst := 3_000_000
	if testing.Short() || raceEnabled {
		burst = 300_000
	}
	const maxBuffered = 100_000

	s := openTestStore(t, &Options{MaxBufferedPairs: maxBuffered, FlushInterval: 50 * time.Millisecond})
	runtime.GC()
	baseline := heapInUse()

	// Sample the heap ten times per tenth of the burst.
	const samplesPerTenth = 10
	peaks := make([]uint64, 10)
	started := time.Now()
	name := make([]byte, 0, 64)
	for i := range burst {
		name = strconv.AppendInt(append(name[:0], 'n'), int64(i), 10)
		name = append(name, ".burst.example"...)
		if err := s.Record(string(name), "host-1", testNow); err != nil {
			t.Fatalf("Record %d failed: %v", i, err)
		}
		if (i+1)%(burst/10/samplesPerTenth) == 0 {
			tenth := i * 10 / burst
			peaks[tenth] = max(peaks[tenth], heapInUse()-min(baseline, heapInUse()))
		}
	}
	elapsed := time.Since(started)

	var mb []string
	for _, p := range peaks {
		mb = append(mb, fmt.Sprintf("%.0f", float64(p)/(1<<20)))
	}
	t.Logf("%d new domains in %s with MaxBufferedPairs %d: peak heap in use above baseline per tenth of the burst, MB: %v",
		burst, elapsed.Round(time.Millisecond), maxBuffered, mb)

	// The buffer holds at most twice MaxBufferedPairs entries in the
	// shards, plus the batch a flush is committing. A new domain costs
	// about 2 entries and 600 bytes of maps, so 2 x 100,000 entries are
	// about 60 MB; the rest of the budget is bbolt's dirty pages and
	// garbage awaiting collection.
	const budget = 256 << 20
	for tenth, p := range peaks {
		if p > budget {
			t.Errorf("heap in use grew %d MB above baseline in tenth %d of the burst, above the %d MB budget", p>>20, tenth+1, budget>>20)
		}
	}

	// Memory must not grow with the burst: the last tenth may not use
	// much more than an early one in which the buffer had already filled.
	// A new domain adds 2 entries, so the buffer reaches twice its bound,
	// where Record flushes, after maxBuffered domains. The reference is
	// the tenth after that one.
	full := min(maxBuffered*10/burst+1, 8)
	if last, early := peaks[9], peaks[full]; last > early*2+32<<20 {
		t.Errorf("peak heap grew from %d MB in tenth %d of the burst, with the buffer full, to %d MB at its end", early>>20, full+1, last>>20)
	}

	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, burst / 2, burst - 1} {
		domain := "n" + strconv.Itoa(i) + ".burst.example"
		if got := mustStats(t, s, domain, DefaultLookBack); got.OrgPrevalence != 1 {
			t.Errorf("%s prevalence = %d, want 1", domain, got.OrgPrevalence)
		}
	}
}

// closeRaceResult is what one writer of TestCloseRacesEveryCall had
// accepted when Close stopped it.
type closeRaceResult struct {
	machines       map[string]int // accepted machines per domain
	lastCheckpoint string         // last checkpoint value accepted, or empty
}

// TestCloseRacesEveryCall runs writers, readers and the background flusher
// and closes the store while they run. Every call must succeed or return
// ErrClosed, and after reopening the file must hold every event whose
// Record returned nil and every writer's last accepted checkpoint.
func TestCloseRacesEveryCall(t *testing.T) {
	rounds := 30
	if testing.Short() || raceEnabled {
		rounds = 8
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	for round := range rounds {
		closeAfter := int64(1 + rng.IntN(20_000))
		path := filepath.Join(t.TempDir(), "stats.db")
		results := runCloseRace(t, path, closeAfter)

		reopened := openTestStoreAt(t, path, nil)
		events := 0
		for w, result := range results {
			for domain, machines := range result.machines {
				events += machines
				got, err := reopened.Stats(domain)
				if err != nil || got.OrgPrevalence != int64(machines) {
					t.Errorf("round %d: Stats(%s) = %+v, %v; want prevalence %d, the accepted events", round, domain, got, err, machines)
				}
			}
			key := fmt.Sprintf("writer-%d", w)
			stored, err := reopened.Checkpoint(key)
			if err != nil {
				t.Fatal(err)
			}
			if string(stored) != result.lastCheckpoint {
				t.Errorf("round %d: checkpoint %s = %q, want the last accepted %q", round, key, stored, result.lastCheckpoint)
			}
		}
		checkClean(t, reopened, fmt.Sprintf("round %d", round))
		if err := reopened.Close(); err != nil {
			t.Fatal(err)
		}
		if round == 0 || round == rounds-1 {
			t.Logf("round %d: closed after %d calls; %d accepted events found after reopening", round, closeAfter, events)
		}
	}
}

// runCloseRace opens a store at path, runs writers and readers against it,
// closes it once the writers have made closeAfter calls, and returns what
// each writer had accepted.
func runCloseRace(t *testing.T, path string, closeAfter int64) []closeRaceResult {
	t.Helper()

	// A small buffer makes Record flush by itself, and a 1 ms interval
	// keeps the background flusher busy.
	s, err := Open(path, &Options{
		Now:              func() time.Time { return testNow },
		FlushInterval:    time.Millisecond,
		MaxBufferedPairs: 2000,
	})
	if err != nil {
		t.Fatal(err)
	}

	const writers, readers = 6, 4
	var calls atomic.Int64
	results := make([]closeRaceResult, writers)
	var wg sync.WaitGroup

	unexpected := func(call string, err error) {
		t.Errorf("%s returned %v, want nil or ErrClosed", call, err)
	}

	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			result := closeRaceResult{machines: map[string]int{}}
			defer func() { results[w] = result }()
			for i := 0; ; i++ {
				calls.Add(1)
				domain := fmt.Sprintf("w%d-%d.race.example", w, i/10)
				err := s.Record(domain, fmt.Sprintf("host-%d", i%10), testNow.Add(-time.Duration(i%100)*time.Minute))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					unexpected("Record", err)
					return
				}
				result.machines[domain]++

				if i%25 == 24 {
					value := strconv.Itoa(i)
					err := s.SetCheckpoint(fmt.Sprintf("writer-%d", w), []byte(value))
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						unexpected("SetCheckpoint", err)
						return
					}
					result.lastCheckpoint = value
				}
			}
		}()
	}

	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				var err error
				switch (r + i) % 6 {
				case 0:
					_, err = s.Stats(fmt.Sprintf("w%d-%d.race.example", i%writers, i%50))
					if errors.Is(err, ErrNotFound) {
						err = nil
					}
				case 1:
					_, err = s.StatsLookBack("w0-0.race.example", time.Duration(1+i%48)*time.Hour)
					if errors.Is(err, ErrNotFound) {
						err = nil
					}
				case 2:
					_, err = s.Checkpoint("writer-0")
				case 3:
					err = s.Flush()
				case 4:
					s.Newest()
					s.Retention()
				case 5:
					// Verify is left out: with flushes running it can
					// crash the process, see TestVerifyDuringFlushes.
					_, err = s.Checkpoint("writer-1")
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					unexpected(fmt.Sprintf("reader call %d", (r+i)%6), err)
					return
				}
			}
		}()
	}

	// Close once the writers have made enough calls, racing every one.
	for calls.Load() < closeAfter {
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close failed: %v", err)
	}
	wg.Wait()
	return results
}

// TestVerifyDuringFlushes runs Verify while another goroutine records and
// flushes, in a child process because bbolt may crash it. Verify must find
// no damage in a file that only this store writes, and must not crash.
func TestVerifyDuringFlushes(t *testing.T) {
	cmd := startHelper(helperVerifyFlushes, helperPathEnv+"="+filepath.Join(t.TempDir(), "stats.db"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		// NOTE: Verify runs bbolt's tx.Check, which reads the freelist
		// without a lock and compares it with the pages of its read
		// transaction, while flushes change both. Holding the flush
		// lock during tx.Check would prevent both failures.
		t.Errorf("Verify during flushes failed (%v):\n%s", err, firstLines(string(out), 12))
	}
}

// verifyDuringFlushes is the child process of TestVerifyDuringFlushes. It
// returns what went wrong, or nil.
func verifyDuringFlushes(path string) error {
	s, err := Open(path, &Options{Now: func() time.Time { return testNow }, FlushInterval: -1})
	if err != nil {
		return err
	}
	defer s.Close()

	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	var flushes atomic.Int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			for j := range 50 {
				if err := s.Record(fmt.Sprintf("d%d.flush.example", (i*50+j)%3000), fmt.Sprintf("host-%d", i%7), testNow); err != nil {
					writerDone <- err
					return
				}
			}
			if err := s.Flush(); err != nil {
				writerDone <- err
				return
			}
			flushes.Add(1)
		}
	}()

	// Verify until the writer has flushed a few hundred times, so that
	// many flushes overlap a Verify.
	var damaged []Damage
	runs := 0
	for ; flushes.Load() < 500; runs++ {
		report, err := s.Verify()
		if err != nil {
			return fmt.Errorf("Verify failed: %w", err)
		}
		damaged = append(damaged, report.Damaged...)
	}
	close(stop)
	if err := <-writerDone; err != nil {
		return fmt.Errorf("writer failed: %w", err)
	}
	if len(damaged) > 0 {
		return fmt.Errorf("%d runs of Verify during 500 flushes reported %d damaged parts in an intact file, such as %s", runs, len(damaged), damaged[0])
	}
	return nil
}
