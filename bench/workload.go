package bench

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"time"
)

// Event is one DNS event: Machine contacted Domain at At.
type Event struct {
	Domain  string
	Machine string
	At      time.Time
}

// Workload describes a generated stream of events. Domain popularity
// follows a Zipf law, machines are drawn uniformly from a fleet, and the
// events spread over Days days that end at End with a daily and an hourly
// rhythm. The same Workload always yields the same events in the same
// order.
type Workload struct {
	Seed     uint64    // seed of the random generator
	Events   int64     // number of events
	Domains  int       // number of distinct domains that can be drawn
	Machines int       // size of the fleet
	Days     int       // length of the stream in days
	ZipfS    float64   // Zipf exponent s of domain popularity, above 1
	End      time.Time // end of the stream, exclusive, on an hour boundary
}

// DefaultWorkload returns the workload used by the ingest benchmarks: events
// events over 30 days from a fleet of 2,000 machines and 50,000 domains.
func DefaultWorkload(events int64) Workload {
	return Workload{
		Seed:     1,
		Events:   events,
		Domains:  50_000,
		Machines: 2_000,
		Days:     30,
		ZipfS:    1.1,
		End:      BenchNow,
	}
}

// BenchNow is the fixed clock of every benchmark: the end of the generated
// streams and the end of every Stats window.
var BenchNow = time.Date(2026, time.November, 2, 0, 0, 0, 0, time.UTC)

// Validate returns an error naming the first invalid field of w.
func (w Workload) Validate() error {
	switch {
	case w.Events < 0:
		return fmt.Errorf("bench: invalid workload: Events %d is negative", w.Events)
	case w.Domains < 1:
		return fmt.Errorf("bench: invalid workload: Domains %d must be at least 1", w.Domains)
	case w.Machines < 1:
		return fmt.Errorf("bench: invalid workload: Machines %d must be at least 1", w.Machines)
	case w.Days < 1:
		return fmt.Errorf("bench: invalid workload: Days %d must be at least 1", w.Days)
	case !(w.ZipfS > 1):
		return fmt.Errorf("bench: invalid workload: ZipfS %v must be above 1", w.ZipfS)
	case !w.End.Equal(w.End.Truncate(time.Hour)):
		return fmt.Errorf("bench: invalid workload: End %v is not on an hour boundary", w.End)
	}
	return nil
}

// DomainName returns the name of the domain of popularity rank i, where
// rank 0 is the most popular.
func DomainName(i int) string {
	return fmt.Sprintf("d%06d.example.com", i)
}

// MachineID returns the ID of machine i of a fleet: 40 hexadecimal digits,
// the shape of a Defender for Endpoint machine ID.
func MachineID(i int) string {
	r := rand.New(rand.NewPCG(uint64(i), 0x6d616368696e65))
	return fmt.Sprintf("%016x%016x%08x", r.Uint64(), r.Uint64(), r.Uint32())
}

// Generator streams the events of a Workload without holding them in
// memory. Its memory use grows with Domains and Machines, not with Events.
// A Generator is not safe for concurrent use.
type Generator struct {
	rng      *rand.Rand
	zipf     *rand.Zipf
	domains  []string
	machines []string

	// hourCounts[h] is the number of events in hour h from the start.
	hourCounts []int64
	// minuteCDF[m] is the share of an hour's events before minute m.
	minuteCDF [61]float64

	hour        int   // current hour index
	inHour      int64 // events already emitted in the current hour
	start       time.Time
	emittedLeft int64
}

// NewGenerator returns a Generator for w, or an error when w is invalid.
func NewGenerator(w Workload) (*Generator, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}

	g := &Generator{
		rng:         rand.New(rand.NewPCG(w.Seed, 0x646f6d61696e)),
		start:       w.End.Add(-time.Duration(w.Days) * 24 * time.Hour),
		emittedLeft: w.Events,
	}
	g.zipf = rand.NewZipf(g.rng, w.ZipfS, 1, uint64(w.Domains-1))

	g.domains = make([]string, w.Domains)
	for i := range g.domains {
		g.domains[i] = DomainName(i)
	}
	g.machines = make([]string, w.Machines)
	for i := range g.machines {
		g.machines[i] = MachineID(i)
	}

	g.hourCounts = spreadOverHours(w.Events, g.start, w.Days*24)
	g.minuteCDF = minuteShares()
	return g, nil
}

// hourWeight returns the relative activity of the hour that starts at t:
// office hours on weekdays are busiest, nights and weekends quiet.
func hourWeight(t time.Time) float64 {
	day := 1.0
	if t.Weekday() == time.Saturday || t.Weekday() == time.Sunday {
		day = 0.35
	}

	hour := 0.15
	switch h := t.Hour(); {
	case h >= 8 && h <= 18:
		hour = 1
	case h == 7 || h == 19:
		hour = 0.6
	}
	return day * hour
}

// spreadOverHours splits events over hours in proportion to hourWeight,
// rounding the running total so that the counts add up to events exactly.
func spreadOverHours(events int64, start time.Time, hours int) []int64 {
	cumulative := make([]float64, hours+1)
	for h := range hours {
		cumulative[h+1] = cumulative[h] + hourWeight(start.Add(time.Duration(h)*time.Hour))
	}

	counts := make([]int64, hours)
	total := cumulative[hours]
	for h := range hours {
		before := int64(math.Round(float64(events) * cumulative[h] / total))
		after := int64(math.Round(float64(events) * cumulative[h+1] / total))
		counts[h] = after - before
	}
	return counts
}

// minuteShares returns the cumulative share of an hour's events before each
// minute. The first five minutes of every hour weigh four times as much,
// the way scheduled tasks crowd the top of the hour.
func minuteShares() [61]float64 {
	var cdf [61]float64
	for m := range 60 {
		weight := 1.0
		if m < 5 {
			weight = 4
		}
		cdf[m+1] = cdf[m] + weight
	}
	for m := range cdf {
		cdf[m] /= cdf[60]
	}
	return cdf
}

// offsetInHour maps a share u in [0, 1) of an hour's events to an offset
// from the start of the hour, inverting minuteCDF piecewise linearly.
func (g *Generator) offsetInHour(u float64) time.Duration {
	m := 0
	for m < 59 && g.minuteCDF[m+1] <= u {
		m++
	}
	within := (u - g.minuteCDF[m]) / (g.minuteCDF[m+1] - g.minuteCDF[m])
	return time.Duration((float64(m) + within) * float64(time.Minute))
}

// Fill writes the next events into buf and returns how many it wrote. It
// returns 0 once the stream is exhausted. Events come in time order.
func (g *Generator) Fill(buf []Event) int {
	n := 0
	for n < len(buf) && g.emittedLeft > 0 {
		for g.inHour >= g.hourCounts[g.hour] {
			g.hour++
			g.inHour = 0
		}

		count := g.hourCounts[g.hour]
		u := (float64(g.inHour) + 0.5) / float64(count)
		hourStart := g.start.Add(time.Duration(g.hour) * time.Hour)

		buf[n] = Event{
			Domain:  g.domains[g.zipf.Uint64()],
			Machine: g.machines[g.rng.IntN(len(g.machines))],
			At:      hourStart.Add(g.offsetInHour(u)),
		}

		g.inHour++
		g.emittedLeft--
		n++
	}
	return n
}

// All returns the events of w in time order, generated in chunks so that
// any size streams in constant memory. It panics when w is invalid.
func (w Workload) All() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		g, err := NewGenerator(w)
		if err != nil {
			panic(err)
		}

		buf := make([]Event, 4096)
		for {
			n := g.Fill(buf)
			if n == 0 {
				return
			}
			for _, e := range buf[:n] {
				if !yield(e) {
					return
				}
			}
		}
	}
}

// ErrNoEvents is returned by a Counter's Count when the domain has no event
// inside the window.
var ErrNoEvents = errors.New("bench: no events for domain in window")
