package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/domainstats/domainstats"
)

// StoreCounter runs the domainstats store under test behind the Counter
// interface. It is safe for concurrent use, like the Store it wraps.
type StoreCounter struct {
	Store *domainstats.Store
}

// OpenStore opens the store file at path with a fixed clock at now and
// the given flush interval. A negative interval turns the background flush
// off.
func OpenStore(path string, now time.Time, flushInterval time.Duration) (*StoreCounter, error) {
	store, err := domainstats.Open(path, &domainstats.Options{
		Now:           func() time.Time { return now },
		FlushInterval: flushInterval,
	})
	if err != nil {
		return nil, err
	}
	return &StoreCounter{Store: store}, nil
}

// Record adds one event.
func (c *StoreCounter) Record(e Event) error {
	return c.Store.Record(e.Domain, e.Machine, e.At)
}

// Flush commits every buffered event.
func (c *StoreCounter) Flush() error { return c.Store.Flush() }

// Count returns the store's statistics of domain over lookBack.
func (c *StoreCounter) Count(domain string, lookBack time.Duration) (Result, error) {
	stats, err := c.Store.StatsLookBack(domain, lookBack)
	if errors.Is(err, domainstats.ErrNotFound) {
		return Result{}, fmt.Errorf("store: %q: %w: %w", domain, ErrNoEvents, err)
	}
	if err != nil {
		return Result{}, err
	}
	return Result{Machines: stats.OrgPrevalence, FirstSeen: stats.OrgFirstSeen, LastSeen: stats.OrgLastSeen}, nil
}

// Close flushes and closes the store.
func (c *StoreCounter) Close() error { return c.Store.Close() }
