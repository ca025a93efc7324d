package domainstats

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// sweepEveryHours is how far the retention cutoff advances between two
// sweeps of every stored domain. Between sweeps, records are pruned when a
// flush rewrites them, and Stats ignores hours older than the cutoff.
const sweepEveryHours = 24

// commitFillPercent is the fill fraction at which bbolt splits a leaf
// during a flush.
const commitFillPercent = 0.9

// Flush commits every buffered event, and every checkpoint set before the
// call, in one bbolt transaction. Once it returns nil those events survive
// a crash. On error the events stay buffered for the next flush.
func (s *Store) Flush() error {
	if s.readOnly {
		return ErrReadOnly
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return s.flush()
}

// flush runs one flush unless Close has closed the file.
func (s *Store) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.dbClosed {
		return ErrClosed
	}
	return s.flushLocked()
}

// flushLocked commits the buffer; the caller holds flushMu.
func (s *Store) flushLocked() error {
	// Take the checkpoints and the shards under one lock, so that no
	// checkpoint is taken without the events recorded before it.
	s.pendingMu.Lock()
	checkpoints := s.checkpoints
	s.checkpoints = make(map[string][]byte)
	batch := make(map[string]*pendingDomain)
	batchNewest := int64(-1)
	s.eachBuffer(func(buffer *bufferShard) {
		buffer.mu.Lock()
		defer buffer.mu.Unlock()
		batchNewest = max(batchNewest, buffer.newest.Load())
		if len(buffer.domains) == 0 {
			return
		}

		// A domain may be buffered in a shard and in Recorders too.
		for name, pending := range buffer.domains {
			if current := batch[name]; current != nil {
				current.merge(pending)
			} else {
				batch[name] = pending
			}
		}
		buffer.domains = make(map[string]*pendingDomain)
		s.buffered.Add(-int64(buffer.entries))
		buffer.entries = 0
	})
	s.inflight = batch
	s.inflightCheckpoints = checkpoints
	s.pendingMu.Unlock()

	if len(batch) == 0 && len(checkpoints) == 0 {
		s.pendingMu.Lock()
		s.inflight = nil
		s.inflightCheckpoints = nil
		s.pendingMu.Unlock()
		return nil
	}

	newest := max(s.storedNewest.Load(), batchNewest)
	err := s.db.Update(func(tx *bolt.Tx) error {
		return s.commit(tx, batch, checkpoints, newest)
	})

	if err != nil {
		// Put everything back for the next flush. Doing it under
		// pendingMu, together with dropping inflight, keeps Stats from
		// missing an event and from reading a buffer that Record is
		// changing.
		s.pendingMu.Lock()
		s.restore(batch)
		for key, value := range checkpoints {
			if _, newer := s.checkpoints[key]; !newer {
				s.checkpoints[key] = value
			}
		}
		s.inflight = nil
		s.inflightCheckpoints = nil
		s.pendingMu.Unlock()
		return fmt.Errorf("domainstats: flush to %s: %w", s.path, err)
	}

	s.storedNewest.Store(newest)
	s.cache.invalidate()
	s.pendingMu.Lock()
	s.inflight = nil
	s.inflightCheckpoints = nil
	s.pendingMu.Unlock()
	return nil
}

// restore returns the events of a failed flush to the write buffer. The
// caller holds pendingMu.
func (s *Store) restore(batch map[string]*pendingDomain) {
	for name, pending := range batch {
		shard := s.shardFor(name)
		shard.mu.Lock()
		if current := shard.domains[name]; current != nil {
			current.merge(pending)
		} else {
			shard.domains[name] = pending
		}
		shard.entries += pending.size()
		s.buffered.Add(int64(pending.size()))
		shard.mu.Unlock()
	}
}

// commit writes one flush inside the transaction tx. Domains are written in
// key order, because bbolt writes sorted keys much faster than random ones.
func (s *Store) commit(tx *bolt.Tx, batch map[string]*pendingDomain, checkpoints map[string][]byte, newest int64) error {
	cutoff := s.cutoffHour(newest)

	// Each flush writes its domains in key order, so leaves split late
	// stay nearly full. bbolt's default of half-full leaves doubled the
	// file of a one-pass ingest. FillPercent lasts for this transaction.
	tx.Bucket(domainsBucket).FillPercent = commitFillPercent
	tx.Bucket(sketchesBucket).FillPercent = commitFillPercent

	for _, name := range slices.Sorted(maps.Keys(batch)) {
		if err := s.commitDomain(tx, name, batch[name], cutoff); err != nil {
			return err
		}
	}

	stored := tx.Bucket(checkpointsBucket)
	for key, value := range checkpoints {
		var err error
		if len(value) == 0 {
			err = stored.Delete([]byte(key))
		} else {
			err = stored.Put([]byte(key), value)
		}
		if err != nil {
			return fmt.Errorf("checkpoint %q: %w", key, err)
		}
	}

	meta := tx.Bucket(metaBucket)
	if err := meta.Put(newestKey, appendInt64(nil, newest)); err != nil {
		return err
	}

	swept, err := readInt64(meta.Get(sweptKey), 0)
	if err != nil {
		return fmt.Errorf("%w: meta key %q: %v", ErrCorrupt, sweptKey, err)
	}
	if int64(cutoff)-swept >= sweepEveryHours {
		if err := s.sweep(tx, cutoff); err != nil {
			return err
		}
		return meta.Put(sweptKey, appendInt64(nil, int64(cutoff)))
	}
	return nil
}

// commitDomain merges the buffered events of one domain into its record.
func (s *Store) commitDomain(tx *bolt.Tx, name string, pending *pendingDomain, cutoff uint32) error {
	domains := tx.Bucket(domainsBucket)
	key := []byte(name)

	st := &domainState{mode: modeExact}
	if data := domains.Get(key); data != nil {
		var err error
		st, err = decodeState(name, data)
		if err != nil {
			// NOTE: a damaged record stops every flush until it is
			// deleted, so that no event is silently dropped; the
			// verify command lists such records.
			return fmt.Errorf("%w: domain %q: %v", ErrCorrupt, name, err)
		}
	}

	st.addHours(pending.hours, cutoff)
	if st.mode == modeExact {
		st.addMachines(pending.pairs, cutoff)
	} else if err := s.addToSketches(tx, name, pending.pairs, cutoff); err != nil {
		return err
	}
	st.prune(cutoff)

	if st.mode == modeExact && len(st.machines) > s.exactLimit {
		if err := s.switchToSketches(tx, name, st); err != nil {
			return err
		}
	}
	if st.mode == modeSketch {
		if err := deleteSketchesBefore(tx, name, cutoff); err != nil {
			return err
		}
	}

	if len(st.hours) == 0 {
		return domains.Delete(key)
	}
	return domains.Put(key, st.encode(name, nil))
}

// sweep prunes every stored domain to the retention cutoff and deletes the
// domains left empty.
func (s *Store) sweep(tx *bolt.Tx, cutoff uint32) error {
	domains := tx.Bucket(domainsBucket)
	var emptied []string
	updated := make(map[string][]byte)

	err := domains.ForEach(func(key, data []byte) error {
		st, err := decodeState(string(key), data)
		if err != nil {
			// Damaged records are left for verify to report.
			return nil
		}
		if len(st.hours) > 0 && st.hours[0].hour >= cutoff {
			return nil
		}
		st.prune(cutoff)
		if len(st.hours) == 0 {
			emptied = append(emptied, string(key))
		} else {
			updated[string(key)] = st.encode(string(key), nil)
		}
		return nil
	})
	if err != nil {
		return err
	}

	// A bucket must not change while ForEach walks it.
	for name, data := range updated {
		if err := domains.Put([]byte(name), data); err != nil {
			return err
		}
	}
	for _, name := range emptied {
		if err := domains.Delete([]byte(name)); err != nil {
			return err
		}
	}
	return deleteAllSketchesBefore(tx, cutoff)
}

// addHours merges buffered hour spans at or after cutoff into st.hours.
func (st *domainState) addHours(hours map[uint32]*hourSpan, cutoff uint32) {
	var added []hourSpan
	for hour, span := range hours {
		if hour < cutoff {
			continue
		}
		i, found := slices.BinarySearchFunc(st.hours, hour, func(h hourSpan, target uint32) int {
			return cmp.Compare(h.hour, target)
		})
		if found {
			st.hours[i].first = min(st.hours[i].first, span.first)
			st.hours[i].last = max(st.hours[i].last, span.last)
			continue
		}
		added = append(added, *span)
	}

	// New hours go in after the search loop, which needs sorted hours.
	if len(added) > 0 {
		st.hours = append(st.hours, added...)
		slices.SortFunc(st.hours, func(a, b hourSpan) int { return cmp.Compare(a.hour, b.hour) })
	}
}

// addMachines merges buffered (machine, hour) pairs at or after cutoff into
// the runs of an exact-mode record.
func (st *domainState) addMachines(pairs map[pendingPair]struct{}, cutoff uint32) {
	hoursByMachine := make(map[uint64][]uint32)
	for pair := range pairs {
		if pair.hour >= cutoff {
			hoursByMachine[pair.machine] = append(hoursByMachine[pair.machine], pair.hour)
		}
	}

	var added []machineRuns
	for hash, hours := range hoursByMachine {
		slices.Sort(hours)
		runs := runsOf(hours)
		i, found := st.findMachine(hash)
		if found {
			st.machines[i].runs = mergeRuns(st.machines[i].runs, runs)
			continue
		}
		added = append(added, machineRuns{hash: hash, runs: runs})
	}
	if len(added) == 0 {
		return
	}

	// Merge the sorted new machines into the sorted old ones in one pass,
	// because a large domain gains a few machines at each flush.
	slices.SortFunc(added, func(a, b machineRuns) int { return cmp.Compare(a.hash, b.hash) })
	merged := make([]machineRuns, 0, len(st.machines)+len(added))
	old := st.machines
	for len(old) > 0 && len(added) > 0 {
		if old[0].hash < added[0].hash {
			merged = append(merged, old[0])
			old = old[1:]
		} else {
			merged = append(merged, added[0])
			added = added[1:]
		}
	}
	merged = append(merged, old...)
	st.machines = append(merged, added...)
}

// prune drops everything before cutoff.
func (st *domainState) prune(cutoff uint32) {
	st.hours = slices.DeleteFunc(st.hours, func(h hourSpan) bool { return h.hour < cutoff })

	kept := st.machines[:0]
	for _, m := range st.machines {
		if m.runs[0].start >= cutoff {
			kept = append(kept, m)
			continue
		}
		var runs []hourRun
		for _, r := range m.runs {
			if r.end >= cutoff {
				r.start = max(r.start, cutoff)
				runs = append(runs, r)
			}
		}
		if len(runs) > 0 {
			m.runs = runs
			kept = append(kept, m)
		}
	}
	st.machines = kept
}

// runsOf turns sorted, possibly repeated hours into merged runs.
func runsOf(hours []uint32) []hourRun {
	var runs []hourRun
	for _, h := range hours {
		if n := len(runs); n > 0 && h <= runs[n-1].end+1 {
			runs[n-1].end = max(runs[n-1].end, h)
			continue
		}
		runs = append(runs, hourRun{start: h, end: h})
	}
	return runs
}

// mergeRuns merges two sorted run lists, joining overlapping and adjacent
// runs.
func mergeRuns(a, b []hourRun) []hourRun {
	all := make([]hourRun, 0, len(a)+len(b))
	all = append(all, a...)
	all = append(all, b...)
	slices.SortFunc(all, func(x, y hourRun) int { return cmp.Compare(x.start, y.start) })

	merged := all[:0]
	for _, r := range all {
		if n := len(merged); n > 0 && r.start <= merged[n-1].end+1 {
			merged[n-1].end = max(merged[n-1].end, r.end)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}
