package domainstats

import (
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	boltErrors "go.etcd.io/bbolt/errors"
)

// Defaults applied to zero Options fields.
const (
	DefaultRetention        = 30 * 24 * time.Hour
	DefaultFlushInterval    = time.Second
	DefaultMaxBufferedPairs = 250_000
	DefaultLockTimeout      = 5 * time.Second
	DefaultExactLimit       = 16_384
	DefaultSketchPrecision  = 14
)

// Options configures a Store. A nil *Options, or a zero field, takes the
// default given on that field.
type Options struct {
	// Now is the clock that windows end at. If nil, defaults to time.Now.
	Now func() time.Time

	// Retention is how far back from the newest recorded event data is
	// kept; it is rounded up to whole hours. Measuring it from the newest
	// event rather than the wall clock keeps replayed old logs. It is also
	// the longest window StatsLookBack accepts. The file stores it, so a
	// later Open with zero Retention keeps the file's; a non-zero value
	// replaces it. If zero for a new file, defaults to 30 days.
	Retention time.Duration

	// FlushInterval is how often the background flush commits buffered
	// events. If zero, defaults to 1 second. A negative value turns the
	// background flush off, so events are committed only by Flush, Close
	// and a full buffer.
	FlushInterval time.Duration

	// MaxBufferedPairs bounds the write buffer, counted in distinct
	// (domain, machine, hour) and (domain, hour) entries. Reaching it
	// triggers an early flush, and at twice the bound Record flushes
	// before it returns. If zero, defaults to 250,000. An entry takes
	// roughly 100 to 400 bytes: a burst of new domains, the costliest
	// case, peaked at about 160 MB of heap with a bound of 100,000,
	// counting the batch being flushed.
	MaxBufferedPairs int

	// LockTimeout is how long Open waits for another process to release
	// the file. If zero, defaults to 5 seconds.
	LockTimeout time.Duration

	// ExactLimit is the number of distinct machines per domain, within
	// the retention, up to which counts are exact. Above it the domain
	// switches to hourly HyperLogLog sketches for good. If zero, defaults
	// to 16,384.
	ExactLimit int

	// SketchPrecision is the HyperLogLog precision p, from 4 to 18, of
	// sketch-mode domains: 2^p registers and a standard error of about
	// 1.04/sqrt(2^p), 0.8% at the default of 14. The file stores the
	// precision it was created with and keeps it, because sketches of
	// different precisions cannot be merged, so the value matters only
	// for a new file. If zero, defaults to 14.
	SketchPrecision uint8

	// OnFlushError, if set, is called with the error of each failed
	// background flush. The events stay buffered for the next flush.
	OnFlushError func(error)

	// ReadOnly opens an existing file for reading only: Stats, Checkpoint
	// and Verify work, while Record, SetCheckpoint and Flush return
	// ErrReadOnly. Nothing is written to the file, and other read-only
	// opens may share it, but not a process that writes. A file that a
	// process was killed while creating reads as a store without events.
	ReadOnly bool
}

// Store records domain events in a bbolt file and computes their statistics.
// A Store is safe for concurrent use by multiple goroutines.
type Store struct {
	db   *bolt.DB
	path string

	now             func() time.Time
	retentionHours  uint32
	exactLimit      int
	precision       uint8
	maxBuffered     int
	onFlushError    func(error)
	flushInterval   time.Duration
	shardSeed       maphash.Seed
	shards          [shardCount]bufferShard
	closed          atomic.Bool
	flushRequested  chan struct{}
	stopFlusher     chan struct{}
	flusherFinished chan struct{}

	readOnly bool

	// blank is set for a read-only open of a file that a process stopped
	// while creating: it is empty, or bbolt wrote its first pages but no
	// bucket was committed. Such a store holds no events, and db is nil.
	blank bool

	// flushMu serializes flushes, Verify and the end of Close.
	flushMu sync.Mutex
	// dbClosed is set, under flushMu, once Close has closed the file.
	dbClosed bool

	// pendingMu guards inflight, checkpoints and recorders.
	pendingMu sync.RWMutex
	// recorders are every Recorder of the store; flushes drain them too.
	recorders []*Recorder

	// buffered counts the entries in every write buffer.
	buffered atomic.Int64
	// inflight is the buffer a running flush is committing. Stats reads it
	// so that events stay visible between leaving the shards and landing
	// in the file.
	inflight map[string]*pendingDomain
	// checkpoints are set but not yet committed.
	checkpoints map[string][]byte
	// inflightCheckpoints are the checkpoints a running flush commits.
	inflightCheckpoints map[string][]byte

	// storedNewest is the newest event committed to the file, Unix ms, or
	// -1 for an empty store.
	storedNewest atomic.Int64

	cache sketchCache
}

// Names of the buckets and meta keys in the bbolt file.
var (
	domainsBucket     = []byte("domains")
	sketchesBucket    = []byte("sketches")
	checkpointsBucket = []byte("checkpoints")
	metaBucket        = []byte("meta")

	formatKey    = []byte("format")
	newestKey    = []byte("newest")
	retentionKey = []byte("retention")
	precisionKey = []byte("precision")
	sweptKey     = []byte("swept")
)

// fileFormat is the version of the file layout, stored under the format
// key of the meta bucket.
const fileFormat = 1

// Open opens the store file at path, creating it if it does not exist.
// A nil opts takes the defaults. A file held open by another process makes
// Open wait up to Options.LockTimeout and then fail.
func Open(path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	s := &Store{
		path:            path,
		now:             opts.Now,
		exactLimit:      opts.ExactLimit,
		precision:       opts.SketchPrecision,
		onFlushError:    opts.OnFlushError,
		flushInterval:   opts.FlushInterval,
		shardSeed:       maphash.MakeSeed(),
		flushRequested:  make(chan struct{}, 1),
		stopFlusher:     make(chan struct{}),
		flusherFinished: make(chan struct{}),
		checkpoints:     make(map[string][]byte),
	}
	if s.now == nil {
		s.now = time.Now
	}

	retention := opts.Retention
	if retention < 0 {
		return nil, fmt.Errorf("domainstats: invalid retention %s: must be positive", retention)
	}
	retentionHours := (retention + time.Hour - 1) / time.Hour
	if retentionHours > 1<<31 {
		return nil, fmt.Errorf("domainstats: invalid retention %s: too long", retention)
	}
	s.retentionHours = uint32(retentionHours)

	if s.exactLimit == 0 {
		s.exactLimit = DefaultExactLimit
	}
	if s.exactLimit < 0 {
		return nil, fmt.Errorf("domainstats: invalid exact limit %d: must be positive", s.exactLimit)
	}
	if s.precision == 0 {
		s.precision = DefaultSketchPrecision
	}
	if s.precision < 4 || s.precision > 18 {
		return nil, fmt.Errorf("domainstats: invalid sketch precision %d: must be from 4 to 18", s.precision)
	}
	if s.flushInterval == 0 {
		s.flushInterval = DefaultFlushInterval
	}

	maxBuffered := opts.MaxBufferedPairs
	if maxBuffered == 0 {
		maxBuffered = DefaultMaxBufferedPairs
	}
	if maxBuffered < 0 {
		return nil, fmt.Errorf("domainstats: invalid buffer limit %d: must be positive", maxBuffered)
	}
	s.maxBuffered = maxBuffered

	lockTimeout := opts.LockTimeout
	if lockTimeout == 0 {
		lockTimeout = DefaultLockTimeout
	}

	for i := range s.shards {
		s.shards[i].init()
	}

	s.readOnly = opts.ReadOnly
	if err := s.openFile(lockTimeout); err != nil {
		return nil, err
	}

	if s.flushInterval > 0 && !s.readOnly {
		go s.runFlusher()
	} else {
		close(s.flusherFinished)
	}
	return s, nil
}

// openFile opens the bbolt file and checks its layout. bbolt panics on
// some damaged pages; openFile returns that as ErrCorrupt instead.
func (s *Store) openFile(lockTimeout time.Duration) (err error) {
	defer guardFaults()()
	defer recoverDamage(&err, s.path, "", "")

	// bbolt writes the first pages of an empty file, which a read-only
	// open cannot do.
	if s.readOnly {
		if info, err := os.Stat(s.path); err == nil && info.Size() == 0 {
			s.openBlank()
			return nil
		}
	}

	// The freelist is kept in the file (bbolt's default), because without
	// it Open walks every page, and on a damaged page that walk crashes
	// the process from a goroutine nothing can recover.
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{
		Timeout:      lockTimeout,
		FreelistType: bolt.FreelistMapType,
		ReadOnly:     s.readOnly,
	})
	if errors.Is(err, boltErrors.ErrTimeout) {
		return fmt.Errorf("%w: open %s: waited %s", ErrLocked, s.path, lockTimeout)
	}
	if err != nil {
		return fmt.Errorf("domainstats: open %s: %w", s.path, err)
	}
	s.db = db

	// Create the buckets on first use and check the layout of an
	// existing file before anything writes to it.
	if s.readOnly {
		err = db.View(s.readFileSettings)
	} else {
		err = db.Update(s.initFile)
	}
	if err != nil {
		db.Close()
		return fmt.Errorf("domainstats: open %s: %w", s.path, err)
	}
	if s.blank {
		s.db = nil
		return db.Close()
	}
	return nil
}

// openBlank sets up a read-only store for a file without a layout: no
// events, and the default retention unless Options set one.
func (s *Store) openBlank() {
	s.blank = true
	if s.retentionHours == 0 {
		s.retentionHours = uint32(DefaultRetention / time.Hour)
	}
	s.storedNewest.Store(-1)
}

// recoverDamage turns a panic of bbolt on a damaged file into an error
// wrapping ErrCorrupt that names the file and, when reading one, the
// domain or checkpoint key: kind is "domain" or "checkpoint", or empty.
// Callers defer it, after guardFaults.
func recoverDamage(err *error, path, kind, name string) {
	if r := recover(); r != nil {
		reading := ""
		if kind != "" {
			reading = fmt.Sprintf(" while reading %s %q", kind, name)
		}
		*err = fmt.Errorf("%w: file %s: damaged pages%s: %v", ErrCorrupt, path, reading, r)
	}
}

// guardFaults makes a memory fault in this goroutine, such as bbolt
// reading past its map of a damaged file, panic instead of crashing the
// process, so that recoverDamage can report it. It returns the function
// that restores the previous setting; callers defer it.
func guardFaults() func() {
	previous := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(previous) }
}

// readFileSettings reads the settings that initFile writes, for a
// read-only open.
func (s *Store) readFileSettings(tx *bolt.Tx) error {
	if first, _ := tx.Cursor().First(); first == nil {
		s.openBlank()
		return nil
	}

	for _, name := range [][]byte{domainsBucket, sketchesBucket, checkpointsBucket, metaBucket} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %q is missing; is this a domainstats file?", ErrCorrupt, name)
		}
	}
	return s.applyFileSettings(tx.Bucket(metaBucket), false)
}

func (s *Store) initFile(tx *bolt.Tx) error {
	for _, name := range [][]byte{domainsBucket, sketchesBucket, checkpointsBucket, metaBucket} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return s.applyFileSettings(tx.Bucket(metaBucket), true)
}

// applyFileSettings checks the file format and takes the precision,
// retention and newest event stored in meta. With write set, it stores
// what a new file lacks and a changed retention.
func (s *Store) applyFileSettings(meta *bolt.Bucket, write bool) error {
	put := func(key, value []byte) error {
		if !write {
			return nil
		}
		return meta.Put(key, value)
	}

	format := meta.Get(formatKey)
	switch {
	case format == nil && !write:
		return fmt.Errorf("%w: meta key %q is missing; is this a domainstats file?", ErrCorrupt, formatKey)
	case format == nil:
		if err := put(formatKey, []byte{fileFormat}); err != nil {
			return err
		}
	case len(format) != 1 || format[0] != fileFormat:
		return fmt.Errorf("%w: file format %v is not %d; this file was written by another version", ErrCorrupt, format, fileFormat)
	}

	// The precision is fixed when the first domain switches to sketches,
	// because sketches of different precisions cannot be merged.
	if stored := meta.Get(precisionKey); len(stored) == 1 {
		s.precision = stored[0]
	} else if err := put(precisionKey, []byte{s.precision}); err != nil {
		return err
	}

	// The retention of a file outlives the process that set it, so that
	// a server opened without options does not prune what an ingest with
	// a longer retention kept.
	stored, err := readInt64(meta.Get(retentionKey), 0)
	if err != nil || stored < 0 || stored > 1<<31 {
		return fmt.Errorf("%w: meta key %q: %v", ErrCorrupt, retentionKey, meta.Get(retentionKey))
	}
	switch {
	case s.retentionHours == 0 && stored > 0:
		s.retentionHours = uint32(stored)
	case s.retentionHours == 0:
		s.retentionHours = uint32(DefaultRetention / time.Hour)
	}
	if int64(s.retentionHours) != stored {
		if err := put(retentionKey, appendInt64(nil, int64(s.retentionHours))); err != nil {
			return err
		}
	}

	newest, err := readInt64(meta.Get(newestKey), -1)
	if err != nil {
		return fmt.Errorf("%w: meta key %q: %v", ErrCorrupt, newestKey, err)
	}
	s.storedNewest.Store(newest)
	return nil
}

// runFlusher flushes every FlushInterval and whenever the buffer fills up,
// until Close.
func (s *Store) runFlusher() {
	defer close(s.flusherFinished)
	ticker := time.NewTicker(s.flushInterval)
	defer ticker.Stop()

	for {
		select {
		case <-s.stopFlusher:
			return
		case <-ticker.C:
		case <-s.flushRequested:
		}
		if err := s.Flush(); err != nil && !errors.Is(err, ErrClosed) && s.onFlushError != nil {
			s.onFlushError(err)
		}
	}
}

// requestFlush wakes the background flusher without waiting for it. With
// the background flush off, the hard limit in Record bounds the buffer.
func (s *Store) requestFlush() {
	select {
	case s.flushRequested <- struct{}{}:
	default:
	}
}

// Close flushes buffered events, then releases the file. Calls after Close
// return ErrClosed. Record calls racing Close either land in the final
// flush or return ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}

	// Stop new events before the final flush so that none is accepted
	// and then left behind.
	s.pendingMu.RLock()
	s.eachBuffer(func(buffer *bufferShard) {
		buffer.mu.Lock()
		buffer.closed = true
		buffer.mu.Unlock()
	})
	s.pendingMu.RUnlock()
	close(s.stopFlusher)
	<-s.flusherFinished

	// Hold flushMu through db.Close, so that a Flush or Verify racing
	// Close returns ErrClosed rather than reaching a closed file.
	s.flushMu.Lock()
	flushErr := s.flushLocked()
	var closeErr error
	if !s.blank {
		closeErr = s.db.Close()
	}
	s.dbClosed = true
	s.flushMu.Unlock()
	if flushErr != nil {
		return fmt.Errorf("domainstats: close %s: final flush failed, buffered events are lost: %w", s.path, flushErr)
	}
	if closeErr != nil {
		return fmt.Errorf("domainstats: close %s: %w", s.path, closeErr)
	}
	return nil
}

// Path returns the path of the store file.
func (s *Store) Path() string { return s.path }

// Retention returns how far back from the newest event data is kept, which
// is also the longest window StatsLookBack accepts.
func (s *Store) Retention() time.Duration {
	return time.Duration(s.retentionHours) * time.Hour
}

// Newest returns the time of the newest event recorded, buffered or
// committed, and false when the store holds no event.
func (s *Store) Newest() (time.Time, bool) {
	newest := s.newestMillis()
	if newest < 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(newest).UTC(), true
}

func (s *Store) newestMillis() int64 {
	newest := s.storedNewest.Load()
	s.pendingMu.RLock()
	s.eachBuffer(func(buffer *bufferShard) {
		newest = max(newest, buffer.newest.Load())
	})
	s.pendingMu.RUnlock()
	return newest
}

// eachBuffer calls visit for every write buffer: the shards, then each
// Recorder's. The caller holds pendingMu.
func (s *Store) eachBuffer(visit func(*bufferShard)) {
	for i := range s.shards {
		visit(&s.shards[i])
	}
	for _, r := range s.recorders {
		visit(&r.buffer)
	}
}

// cutoffHour returns the oldest hour the retention keeps when the newest
// event is at newestMillis. It keeps one hour more than the retention, so
// that a window as long as the retention, rounded outward to whole hours,
// is complete.
func (s *Store) cutoffHour(newestMillis int64) uint32 {
	if newestMillis < 0 {
		return 0
	}
	newestHour := uint32(newestMillis / millisPerHour)
	if newestHour < s.retentionHours {
		return 0
	}
	return newestHour - s.retentionHours
}

// SetCheckpoint stores value under key. The value is committed by the same
// flush, in the same transaction, as every event recorded before the call,
// so an ingest that stores its input offset this way resumes exactly after
// a crash. An empty value deletes the key.
func (s *Store) SetCheckpoint(key string, value []byte) error {
	if key == "" {
		return errors.New("domainstats: empty checkpoint key")
	}
	if s.readOnly {
		return ErrReadOnly
	}

	// Close sets closed before its final flush takes the checkpoints under
	// pendingMu, so checking it under the same lock never lets a
	// checkpoint in after that flush.
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.checkpoints[key] = append([]byte{}, value...)
	return nil
}

// Checkpoint returns the value last set under key, including one not yet
// flushed, or nil when there is none.
func (s *Store) Checkpoint(key string) (_ []byte, err error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}

	s.pendingMu.RLock()
	value, ok := s.checkpoints[key]
	if !ok {
		value, ok = s.inflightCheckpoints[key]
	}
	s.pendingMu.RUnlock()
	if ok {
		if len(value) == 0 {
			return nil, nil
		}
		return append([]byte{}, value...), nil
	}

	if s.blank {
		return nil, nil
	}
	defer guardFaults()()
	defer recoverDamage(&err, s.path, "checkpoint", key)
	err = s.db.View(func(tx *bolt.Tx) error {
		if stored := tx.Bucket(checkpointsBucket).Get([]byte(key)); stored != nil {
			value = append([]byte{}, stored...)
		}
		return nil
	})
	if err != nil {
		return nil, s.viewError(err)
	}
	return value, nil
}

// viewError maps the error of a read transaction on a closed database to
// ErrClosed.
func (s *Store) viewError(err error) error {
	if errors.Is(err, boltErrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// readInt64 decodes an 8-byte big-endian value, or returns absent for nil.
func readInt64(data []byte, absent int64) (int64, error) {
	if data == nil {
		return absent, nil
	}
	if len(data) != 8 {
		return 0, fmt.Errorf("value is %d bytes long, expected 8", len(data))
	}
	var v uint64
	for _, b := range data {
		v = v<<8 | uint64(b)
	}
	return int64(v), nil
}

func appendInt64(dst []byte, v int64) []byte {
	u := uint64(v)
	return append(dst, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}
