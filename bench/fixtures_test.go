package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fixtureDir holds the files of the counters that the Stats and accuracy
// benchmarks share. cleanupFixtures removes it.
var (
	fixtureDirOnce sync.Once
	fixtureDir     string
	fixtureDirErr  error
)

func sharedFixtureDir() (string, error) {
	fixtureDirOnce.Do(func() {
		fixtureDir, fixtureDirErr = os.MkdirTemp("", "bench-fixtures-")
	})
	return fixtureDir, fixtureDirErr
}

// sizeSet is the SizeSet shared by the Stats and accuracy benchmarks: three
// domains of each size up to 10,000 machines and one of 100,000.
var sizeSet = sync.OnceValue(func() *SizeSet {
	return NewSizeSet(StatsSizes, 3, 1)
})

// loadedCounter is a counter filled once with the size set.
type loadedCounter struct {
	once    sync.Once
	counter Counter
	err     error
}

var (
	sizeCountersMu sync.Mutex
	sizeCounters   = map[string]*loadedCounter{}
)

// sizeCounter returns the counter impl filled with sizeSet, loading it on
// first use. It skips tb when impl is unavailable on this machine.
func sizeCounter(tb testing.TB, impl string) Counter {
	tb.Helper()

	sizeCountersMu.Lock()
	loaded, ok := sizeCounters[impl]
	if !ok {
		loaded = &loadedCounter{}
		sizeCounters[impl] = loaded
	}
	sizeCountersMu.Unlock()

	loaded.once.Do(func() {
		loaded.counter, loaded.err = loadSizeSet(impl)
	})
	if loaded.err != nil {
		skipOrFatal(tb, loaded.err)
	}
	return loaded.counter
}

func loadSizeSet(impl string) (Counter, error) {
	root, err := sharedFixtureDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "sizes-"+impl)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}

	counter, err := openCounter(impl, dir, redisDBSizes)
	if err != nil {
		return nil, err
	}
	for _, e := range sizeSet().Events {
		if err := counter.Record(e); err != nil {
			counter.Close()
			return nil, fmt.Errorf("%s: load size set: %w", impl, err)
		}
	}
	if err := counter.Flush(); err != nil {
		counter.Close()
		return nil, fmt.Errorf("%s: flush size set: %w", impl, err)
	}
	return counter, nil
}

// cleanupFixtures closes the shared counters and removes their files.
func cleanupFixtures() {
	sizeCountersMu.Lock()
	defer sizeCountersMu.Unlock()

	for impl, loaded := range sizeCounters {
		if loaded.counter != nil {
			if err := loaded.counter.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "close %s: %v\n", impl, err)
			}
		}
	}
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
}

// dirBytes returns the total size of the regular files in dir.
func dirBytes(tb testing.TB, dir string) int64 {
	tb.Helper()

	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var total int64
	for _, entry := range entries {
		info, err := entry.Info()
		if err != nil {
			tb.Fatal(err)
		}
		if info.Mode().IsRegular() {
			total += info.Size()
		}
	}
	return total
}

// resetPeakRSS returns freed memory to the operating system and resets the
// process's peak resident set size (VmHWM), so that the next peakRSS reads
// the peak from here on. It returns false where Linux's
// /proc/self/clear_refs is not writable.
func resetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS returns VmHWM from /proc/self/status in bytes, or -1 when it
// cannot be read.
func peakRSS() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if value, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kib * 1024
		}
	}
	return -1
}
