package bench

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// StatsSizes are the numbers of distinct machines per domain that the Stats
// and accuracy benchmarks measure.
var StatsSizes = []int{1, 100, 1_000, 10_000, 100_000}

// Windows are the look-backs that the Stats and accuracy benchmarks query.
var Windows = []time.Duration{48 * time.Hour, 720 * time.Hour}

// SizedDomain is a domain of a SizeSet with its exact counts.
type SizedDomain struct {
	Name     string
	Machines int // distinct machines over the whole 30 days

	// Exact maps each of Windows to the exact number of distinct machines
	// inside that window.
	Exact map[time.Duration]int
}

// SizeSet is a workload of domains with a chosen number of distinct
// machines each, and the exact count of every domain for every window.
//
// Every machine of a domain contacts it once, and one machine in four a
// second time, in hours drawn at random over the 30 days that end at Now.
// The first machine's first event falls in the last 47 hours, so that every
// domain has at least one machine in every window.
// No event falls within an hour of the 48-hour window's start or in the
// two oldest hours of the 720-hour window, so a store that rounds windows
// outward to whole hours returns the same exact count.
type SizeSet struct {
	Now     time.Time
	Domains []SizedDomain
	Events  []Event
}

// NewSizeSet returns a SizeSet with copies domains of each of sizes, so
// that accuracy is averaged over several domains. Sizes above 10,000 get one
// domain each to keep the set small.
func NewSizeSet(sizes []int, copies int, seed uint64) *SizeSet {
	set := &SizeSet{Now: BenchNow}
	rng := rand.New(rand.NewPCG(seed, 0x73697a6573))

	copiesOf := func(size int) int {
		if size > 10_000 {
			return 1
		}
		return copies
	}

	// Each copy of a size gets its own machines, so that the copies are
	// independent samples of a sketch's error.
	fleetSize := 0
	for _, size := range sizes {
		fleetSize = max(fleetSize, size*copiesOf(size))
	}
	fleet := make([]string, fleetSize)
	for i := range fleet {
		fleet[i] = MachineID(i)
	}

	for _, size := range sizes {
		for c := range copiesOf(size) {
			machines := fleet[c*size : (c+1)*size]
			set.addDomain(fmt.Sprintf("s%d-%d.sizes.example.com", size, c), machines, rng)
		}
	}
	return set
}

func (set *SizeSet) addDomain(name string, machines []string, rng *rand.Rand) {
	domain := SizedDomain{Name: name, Machines: len(machines), Exact: map[time.Duration]int{}}

	for i, machine := range machines {
		ages := []int{eventHour(rng)}
		if i == 0 {
			// Every domain has a machine in the shortest window.
			ages[0] = rng.IntN(47)
		}
		if rng.IntN(4) == 0 {
			ages = append(ages, eventHour(rng))
		}

		for _, window := range Windows {
			for _, age := range ages {
				if time.Duration(age+1)*time.Hour <= window {
					domain.Exact[window]++
					break
				}
			}
		}

		for _, age := range ages {
			minutes := 1 + rng.IntN(58)
			at := set.Now.Add(-time.Duration(age)*time.Hour - time.Duration(minutes)*time.Minute)
			set.Events = append(set.Events, Event{Domain: name, Machine: machine, At: at})
		}
	}

	set.Domains = append(set.Domains, domain)
}

// eventHour returns how many whole hours before Now an event falls: from 0
// to 717, but never 47 or 48, the hours on either side of the 48-hour
// window's start.
func eventHour(rng *rand.Rand) int {
	for {
		age := rng.IntN(718)
		if age != 47 && age != 48 {
			return age
		}
	}
}
