package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/domainstats/domainstats"
)

// ingestEventsEnv names the environment variable that sets the number of
// events of BenchmarkIngest, such as 100000000 for the long run. CI leaves it
// unset.
const ingestEventsEnv = "DOMAINSTATS_BENCH_EVENTS"

func ingestEvents(b *testing.B) int64 {
	value := os.Getenv(ingestEventsEnv)
	if value == "" {
		return 1_000_000
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n < 1 {
		b.Fatalf("invalid %s=%q: want a positive number of events", ingestEventsEnv, value)
	}
	return n
}

// countLabel returns n as the short form used in benchmark names: 1M, 100k.
func countLabel(n int64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return strconv.FormatInt(n, 10)
}

// maxPairCountEvents bounds the workloads whose distinct pairs are counted
// in memory for the bytes/pair metric.
const maxPairCountEvents = 10_000_000

var (
	pairCountsMu sync.Mutex
	pairCounts   = map[Workload]int64{}
)

// distinctPairs returns the number of distinct (domain, machine) pairs of
// w, or 0 for workloads above maxPairCountEvents.
func distinctPairs(w Workload) int64 {
	if w.Events > maxPairCountEvents {
		return 0
	}

	pairCountsMu.Lock()
	defer pairCountsMu.Unlock()

	if n, ok := pairCounts[w]; ok {
		return n
	}
	seen := map[[2]string]struct{}{}
	for e := range w.All() {
		seen[[2]string{e.Domain, e.Machine}] = struct{}{}
	}
	pairCounts[w] = int64(len(seen))
	return int64(len(seen))
}

// BenchmarkIngest measures sustained ingest of the default workload, 1M
// events unless DOMAINSTATS_BENCH_EVENTS sets another number: Record for every
// event, then Close, which flushes. The store flushes every second and
// SQLite commits every 10,000 events. Generating the events is not timed.
//
// Metrics: events/s over the timed part, peak-RSS-MiB of the whole test
// process during the run (Redis runs in its own process and reports
// server-bytes/pair instead), and bytes/pair and bytes/event of the files
// left on disk.
func BenchmarkIngest(b *testing.B) {
	w := DefaultWorkload(ingestEvents(b))

	for _, impl := range implementations {
		b.Run(fmt.Sprintf("events=%s/impl=%s", countLabel(w.Events), impl), func(b *testing.B) {
			benchmarkIngest(b, w, impl)
		})
	}
}

func benchmarkIngest(b *testing.B, w Workload, impl string) {
	b.ReportAllocs()

	var (
		timed     time.Duration
		runs      int
		peak      int64
		diskBytes int64
		redisUsed int64
	)
	buf := make([]Event, 64*1024)

	for b.Loop() {
		dir := b.TempDir()
		b.StopTimer()
		resetPeakRSS()
		b.StartTimer()

		start := time.Now()
		counter, err := openCounter(impl, dir, redisDBIngest)
		if err != nil {
			skipOrFatal(b, err)
		}
		redisBefore := redisUsedMemory(b, counter)
		timed += time.Since(start)

		timed += recordChunks(b, w, buf, func(chunk []Event) {
			for _, e := range chunk {
				if err := counter.Record(e); err != nil {
					b.Fatalf("%s: Record(%+v): %v", impl, e, err)
				}
			}
		})

		start = time.Now()
		if err := counter.Flush(); err != nil {
			b.Fatalf("%s: Flush: %v", impl, err)
		}
		if redis, ok := counter.(*RedisCounter); ok {
			redisUsed = redisUsedMemory(b, redis) - redisBefore
		}
		if err := counter.Close(); err != nil {
			b.Fatalf("%s: Close: %v", impl, err)
		}
		timed += time.Since(start)

		peak = peakRSS()
		diskBytes = dirBytes(b, dir)
		runs++
	}

	b.ReportMetric(float64(w.Events)*float64(runs)/timed.Seconds(), "events/s")
	if peak > 0 {
		b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	}

	pairs := distinctPairs(w)
	if diskBytes > 0 {
		b.ReportMetric(float64(diskBytes)/float64(w.Events), "bytes/event")
		if pairs > 0 {
			b.ReportMetric(float64(diskBytes)/float64(pairs), "bytes/pair")
		}
	}
	if redisUsed > 0 && pairs > 0 {
		b.ReportMetric(float64(redisUsed)/float64(pairs), "server-bytes/pair")
	}
}

// recordChunks generates the events of w into buf chunk by chunk, with the
// benchmark timer stopped, and calls record on each chunk. It returns the
// time spent in record.
func recordChunks(b *testing.B, w Workload, buf []Event, record func(chunk []Event)) time.Duration {
	generator, err := NewGenerator(w)
	if err != nil {
		b.Fatal(err)
	}

	var spent time.Duration
	for {
		b.StopTimer()
		n := generator.Fill(buf)
		b.StartTimer()
		if n == 0 {
			return spent
		}

		start := time.Now()
		record(buf[:n])
		spent += time.Since(start)
	}
}

// redisUsedMemory returns Redis's used_memory when counter is a
// RedisCounter, and 0 otherwise.
func redisUsedMemory(b *testing.B, counter Counter) int64 {
	redis, ok := counter.(*RedisCounter)
	if !ok {
		return 0
	}
	used, err := redis.UsedMemory()
	if err != nil {
		b.Fatal(err)
	}
	return used
}

// BenchmarkIngestWorkers is BenchmarkIngest for the store with its events
// split over 1 and 2 goroutines, each recording through its own Recorder,
// as a parallel ingest would: compare workers=1 with workers=2. Each
// generated chunk is dealt out event by event, so both workers see every
// domain, and the chunk is done before the next one is generated.
func BenchmarkIngestWorkers(b *testing.B) {
	w := DefaultWorkload(ingestEvents(b))
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("events=%s/workers=%d", countLabel(w.Events), workers), func(b *testing.B) {
			benchmarkIngestWorkers(b, w, workers)
		})
	}
}

func benchmarkIngestWorkers(b *testing.B, w Workload, workers int) {
	b.ReportAllocs()
	var timed time.Duration
	runs := 0
	buf := make([]Event, 64*1024)

	for b.Loop() {
		counter, err := OpenStore(filepath.Join(b.TempDir(), "store.db"), BenchNow, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		recorders := make([]*domainstats.Recorder, workers)
		for i := range recorders {
			recorders[i] = counter.Store.NewRecorder()
		}
		timed += recordChunks(b, w, buf, func(chunk []Event) {
			var wg sync.WaitGroup
			for worker, recorder := range recorders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := worker; i < len(chunk); i += workers {
						e := chunk[i]
						if err := recorder.Record(e.Domain, e.Machine, e.At); err != nil {
							b.Errorf("Record(%+v): %v", e, err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})

		start := time.Now()
		if err := counter.Close(); err != nil {
			b.Fatal(err)
		}
		timed += time.Since(start)
		runs++
	}
	b.ReportMetric(float64(w.Events)*float64(runs)/timed.Seconds(), "events/s")
}
