package domainstats

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/text/cases"
)

// shardCount is the number of independently locked parts of the write
// buffer. Record locks one of them, chosen by domain, so writers on
// different domains rarely wait for each other.
const shardCount = 64

// pendingPair is one machine seen in one hour.
type pendingPair struct {
	machine uint64
	hour    uint32
}

// pendingDomain holds the buffered events of one domain.
type pendingDomain struct {
	pairs map[pendingPair]struct{}
	hours map[uint32]*hourSpan

	// lastSpan is the span of the most recently recorded hour, which most
	// events share; it saves a map lookup.
	lastSpan *hourSpan
}

func newPendingDomain() *pendingDomain {
	return &pendingDomain{
		pairs: make(map[pendingPair]struct{}),
		hours: make(map[uint32]*hourSpan),
	}
}

// add buffers one event and returns how many new entries it created.
func (p *pendingDomain) add(machine uint64, hour uint32, millis int64) int {
	added := 0
	key := pendingPair{machine: machine, hour: hour}
	if _, ok := p.pairs[key]; !ok {
		p.pairs[key] = struct{}{}
		added++
	}

	span := p.lastSpan
	if span == nil || span.hour != hour {
		span = p.hours[hour]
		if span == nil {
			span = &hourSpan{hour: hour, first: millis, last: millis}
			p.hours[hour] = span
			added++
		}
		p.lastSpan = span
	}
	span.first = min(span.first, millis)
	span.last = max(span.last, millis)
	return added
}

// merge adds everything buffered in other to p.
func (p *pendingDomain) merge(other *pendingDomain) {
	for key := range other.pairs {
		p.pairs[key] = struct{}{}
	}
	for hour, span := range other.hours {
		mine := p.hours[hour]
		if mine == nil {
			copied := *span
			p.hours[hour] = &copied
			continue
		}
		mine.first = min(mine.first, span.first)
		mine.last = max(mine.last, span.last)
	}
}

func (p *pendingDomain) size() int { return len(p.pairs) + len(p.hours) }

// bufferShard is one independently locked part of the write buffer: one
// of the store's shards or a Recorder's own buffer.
type bufferShard struct {
	mu      sync.Mutex
	domains map[string]*pendingDomain // guarded by mu
	entries int                       // guarded by mu: pairs plus hours buffered
	closed  bool                      // guarded by mu: set by Close

	// newest is the newest event buffered here, in Unix ms, or -1. It is
	// written under mu and read without it.
	newest atomic.Int64

	// Padding keeps neighbouring shards' locks on separate cache lines.
	_ [64]byte
}

func (b *bufferShard) init() {
	b.domains = make(map[string]*pendingDomain)
	b.newest.Store(-1)
}

// Recorder is a write buffer of its own for one goroutine that records many
// events, such as one ingest worker. Recording through a Recorder never
// contends with other goroutines, so ingest scales across cores, while
// Store.Record shares the store's buffer with every caller. Flushes, Stats
// and Close treat events buffered in a Recorder like any other.
//
// A Recorder is safe for concurrent use, but it is meant for one goroutine
// at a time. Recorders live as long as their store; create one per worker
// and reuse it.
type Recorder struct {
	store  *Store
	buffer bufferShard
}

// NewRecorder returns a new Recorder of s. Its buffer counts toward
// Options.MaxBufferedPairs like the store's own.
func (s *Store) NewRecorder() *Recorder {
	r := &Recorder{store: s}
	r.buffer.init()

	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	r.buffer.closed = s.closed.Load()
	s.recorders = append(s.recorders, r)
	return r
}

// Record adds one event to the Recorder's buffer. It behaves as
// Store.Record does.
func (r *Recorder) Record(domain, machine string, at time.Time) error {
	return r.store.record(domain, machine, at, &r.buffer)
}

// Record adds one event: machine contacted domain at time at. The domain is
// normalized as NormalizeDomain describes, and the machine ID is compared
// after trimming spaces and folding case. Events may arrive in any order and
// any time zone, and recording the same event twice changes nothing.
//
// Record buffers the event in memory; it becomes durable at the next flush.
// Stats includes it at once. Events older than the retention, counted back from
// the newest event recorded, are dropped at the flush.
func (s *Store) Record(domain, machine string, at time.Time) error {
	return s.record(domain, machine, at, nil)
}

// record adds an event to buffer, or to the store's shard for the domain
// when buffer is nil.
func (s *Store) record(domain, machine string, at time.Time, buffer *bufferShard) error {
	if s.readOnly {
		return ErrReadOnly
	}
	name, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	machineHash, err := hashMachine(machine)
	if err != nil {
		return err
	}
	millis := at.UnixMilli()
	if at.IsZero() || millis < 0 || millis/millisPerHour > 1<<32-1 {
		return fmt.Errorf("%w %s for domain %q", ErrInvalidTime, at.Format(time.RFC3339Nano), name)
	}
	hour := uint32(millis / millisPerHour)

	// The flusher has fallen behind when the buffer holds twice its
	// bound: flush here, so that buffered memory stays bounded, and report
	// the failure without buffering more when it cannot be written.
	if s.buffered.Load() >= 2*int64(s.maxBuffered) {
		if err := s.Flush(); err != nil {
			return fmt.Errorf("domainstats: write buffer full and flush failed: %w", err)
		}
	}

	shard := buffer
	if shard == nil {
		shard = s.shardFor(name)
	}
	shard.mu.Lock()
	if shard.closed {
		shard.mu.Unlock()
		return ErrClosed
	}

	pending := shard.domains[name]
	if pending == nil {
		pending = newPendingDomain()
		shard.domains[strings.Clone(name)] = pending
	}
	added := pending.add(machineHash, hour, millis)
	shard.entries += added
	if millis > shard.newest.Load() {
		shard.newest.Store(millis)
	}
	shard.mu.Unlock()

	// Only new entries touch the shared counter, so repeated events, the
	// common case, never write memory that other cores read.
	if added > 0 && s.buffered.Add(int64(added)) >= int64(s.maxBuffered) {
		s.requestFlush()
	}
	return nil
}

// shardFor returns the buffer shard that holds the domain name.
func (s *Store) shardFor(name string) *bufferShard {
	return &s.shards[maphash.String(s.shardSeed, name)%shardCount]
}

// hashMachine returns a 64-bit hash of the machine ID after trimming spaces
// and folding case. The hash is stable across processes and versions,
// because stored records keep it.
func hashMachine(machine string) (uint64, error) {
	id := strings.TrimSpace(machine)
	if id == "" {
		return 0, fmt.Errorf("%w: empty machine ID", ErrInvalidMachine)
	}

	if isASCII(id) {
		return hashFoldedASCII(id), nil
	}
	if !utf8.ValidString(id) {
		return 0, fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidMachine, machine)
	}
	return hashFoldedASCII(cases.Fold().String(id)), nil
}

// hashFoldedASCII hashes s with FNV-1a, folding ASCII upper case to lower
// case on the way, then mixes the result with the SplitMix64 finalizer so
// that every output bit depends on every input bit, as HyperLogLog needs.
func hashFoldedASCII(s string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= prime64
	}
	return mix64(h)
}

// mix64 is the SplitMix64 finalizer.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
