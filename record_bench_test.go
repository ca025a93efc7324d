package domainstats

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func openBenchStore(b *testing.B, opts *Options) *Store {
	b.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = -1
	}
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkRecordRepeated records a (domain, machine) pair already buffered
// in the current hour: the steady state of a busy sensor.
func BenchmarkRecordRepeated(b *testing.B) {
	s := openBenchStore(b, nil)
	at := testNow.Add(-time.Minute)
	if err := s.Record("www.example.com", "10.1.2.3", at); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Record("www.example.com", "10.1.2.3", at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordRepeatedParallel is BenchmarkRecordRepeated on every
// GOMAXPROCS goroutine, each with its own domains, all through
// Store.Record. Compare -cpu 1,2 for the scaling across cores.
func BenchmarkRecordRepeatedParallel(b *testing.B) {
	s := openBenchStore(b, nil)
	benchmarkParallel(b, func() func(domain, machine string, at time.Time) error { return s.Record })
}

// BenchmarkRecordNew records a new machine on each call, spread over a
// thousand domains, with the buffer flushed as it fills.
func BenchmarkRecordNew(b *testing.B) {
	s := openBenchStore(b, &Options{MaxBufferedPairs: 100_000})
	at := testNow.Add(-time.Minute)
	domains := make([]string, 1000)
	for i := range domains {
		domains[i] = fmt.Sprintf("d%d.example.com", i)
	}
	machines := make([]string, 1<<16)
	for i := range machines {
		machines[i] = fmt.Sprintf("10.0.%d.%d", i>>8, i&255)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Record(domains[i%len(domains)], machines[(i/len(domains))&(len(machines)-1)], at); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkStats queries the default 720-hour window for flushed domains
// of several sizes, all in exact mode.
func BenchmarkStats(b *testing.B) {
	for _, machines := range []int{1, 100, 1000, 10_000} {
		b.Run(fmt.Sprintf("machines=%d", machines), func(b *testing.B) {
			s := openBenchStore(b, nil)
			for i := range machines {
				at := testNow.Add(-time.Duration(i%720) * time.Hour)
				if err := s.Record("www.example.com", fmt.Sprintf("host-%d", i), at); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Stats("www.example.com"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEstimate compares the histogram estimator with the sketch
// library's own, which takes a power of two per register.
func BenchmarkEstimate(b *testing.B) {
	s := openBenchStore(b, nil)
	sk := s.newSketch()
	for i := range 100_000 {
		sk.InsertHash(hashFoldedASCII(fmt.Sprint(i)))
	}
	b.Run("histogram", func(b *testing.B) {
		for b.Loop() {
			estimate(sk)
		}
	})
	b.Run("library", func(b *testing.B) {
		for b.Loop() {
			sk.Estimate()
		}
	})
}

// BenchmarkRecorderParallel gives each goroutine its own Recorder, as
// ingest workers have. Compare -cpu 1,2 for the scaling across cores.
func BenchmarkRecorderParallel(b *testing.B) {
	s := openBenchStore(b, nil)
	benchmarkParallel(b, func() func(domain, machine string, at time.Time) error { return s.NewRecorder().Record })
}

// benchmarkParallel records repeated pairs on every GOMAXPROCS goroutine,
// each over 64 domains of its own, through the record function that
// newRecord returns for that goroutine.
func benchmarkParallel(b *testing.B, newRecord func() func(domain, machine string, at time.Time) error) {
	at := testNow.Add(-time.Minute)
	var worker atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := worker.Add(1)
		record := newRecord()
		domains := make([]string, 64)
		for i := range domains {
			domains[i] = fmt.Sprintf("d%d-%d.example.com", id, i)
		}
		i := 0
		for pb.Next() {
			if err := record(domains[i&63], "10.1.2.3", at); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkStatsSketchCold queries the 720-hour window of a sketch-mode
// domain of 100,000 machines spread over 720 hours with the merged-window
// cache emptied before each query, as after every flush of a live store.
func BenchmarkStatsSketchCold(b *testing.B) {
	s := openBenchStore(b, nil)
	for i := range 100_000 {
		at := testNow.Add(-time.Duration(i%720) * time.Hour)
		if err := s.Record("busy.example.com", fmt.Sprintf("host-%d", i), at); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.cache.invalidate()
		if _, err := s.Stats("busy.example.com"); err != nil {
			b.Fatal(err)
		}
	}
}
