package bench

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func collect(w Workload) []Event {
	return slices.Collect(w.All())
}

func smallWorkload(seed uint64) Workload {
	return Workload{
		Seed:     seed,
		Events:   20_000,
		Domains:  500,
		Machines: 100,
		Days:     30,
		ZipfS:    1.1,
		End:      BenchNow,
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	first := collect(smallWorkload(7))
	second := collect(smallWorkload(7))
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("two runs of the same workload differ (-first +second):\n%s", diff)
	}

	other := collect(smallWorkload(8))
	if cmp.Equal(first, other) {
		t.Errorf("seeds 7 and 8 generated the same %d events", len(first))
	}
}

func TestGeneratorFillMatchesAll(t *testing.T) {
	w := smallWorkload(3)
	g, err := NewGenerator(w)
	if err != nil {
		t.Fatal(err)
	}

	// An odd buffer size crosses hour boundaries in the middle of a chunk.
	var filled []Event
	buf := make([]Event, 333)
	for n := g.Fill(buf); n > 0; n = g.Fill(buf) {
		filled = append(filled, buf[:n]...)
	}

	if diff := cmp.Diff(collect(w), filled); diff != "" {
		t.Errorf("Fill in chunks of 333 differs from All (-All +Fill):\n%s", diff)
	}
}

func TestGeneratorCountAndOrder(t *testing.T) {
	w := smallWorkload(1)
	events := collect(w)

	if got := int64(len(events)); got != w.Events {
		t.Errorf("generated %d events, want %d", got, w.Events)
	}

	start := w.End.Add(-time.Duration(w.Days) * 24 * time.Hour)
	for i, e := range events {
		if e.At.Before(start) || !e.At.Before(w.End) {
			t.Fatalf("event %d at %v, want in [%v, %v)", i, e.At, start, w.End)
		}
		if i > 0 && e.At.Before(events[i-1].At) {
			t.Fatalf("event %d at %v is before event %d at %v", i, e.At, i-1, events[i-1].At)
		}
	}
}

func TestGeneratorZipfPopularity(t *testing.T) {
	w := smallWorkload(2)
	w.Events = 400_000
	w.Domains = 1_000

	counts := make(map[string]int)
	for e := range w.All() {
		counts[e.Domain]++
	}

	// Under Zipf's law with v = 1, rank k is drawn in proportion to
	// (k+1)^-s, so the top two ranks differ by 2^s.
	ratio := float64(counts[DomainName(0)]) / float64(counts[DomainName(1)])
	if want := math.Pow(2, w.ZipfS); math.Abs(ratio-want)/want > 0.1 {
		t.Errorf("rank 0 / rank 1 = %.3f, want %.3f within 10%%", ratio, want)
	}

	// The least-squares slope of log(count) over log(rank+1), for the
	// ranks that are frequent enough to be measured well, is -s.
	var sumX, sumY, sumXX, sumXY float64
	const ranks = 100
	for k := range ranks {
		x := math.Log(float64(k + 1))
		y := math.Log(float64(counts[DomainName(k)]))
		sumX, sumY, sumXX, sumXY = sumX+x, sumY+y, sumXX+x*x, sumXY+x*y
	}
	slope := (ranks*sumXY - sumX*sumY) / (ranks*sumXX - sumX*sumX)
	if math.Abs(slope+w.ZipfS) > 0.1 {
		t.Errorf("log-log slope of popularity = %.3f, want %.3f within 0.1", slope, -w.ZipfS)
	}
}

func TestGeneratorRhythm(t *testing.T) {
	w := smallWorkload(4)
	w.Events = 200_000

	var office, night, topOfHour int
	for e := range w.All() {
		weekend := e.At.Weekday() == time.Saturday || e.At.Weekday() == time.Sunday
		switch h := e.At.Hour(); {
		case !weekend && h >= 8 && h <= 18:
			office++
		case !weekend && (h < 7 || h > 19):
			night++
		}
		if e.At.Minute() < 5 {
			topOfHour++
		}
	}

	// Weekday office hours (11 per day) weigh 1 and nights (11 per day)
	// weigh 0.15, so office hours get 1/0.15 ≈ 6.7 times the events.
	if ratio := float64(office) / float64(night); ratio < 6 || ratio > 7.3 {
		t.Errorf("weekday office/night events = %.2f, want about 6.7", ratio)
	}

	// Minutes 0 to 4 weigh 4 and the other 55 weigh 1: 20/75 of the events.
	if share := float64(topOfHour) / float64(w.Events); math.Abs(share-20.0/75) > 0.01 {
		t.Errorf("share of events in minutes 0-4 = %.3f, want %.3f", share, 20.0/75)
	}
}

func TestWorkloadValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Workload)
	}{
		{"negative events", func(w *Workload) { w.Events = -1 }},
		{"no domains", func(w *Workload) { w.Domains = 0 }},
		{"no machines", func(w *Workload) { w.Machines = 0 }},
		{"no days", func(w *Workload) { w.Days = 0 }},
		{"zipf exponent 1", func(w *Workload) { w.ZipfS = 1 }},
		{"zipf exponent NaN", func(w *Workload) { w.ZipfS = math.NaN() }},
		{"end inside an hour", func(w *Workload) { w.End = w.End.Add(time.Minute) }},
	}

	if err := smallWorkload(1).Validate(); err != nil {
		t.Fatalf("valid workload: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := smallWorkload(1)
			tt.modify(&w)
			if _, err := NewGenerator(w); err == nil {
				t.Errorf("NewGenerator(%+v) returned no error", w)
			}
		})
	}
}

func TestSizeSetExactCounts(t *testing.T) {
	set := NewSizeSet([]int{1, 100, 2_000}, 2, 1)

	machines := map[string]map[time.Duration]map[string]bool{}
	all := map[string]map[string]bool{}
	for _, e := range set.Events {
		if all[e.Domain] == nil {
			all[e.Domain] = map[string]bool{}
			machines[e.Domain] = map[time.Duration]map[string]bool{}
		}
		all[e.Domain][e.Machine] = true

		for _, window := range Windows {
			if machines[e.Domain][window] == nil {
				machines[e.Domain][window] = map[string]bool{}
			}
			if !e.At.Before(set.Now.Add(-window)) {
				machines[e.Domain][window][e.Machine] = true
			}
		}
	}

	if got := len(set.Domains); got != 6 {
		t.Fatalf("got %d domains, want 3 sizes × 2 copies = 6", got)
	}

	// ownerBySize[size][machine] is the domain of that size that has the
	// machine. Copies of one size must not share machines.
	ownerBySize := map[int]map[string]string{}
	for _, d := range set.Domains {
		if ownerBySize[d.Machines] == nil {
			ownerBySize[d.Machines] = map[string]string{}
		}
		for machine := range all[d.Name] {
			if other, taken := ownerBySize[d.Machines][machine]; taken {
				t.Errorf("machine %s is in both %s and %s, copies of one size", machine, other, d.Name)
			}
			ownerBySize[d.Machines][machine] = d.Name
		}
	}

	for _, d := range set.Domains {
		if got := len(all[d.Name]); got != d.Machines {
			t.Errorf("%s: %d distinct machines in its events, want %d", d.Name, got, d.Machines)
		}
		for _, window := range Windows {
			if got := len(machines[d.Name][window]); got != d.Exact[window] {
				t.Errorf("%s over %v: %d machines in its events, Exact is %d", d.Name, window, got, d.Exact[window])
			}
		}
	}
}
