package bench

import (
	"fmt"
	"time"
)

// Result is the count and first and last seen time of one domain in one
// window, as a Counter returns them.
type Result struct {
	Machines  int64     // distinct machines in the window
	FirstSeen time.Time // earliest event in the window, zero when unknown
	LastSeen  time.Time // latest event in the window, zero when unknown
}

// Counter is one way to count the distinct machines that contacted a
// domain inside a window that ends at a fixed now. Every implementation in
// this package records events in batches and is not safe for concurrent
// use, except where its type documents otherwise.
type Counter interface {
	// Record adds one event.
	Record(e Event) error

	// Flush commits every buffered event.
	Flush() error

	// Count returns the Result for domain over the lookBack that ends at
	// now. It returns an error wrapping ErrNoEvents when the window holds
	// no event of domain.
	Count(domain string, lookBack time.Duration) (Result, error)

	// Close flushes and releases every resource.
	Close() error
}

// pairSeen is the first and last time, in Unix nanoseconds, that one
// machine contacted one domain.
type pairSeen struct {
	first, last int64
}

// MapCounter is the exact, unbounded baseline: a Go map from domain to
// machine to first and last seen time. Its memory grows with every distinct
// (domain, machine) pair and it keeps nothing on disk.
type MapCounter struct {
	now     time.Time
	domains map[string]map[string]pairSeen
}

// NewMapCounter returns an empty MapCounter whose windows end at now.
func NewMapCounter(now time.Time) *MapCounter {
	return &MapCounter{now: now, domains: map[string]map[string]pairSeen{}}
}

// Record adds one event.
func (c *MapCounter) Record(e Event) error {
	machines, ok := c.domains[e.Domain]
	if !ok {
		machines = map[string]pairSeen{}
		c.domains[e.Domain] = machines
	}

	at := e.At.UnixNano()
	seen, ok := machines[e.Machine]
	if !ok {
		machines[e.Machine] = pairSeen{first: at, last: at}
		return nil
	}
	seen.first = min(seen.first, at)
	seen.last = max(seen.last, at)
	machines[e.Machine] = seen
	return nil
}

// Flush does nothing, because the map holds no buffer.
func (c *MapCounter) Flush() error { return nil }

// Count returns the number of machines whose last event falls inside the
// window. The first seen time is clamped to the window start.
func (c *MapCounter) Count(domain string, lookBack time.Duration) (Result, error) {
	from := c.now.Add(-lookBack).UnixNano()
	to := c.now.UnixNano()

	var count, first, last int64
	for _, seen := range c.domains[domain] {
		if seen.last < from || seen.last > to {
			continue
		}
		if count == 0 || seen.first < first {
			first = seen.first
		}
		last = max(last, seen.last)
		count++
	}
	if count == 0 {
		return Result{}, fmt.Errorf("map: %q: %w", domain, ErrNoEvents)
	}
	return Result{Machines: count, FirstSeen: unixUTC(max(first, from)), LastSeen: unixUTC(last)}, nil
}

// Pairs returns the number of distinct (domain, machine) pairs recorded.
func (c *MapCounter) Pairs() int64 {
	var n int64
	for _, machines := range c.domains {
		n += int64(len(machines))
	}
	return n
}

// Close drops the map.
func (c *MapCounter) Close() error {
	c.domains = nil
	return nil
}

func unixUTC(nanos int64) time.Time {
	return time.Unix(0, nanos).UTC()
}
