package domainstats

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// recordMachines records n distinct machines for domain, one event each,
// spread over the 48 hours before testNow.
func recordMachines(t *testing.T, s *Store, domain string, n int) {
	t.Helper()
	for i := range n {
		at := testNow.Add(-time.Duration(i%48) * time.Hour)
		mustRecord(t, s, domain, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), at)
	}
}

func TestPrevalenceExactUpToLimit(t *testing.T) {
	s := openTestStore(t, nil)
	sizes := []int{1, 2, 3, 10, 100, 999, 1000, 1001, 5000, DefaultExactLimit}
	for _, n := range sizes {
		recordMachines(t, s, fmt.Sprintf("n%d.example", n), n)
	}
	checkBothSides(t, s, func(t *testing.T) {
		for _, n := range sizes {
			got := mustStats(t, s, fmt.Sprintf("n%d.example", n), DefaultLookBack)
			if got.OrgPrevalence != int64(n) {
				t.Errorf("domain with %d machines: prevalence %d, want exactly %d", n, got.OrgPrevalence, n)
			}
		}
	})
}

func TestPrevalenceErrorAboveLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("records 170,000 events; skipped with -short")
	}
	s := openTestStore(t, nil)
	sizes := []int{DefaultExactLimit + 1, 20_000, 50_000, 100_000}
	for _, n := range sizes {
		recordMachines(t, s, fmt.Sprintf("n%d.example", n), n)
	}
	checkBothSides(t, s, func(t *testing.T) {
		for _, n := range sizes {
			got := mustStats(t, s, fmt.Sprintf("n%d.example", n), DefaultLookBack)
			relative := math.Abs(float64(got.OrgPrevalence)-float64(n)) / float64(n)
			t.Logf("%d machines: estimate %d, relative error %.3f%%", n, got.OrgPrevalence, 100*relative)
			if relative > 0.02 {
				t.Errorf("domain with %d machines: prevalence %d, relative error %.2f%%, more than 2%%", n, got.OrgPrevalence, 100*relative)
			}
		}
	})
}

func TestSketchWindowsMatchExactCount(t *testing.T) {
	// A low exact limit sends the domain to sketches early, so windows
	// over hourly sketches can be checked against an exact count.
	s := openTestStore(t, &Options{ExactLimit: 100})
	exact := make(map[int]map[string]bool) // hours back -> machines seen
	for i := range 30_000 {
		hoursBack := i % 720
		machine := fmt.Sprintf("host-%d", (i*7919)%12_000)
		mustRecord(t, s, "busy.example", machine, testNow.Add(-time.Duration(hoursBack)*time.Hour))
		if exact[hoursBack] == nil {
			exact[hoursBack] = make(map[string]bool)
		}
		exact[hoursBack][machine] = true
	}

	for _, lookBack := range []int{1, 6, 48, 720} {
		distinct := make(map[string]bool)
		for h := 0; h <= lookBack; h++ {
			for machine := range exact[h] {
				distinct[machine] = true
			}
		}
		t.Run(fmt.Sprintf("%dh", lookBack), func(t *testing.T) {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			got := mustStats(t, s, "busy.example", time.Duration(lookBack)*time.Hour)
			relative := math.Abs(float64(got.OrgPrevalence)-float64(len(distinct))) / float64(len(distinct))
			if relative > 0.02 {
				t.Errorf("%d h window: prevalence %d, exact %d, relative error %.2f%%", lookBack, got.OrgPrevalence, len(distinct), 100*relative)
			}
		})
	}
}

func TestEstimateOfEmptyAndSmallSketches(t *testing.T) {
	s := openTestStore(t, nil)
	if got := estimate(s.newSketch()); got != 0 {
		t.Errorf("estimate of an empty sketch = %d, want 0", got)
	}
	sk := s.newSketch()
	for i := range 3 {
		sk.InsertHash(hashFoldedASCII(fmt.Sprint(i)))
	}
	if got := estimate(sk); got != 3 {
		t.Errorf("estimate of 3 machines = %d, want 3", got)
	}
}
