package domainstats

import "time"

// Options configures a Store. A nil *Options, or a zero field, takes the
// default given on that field.
type Options struct {
	// Now is the clock that windows end at. If nil, defaults to time.Now.
	Now func() time.Time

	// Retention is how far back from the newest recorded event data is
	// kept. If zero, defaults to 30 days.
	Retention time.Duration

	// FlushInterval is how often buffered events are committed. If zero,
	// defaults to 1 second. A negative value turns the background flush
	// off, so events are committed only by Flush, Close and the buffer
	// limit.
	FlushInterval time.Duration

	// MaxBufferedPairs bounds the buffered (domain, machine, hour) entries.
	// Reaching it triggers an early flush. If zero, defaults to 1,000,000.
	MaxBufferedPairs int

	// LockTimeout is how long Open waits for another process to release
	// the file. If zero, defaults to 5 seconds.
	LockTimeout time.Duration

	// ExactLimit is the number of distinct machines per domain up to which
	// counts are exact. Above it the domain switches to HyperLogLog
	// sketches. If zero, defaults to 16,384.
	ExactLimit int
}

// Store records domain events and answers statistics from a bbolt file.
// A Store is safe for concurrent use by multiple goroutines.
type Store struct{}

// Open opens or creates the store file at path.
func Open(path string, opts *Options) (*Store, error) { panic("TODO") }

// Flush commits every buffered event in one transaction.
func (s *Store) Flush() error { panic("TODO") }

// Close flushes, then releases the file.
func (s *Store) Close() error { panic("TODO") }

// Retention returns how far back from the newest event data is kept.
func (s *Store) Retention() time.Duration { panic("TODO") }

// Newest returns the time of the newest event recorded, and false when the
// store is empty.
func (s *Store) Newest() (time.Time, bool) { panic("TODO") }

// SetCheckpoint stores value under key, committed in the same transaction
// as every event recorded before the call.
func (s *Store) SetCheckpoint(key string, value []byte) error { panic("TODO") }

// Checkpoint returns the value last set under key, or nil.
func (s *Store) Checkpoint(key string) ([]byte, error) { panic("TODO") }
