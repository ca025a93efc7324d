package bench

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// windowLabel returns a window as it appears in benchmark names: 48h, 720h.
func windowLabel(window time.Duration) string {
	return fmt.Sprintf("%dh", int(window.Hours()))
}

// BenchmarkStats measures one window query for a domain of each size in
// StatsSizes, with each window of Windows, on every implementation loaded
// with the same size set. Compare implementations with
// benchstat -col /impl.
func BenchmarkStats(b *testing.B) {
	set := sizeSet()

	for _, size := range StatsSizes {
		domain := set.domainOfSize(size)
		for _, window := range Windows {
			for _, impl := range implementations {
				name := fmt.Sprintf("machines=%d/window=%s/impl=%s", size, windowLabel(window), impl)
				b.Run(name, func(b *testing.B) {
					counter := sizeCounter(b, impl)
					b.ReportAllocs()

					for b.Loop() {
						if _, err := counter.Count(domain.Name, window); err != nil {
							b.Fatalf("%s: Count(%s, %v): %v", impl, domain.Name, window, err)
						}
					}
				})
			}
		}
	}
}

// domainOfSize returns the first domain of set with size machines.
func (set *SizeSet) domainOfSize(size int) SizedDomain {
	for _, d := range set.Domains {
		if d.Machines == size {
			return d
		}
	}
	panic(fmt.Sprintf("size set has no domain of %d machines", size))
}

// BenchmarkAccuracy reports the relative error of the distinct-machine
// count against the exact count, for every domain of each size (three
// domains per size up to 10,000 machines, one of 100,000) and each window.
//
// Metrics: mean-rel-err-% and max-rel-err-% over the domains of the size.
// The timed part is one Count per domain and is not a latency figure.
func BenchmarkAccuracy(b *testing.B) {
	set := sizeSet()

	for _, size := range StatsSizes {
		for _, window := range Windows {
			for _, impl := range implementations {
				name := fmt.Sprintf("machines=%d/window=%s/impl=%s", size, windowLabel(window), impl)
				b.Run(name, func(b *testing.B) {
					benchmarkAccuracy(b, set, size, window, sizeCounter(b, impl))
				})
			}
		}
	}
}

func benchmarkAccuracy(b *testing.B, set *SizeSet, size int, window time.Duration, counter Counter) {
	var sum, worst float64
	var domains int

	for b.Loop() {
		sum, worst, domains = 0, 0, 0
		for _, d := range set.Domains {
			if d.Machines != size {
				continue
			}

			got, err := counter.Count(d.Name, window)
			if err != nil {
				b.Fatalf("Count(%s, %v): %v", d.Name, window, err)
			}
			exact := float64(d.Exact[window])
			relative := math.Abs(float64(got.Machines)-exact) / exact * 100
			sum += relative
			worst = max(worst, relative)
			domains++
		}
	}

	b.ReportMetric(sum/float64(domains), "mean-rel-err-%")
	b.ReportMetric(worst, "max-rel-err-%")
}
