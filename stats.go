package domainstats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Stats is the number of distinct machines that contacted a domain in one
// window, with the times of its first and last event there. It carries the
// same facts as Microsoft Defender for Endpoint's InOrgDomainStats entity.
type Stats struct {
	Host          string    // the normalized domain
	OrgPrevalence int64     // distinct machines seen in the window
	OrgFirstSeen  time.Time // earliest event in the window, UTC
	OrgLastSeen   time.Time // latest event in the window, UTC
}

// Errors returned by the store. Callers test for them with errors.Is,
// because the returned errors wrap them with the value involved.
var (
	// ErrNotFound is returned by Stats when the domain has no event inside
	// the window.
	ErrNotFound = errors.New("domainstats: no events for domain in window")

	// ErrInvalidDomain is returned when a domain cannot be normalized. The
	// wrapping error shows the rejected value.
	ErrInvalidDomain = errors.New("domainstats: invalid domain")

	// ErrInvalidMachine is returned by Record when the machine ID is empty
	// after trimming spaces or is not valid UTF-8.
	ErrInvalidMachine = errors.New("domainstats: invalid machine")

	// ErrInvalidTime is returned by Record for a zero time, a time before
	// the Unix epoch or one too far in the future to store.
	ErrInvalidTime = errors.New("domainstats: invalid event time")

	// ErrInvalidLookBack is returned by StatsLookBack when the look-back is
	// zero, negative or longer than the store's retention.
	ErrInvalidLookBack = errors.New("domainstats: invalid look-back")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("domainstats: store closed")

	// ErrLocked is returned by Open when another process holds the file
	// open past Options.LockTimeout.
	ErrLocked = errors.New("domainstats: file is locked by another process")

	// ErrReadOnly is returned by Record, SetCheckpoint and Flush on a
	// store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("domainstats: store opened read-only")

	// ErrCorrupt is returned when a stored record fails its checksum or
	// cannot be decoded. The wrapping error names the record.
	ErrCorrupt = errors.New("domainstats: corrupt record")
)

// DefaultLookBack is the window that Stats uses: 30 days, the default and
// maximum of Defender's API.
const DefaultLookBack = 720 * time.Hour

// Stats returns the statistics of domain over the default window, the
// DefaultLookBack hours that end at Options.Now.
func (s *Store) Stats(domain string) (Stats, error) {
	return s.StatsLookBack(domain, DefaultLookBack)
}

// StatsLookBack returns the statistics of domain over the window of
// lookBack that ends at Options.Now. It includes events recorded but not yet
// flushed.
//
// The window is the span from Now - lookBack to Now, rounded outward to
// whole hours of UTC: its start goes down to the beginning of its hour and
// its end up to the end of Now's hour. So with Now at 10:20 and a look-back
// of 2 hours, the window runs from 08:00 to 10:59:59.999. It never leaves
// out an event of the exact span and may take in up to an hour more on
// each side. Hours older than the retention never count.
//
// A lookBack that is zero, negative or longer than the retention returns
// an error wrapping ErrInvalidLookBack. A domain with no event in the
// window returns an error wrapping ErrNotFound.
func (s *Store) StatsLookBack(domain string, lookBack time.Duration) (_ Stats, err error) {
	if s.closed.Load() {
		return Stats{}, ErrClosed
	}
	name, err := NormalizeDomain(domain)
	if err != nil {
		return Stats{}, err
	}
	if lookBack <= 0 || lookBack > s.Retention() {
		return Stats{}, fmt.Errorf("%w %s: must be positive and at most the retention of %s",
			ErrInvalidLookBack, lookBack, s.Retention())
	}

	// A blank store is read-only, so it has no buffered events either.
	w, ok := s.window(lookBack)
	if !ok || s.blank {
		return Stats{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}

	// Read the buffer before the file: a flush moves events from the
	// buffer to the file, and only after they are committed does it
	// drop them from the buffer.
	var acc windowAccumulator
	s.addPending(name, w, &acc)
	generation := s.cache.currentGeneration()
	defer guardFaults()()
	defer recoverDamage(&err, s.path, "domain", name)
	err = s.db.View(func(tx *bolt.Tx) error {
		return s.addStored(tx, name, w, generation, &acc)
	})
	if err != nil {
		return Stats{}, s.viewError(err)
	}

	if !acc.found {
		return Stats{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return Stats{
		Host:          name,
		OrgPrevalence: max(acc.prevalence, 1),
		OrgFirstSeen:  time.UnixMilli(acc.first).UTC(),
		OrgLastSeen:   time.UnixMilli(acc.last).UTC(),
	}, nil
}

// hourWindow is an inclusive range of hours since the Unix epoch.
type hourWindow struct {
	start, end uint32
}

func (w hourWindow) contains(hour uint32) bool { return hour >= w.start && hour <= w.end }

// window returns the hours of a look-back ending at Now, clipped to the
// retention, and false when nothing is left of it.
func (s *Store) window(lookBack time.Duration) (hourWindow, bool) {
	now := s.now()
	nowMillis := now.UnixMilli()
	if nowMillis < 0 {
		return hourWindow{}, false
	}
	end := uint32(min(nowMillis/millisPerHour, 1<<32-1))

	// Subtract before rounding to milliseconds, so that a look-back with a
	// fraction of a millisecond still reaches the event it covers.
	startMillis := max(now.Add(-lookBack).UnixMilli(), 0)
	start := uint32(min(startMillis/millisPerHour, 1<<32-1))
	start = max(start, s.cutoffHour(s.newestMillis()))
	return hourWindow{start: start, end: end}, start <= end
}

// windowAccumulator gathers one domain's statistics over a window from the
// buffer and the file.
type windowAccumulator struct {
	found       bool
	first, last int64

	// pendingMachines are buffered machines active in the window; the
	// stored ones are counted only when not among them.
	pendingMachines map[uint64]struct{}
	prevalence      int64
}

func (a *windowAccumulator) addSpan(span hourSpan) {
	if !a.found {
		a.found = true
		a.first, a.last = span.first, span.last
		return
	}
	a.first = min(a.first, span.first)
	a.last = max(a.last, span.last)
}

// addPending adds the buffered events of name, in the shards and in a
// running flush.
func (s *Store) addPending(name string, w hourWindow, acc *windowAccumulator) {
	add := func(pending *pendingDomain) {
		for hour, span := range pending.hours {
			if w.contains(hour) {
				acc.addSpan(*span)
			}
		}
		for pair := range pending.pairs {
			if !w.contains(pair.hour) {
				continue
			}
			if acc.pendingMachines == nil {
				acc.pendingMachines = make(map[uint64]struct{})
			}
			acc.pendingMachines[pair.machine] = struct{}{}
		}
	}

	// Holding pendingMu keeps a flush from moving events between the
	// shards and inflight while both are read.
	s.pendingMu.RLock()
	defer s.pendingMu.RUnlock()

	readBuffer := func(buffer *bufferShard) {
		buffer.mu.Lock()
		if pending := buffer.domains[name]; pending != nil {
			add(pending)
		}
		buffer.mu.Unlock()
	}
	readBuffer(s.shardFor(name))
	for _, r := range s.recorders {
		readBuffer(&r.buffer)
	}

	if pending := s.inflight[name]; pending != nil {
		add(pending)
	}
}

// addStored adds the stored record of name to acc and sets its prevalence.
func (s *Store) addStored(tx *bolt.Tx, name string, w hourWindow, generation uint64, acc *windowAccumulator) error {
	data := tx.Bucket(domainsBucket).Get([]byte(name))
	if data == nil {
		acc.prevalence = int64(len(acc.pendingMachines))
		return nil
	}

	r, mode, err := openRecord(name, data)
	if err != nil {
		return fmt.Errorf("%w: domain %q: %v", ErrCorrupt, name, err)
	}
	base, final := r.windowSpans(w, acc)

	if mode == modeSketch {
		if r.err == nil && r.pos != len(r.data) {
			r.fail(errTrailing)
		}
		if r.err != nil {
			return fmt.Errorf("%w: domain %q: %v", ErrCorrupt, name, r.err)
		}
		merged, err := s.windowSketch(tx, name, w.start, w.end, generation)
		if err != nil {
			return err
		}
		if len(acc.pendingMachines) > 0 {
			merged = merged.Clone()
			for machine := range acc.pendingMachines {
				merged.InsertHash(machine)
			}
		}
		acc.prevalence = int64(estimate(merged))
		return nil
	}

	// Count stored machines active in the window straight from the bytes,
	// without building the record.
	n := r.count(9)
	if r.err != nil {
		return fmt.Errorf("%w: domain %q: %v", ErrCorrupt, name, r.err)
	}
	count, err := countMachinesInWindow(r.data[r.pos:], n, base, final, w, acc.pendingMachines)
	if err != nil {
		return fmt.Errorf("%w: domain %q: %v", ErrCorrupt, name, err)
	}
	acc.prevalence = int64(len(acc.pendingMachines)) + count
	return nil
}

// windowSpans reads the hours section like hourSpans, with the same
// checks, and adds the hours inside w to acc. It is the first loop of
// every Stats call, so it avoids a call per hour.
func (r *recordReader) windowSpans(w hourWindow, acc *windowAccumulator) (base, final uint32) {
	n := r.count(3)
	data := r.data
	pos := r.pos
	hour := uint64(0)
	for i := range n {
		delta, size := uvarintAt(data, pos)
		if size <= 0 {
			r.fail(errTruncated)
			return 0, 0
		}
		pos += size
		if i > 0 && delta == 0 {
			r.fail(errOutOfOrder)
			return 0, 0
		}
		hour += delta
		if hour > 1<<32-1 {
			r.fail(errHourOverrun)
			return 0, 0
		}
		if i == 0 {
			base = uint32(hour)
		}

		first, size := uvarintAt(data, pos)
		if size <= 0 {
			r.fail(errTruncated)
			return 0, 0
		}
		pos += size
		last, size := uvarintAt(data, pos)
		if size <= 0 {
			r.fail(errTruncated)
			return 0, 0
		}
		pos += size
		if first > last || last >= millisPerHour {
			r.fail(errOutOfOrder)
			return 0, 0
		}

		if w.contains(uint32(hour)) {
			start := int64(hour) * millisPerHour
			acc.addSpan(hourSpan{hour: uint32(hour), first: start + int64(first), last: start + int64(last)})
		}
	}
	r.pos = pos
	return base, uint32(hour)
}

// countMachinesInWindow walks the n machines of an exact-mode record in
// data and counts those with a run overlapping w, leaving out the ones in
// skip. It is the inner loop of Stats, so it reads the bytes in place
// rather than through recordReader, with the same bounds checks. base and
// final are the record's first and last hour.
func countMachinesInWindow(data []byte, n int, base, final uint32, w hourWindow, skip map[uint64]struct{}) (int64, error) {
	var count int64
	pos := 0
	for range n {
		if len(data)-pos < 8 {
			return 0, errTruncated
		}
		hash := binary.LittleEndian.Uint64(data[pos:])
		pos += 8

		runs, size := uvarintAt(data, pos)
		if size <= 0 || runs == 0 {
			return 0, errTruncated
		}
		pos += size

		active := false
		last := uint64(base)
		for j := uint64(0); j < runs; j++ {
			delta, size := uvarintAt(data, pos)
			if size <= 0 {
				return 0, errTruncated
			}
			pos += size
			length, size := uvarintAt(data, pos)
			if size <= 0 {
				return 0, errTruncated
			}
			pos += size

			start := last + delta
			end := start + length
			if end > uint64(final) {
				return 0, errHourOverrun
			}
			if start <= uint64(w.end) && end >= uint64(w.start) {
				active = true
			}
			last = end
		}

		if !active {
			continue
		}
		if _, pending := skip[hash]; !pending {
			count++
		}
	}
	if pos != len(data) {
		return 0, errTrailing
	}
	return count, nil
}

// uvarintAt decodes the uvarint at data[pos:], reading the common one- and
// two-byte forms without a call.
func uvarintAt(data []byte, pos int) (uint64, int) {
	if pos < len(data) && data[pos] < 0x80 {
		return uint64(data[pos]), 1
	}
	if pos+1 < len(data) && data[pos+1] < 0x80 {
		return uint64(data[pos]&0x7f) | uint64(data[pos+1])<<7, 2
	}
	if pos >= len(data) {
		return 0, 0
	}
	return binary.Uvarint(data[pos:])
}
