package domainstats

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The differential test below drives a real Store and an exact model of the
// specification with the same random operations, and compares every Stats
// result. The model keeps every accepted event and computes each window
// from scratch, so it shares no code with the store.

// modelDomain is one domain of the differential test: its normalized name
// and spellings that must normalize to it.
type modelDomain struct {
	canonical string
	spellings []string
}

var modelDomains = []modelDomain{
	{"example.com", []string{"example.com", "Example.COM", "example.com.", " EXAMPLE.com. ", "\texample.com\n"}},
	{"xn--bcher-kva.de", []string{"bücher.de", "BÜCHER.DE.", "xn--bcher-kva.de", "XN--BCHER-KVA.de.", " Bücher.de"}},
	{"_ldap._tcp.dc.corp", []string{"_ldap._tcp.dc.corp", "_LDAP._TCP.DC.CORP.", " _Ldap._tcp.dc.corp "}},
	{"wpad", []string{"wpad", "WPAD.", " Wpad "}},
	{"xn--mnchen-3ya.example", []string{"münchen.example", "MÜNCHEN.EXAMPLE.", "xn--mnchen-3ya.example", "München.Example"}},
	{"xn--wgv71a.jp", []string{"日本.jp", "日本.JP.", "xn--wgv71a.jp", "XN--WGV71A.JP"}},
	{"r3---sn-abc.googlevideo.com", []string{"r3---sn-abc.googlevideo.com", "R3---SN-ABC.GoogleVideo.com."}},
	{"hot.example.net", []string{"hot.example.net", "HOT.example.NET.", " hot.Example.net"}},
}

// modelAbsentDomain is queried but never recorded.
const modelAbsentDomain = "absent.example.org"

// modelZones are the time zones events are recorded in, including offsets
// that are not whole hours.
var modelZones = []*time.Location{
	time.UTC,
	time.FixedZone("NPT", 5*3600+45*60),
	time.FixedZone("MART", -(9*3600 + 30*60)),
	time.FixedZone("LINT", 14*3600),
	time.FixedZone("BIT", -12*3600),
	time.FixedZone("IST", 5*3600+30*60),
}

// modelEvent is one accepted event, with the machine ID as the model
// compares it.
type modelEvent struct {
	machine string
	millis  int64
}

// modelStore is the exact model of a Store.
type modelStore struct {
	retentionHours int64
	exactLimit     int
	newest         int64 // Unix ms of the newest accepted event, or -1
	events         map[string][]modelEvent

	// mayBeSketched marks the domains that had more than exactLimit
	// distinct machines within the retention at some point, so the store
	// may count them with sketches.
	mayBeSketched map[string]bool
}

// modelMachine is the machine ID as the specification compares it.
func modelMachine(id string) string {
	return strings.ToLower(strings.TrimSpace(id))
}

func (m *modelStore) cutoffHour() int64 {
	if m.newest < 0 {
		return 0
	}
	return max(m.newest/millisPerHour-m.retentionHours, 0)
}

func (m *modelStore) record(domain, machine string, at time.Time) {
	millis := at.UnixMilli()
	m.events[domain] = append(m.events[domain], modelEvent{machine: modelMachine(machine), millis: millis})
	m.newest = max(m.newest, millis)

	// A flush at this moment would see every machine of the domain
	// within the retention.
	machines := make(map[string]bool)
	cutoff := m.cutoffHour()
	for _, e := range m.events[domain] {
		if e.millis/millisPerHour >= cutoff {
			machines[e.machine] = true
		}
	}
	if len(machines) > m.exactLimit {
		m.mayBeSketched[domain] = true
	}
}

// stats computes the expected result of StatsLookBack from the
// specification. The error is nil, ErrInvalidLookBack or ErrNotFound.
func (m *modelStore) stats(domain string, now time.Time, lookBack time.Duration) (Stats, error) {
	if lookBack <= 0 || lookBack > time.Duration(m.retentionHours)*time.Hour {
		return Stats{}, ErrInvalidLookBack
	}

	// The window runs from the start of the hour of now - lookBack to the
	// end of the hour of now, in UTC, and never before the cutoff.
	// Unix seconds round down, and the times here are after 1970, so
	// integer division rounds down to the hour.
	floorHour := func(t time.Time) int64 { return t.Unix() / 3600 }
	start := floorHour(now.Add(-lookBack))
	end := floorHour(now)
	start = max(start, m.cutoffHour())

	machines := make(map[string]bool)
	got := Stats{Host: domain}
	for _, e := range m.events[domain] {
		hour := e.millis / millisPerHour
		if hour < start || hour > end {
			continue
		}
		at := time.UnixMilli(e.millis).UTC()
		if len(machines) == 0 || at.Before(got.OrgFirstSeen) {
			got.OrgFirstSeen = at
		}
		if len(machines) == 0 || at.After(got.OrgLastSeen) {
			got.OrgLastSeen = at
		}
		machines[e.machine] = true
	}
	if len(machines) == 0 {
		return Stats{}, ErrNotFound
	}
	got.OrgPrevalence = int64(len(machines))
	return got, nil
}

// modelRun is one randomized run of the differential test.
type modelRun struct {
	t     *testing.T
	rng   *rand.Rand
	path  string
	opts  Options
	store *Store
	model *modelStore
	now   time.Time
	base  time.Time

	// machinesPerDomain is the size of each domain's machine pool.
	machinesPerDomain []int
	// replay keeps accepted events so that some are recorded again.
	replay []modelReplay
	checks int
}

type modelReplay struct {
	domain  int
	machine string
	at      time.Time
}

// modelSeedCount returns how many seeds TestModelDifferential runs:
// DOMAINSTATS_MODEL_SEEDS if set, else a count that keeps the test short.
func modelSeedCount(t *testing.T) int {
	if value := os.Getenv("DOMAINSTATS_MODEL_SEEDS"); value != "" {
		n, err := strconv.Atoi(value)
		if err != nil || n <= 0 {
			t.Fatalf("DOMAINSTATS_MODEL_SEEDS=%q is not a positive number", value)
		}
		return n
	}
	if testing.Short() {
		return 5
	}
	return 30
}

// TestModelDifferential compares the store with the exact model on random
// operation sequences. DOMAINSTATS_MODEL_SEEDS sets the number of seeds and
// DOMAINSTATS_MODEL_SEED replays one seed.
func TestModelDifferential(t *testing.T) {
	seeds := make([]uint64, 0)
	if value := os.Getenv("DOMAINSTATS_MODEL_SEED"); value != "" {
		seed, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			t.Fatalf("DOMAINSTATS_MODEL_SEED=%q is not a number", value)
		}
		seeds = append(seeds, seed)
	} else {
		first := uint64(time.Now().UnixNano())
		for i := range modelSeedCount(t) {
			seeds = append(seeds, first+uint64(i))
		}
	}

	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("replay with DOMAINSTATS_MODEL_SEED=%d", seed)
			runModel(t, seed, 1200)
		})
	}
}

func runModel(t *testing.T, seed uint64, operations int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	run := &modelRun{
		t:    t,
		rng:  rng,
		path: filepath.Join(t.TempDir(), "model.db"),
		base: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(10_000)) * time.Hour),
	}
	retentionHours := int64(48 + rng.IntN(153))
	exactLimit := 5 + rng.IntN(46)
	run.model = &modelStore{
		retentionHours: retentionHours,
		exactLimit:     exactLimit,
		newest:         -1,
		events:         make(map[string][]modelEvent),
		mayBeSketched:  make(map[string]bool),
	}
	run.now = run.base.Add(time.Duration(rng.IntN(40)) * time.Hour)
	run.opts = Options{
		Now:           func() time.Time { return run.now },
		Retention:     time.Duration(retentionHours) * time.Hour,
		FlushInterval: -1,
		ExactLimit:    exactLimit,
	}
	if rng.IntN(3) == 0 {
		// A retention that is not whole hours is rounded up.
		run.opts.Retention -= time.Duration(1 + rng.IntN(int(time.Hour-1)))
	}
	if rng.IntN(4) == 0 {
		// A background flush at any moment must change no result.
		run.opts.FlushInterval = time.Millisecond
	}
	if rng.IntN(3) == 0 {
		// At these counts the sketches stay sparse, which counts nearly
		// exactly at any precision.
		run.opts.SketchPrecision = uint8(10 + rng.IntN(9))
	}
	if rng.IntN(3) == 0 {
		// A small buffer makes Record flush by itself.
		run.opts.MaxBufferedPairs = 64 + rng.IntN(1000)
	}
	pools := []int{2, 4, exactLimit - 1, exactLimit, exactLimit + 1, 2 * exactLimit, 3*exactLimit + 20}
	for range modelDomains {
		run.machinesPerDomain = append(run.machinesPerDomain, pools[rng.IntN(len(pools))])
	}
	run.machinesPerDomain[len(modelDomains)-1] = 3*exactLimit + 20
	t.Logf("retention %dh (option %s), exact limit %d, buffer %d, flush interval %s, precision %d, machines per domain %v",
		retentionHours, run.opts.Retention, exactLimit, run.opts.MaxBufferedPairs, run.opts.FlushInterval,
		run.opts.SketchPrecision, run.machinesPerDomain)

	run.open(run.opts.Retention)
	defer func() {
		if run.store != nil {
			run.store.Close()
		}
	}()

	for range operations {
		if t.Failed() {
			return
		}
		switch n := rng.IntN(100); {
		case n < 60:
			run.record()
		case n < 85:
			run.check(run.randomDomain(), run.randomLookBack())
		case n < 90:
			run.flush()
		case n < 92:
			run.reopen()
		case n < 97:
			run.advanceClock()
		default:
			run.recordRejected()
		}
	}

	// Check every domain on the buffered events, after a flush and after
	// a reopen, because each reads a different code path. Clocks in the
	// hours before the newest event put the retention cutoff inside the
	// window.
	for _, step := range []func(){func() {}, run.flush, run.reopen} {
		step()
		for _, hoursBefore := range []int64{-3, 0, 1, 2, 7} {
			if run.model.newest >= 0 {
				run.now = time.UnixMilli(run.model.newest - hoursBefore*millisPerHour).UTC()
			}
			for i := range modelDomains {
				for _, lookBack := range []time.Duration{time.Millisecond, time.Hour, 25*time.Hour + 30*time.Minute, run.store.Retention()} {
					run.check(i, lookBack)
				}
			}
		}
	}
	t.Logf("%d checks, %d events, newest %s, %d domains in sketch mode, model %v",
		run.checks, len(run.replay), time.UnixMilli(run.model.newest).UTC(), run.sketchModeDomains(), run.model.mayBeSketched)
}

// sketchModeDomains counts the stored records in sketch mode, and checks
// that no domain the model keeps exact is among them.
func (r *modelRun) sketchModeDomains() int {
	r.t.Helper()
	count := 0
	err := r.store.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(domainsBucket).ForEach(func(name, data []byte) error {
			if len(data) < 2 || data[1] != modeSketch {
				return nil
			}
			count++
			if !r.model.mayBeSketched[string(name)] {
				r.t.Errorf("domain %q is in sketch mode, but never had more than %d machines within the retention",
					name, r.model.exactLimit)
			}
			return nil
		})
	})
	if err != nil {
		r.t.Fatalf("reading the domains bucket failed: %v", err)
	}
	return count
}

func (r *modelRun) open(retention time.Duration) {
	r.t.Helper()
	opts := r.opts
	opts.Retention = retention
	s, err := Open(r.path, &opts)
	if err != nil {
		r.t.Fatalf("Open(%q) failed: %v", r.path, err)
	}
	r.store = s
}

func (r *modelRun) reopen() {
	r.t.Helper()
	if err := r.store.Close(); err != nil {
		r.t.Fatalf("Close failed: %v", err)
	}
	if _, err := r.store.Stats("example.com"); !errors.Is(err, ErrClosed) {
		r.t.Errorf("Stats after Close = %v, want ErrClosed", err)
	}
	if err := r.store.Record("example.com", "ws-1", r.now); !errors.Is(err, ErrClosed) {
		r.t.Errorf("Record after Close = %v, want ErrClosed", err)
	}

	// A zero retention keeps the one stored in the file.
	retention := r.opts.Retention
	if r.rng.IntN(2) == 0 {
		retention = 0
	}
	r.open(retention)
	if got, want := r.store.Retention(), time.Duration(r.model.retentionHours)*time.Hour; got != want {
		r.t.Errorf("Retention after reopening with %s = %s, want %s", retention, got, want)
	}
}

func (r *modelRun) flush() {
	r.t.Helper()
	if err := r.store.Flush(); err != nil {
		r.t.Fatalf("Flush failed: %v", err)
	}
}

// advanceClock moves the clock forward, and sometimes back to up to 30 hours
// before the newest event, which leaves newer events outside the window.
func (r *modelRun) advanceClock() {
	switch n := r.rng.IntN(10); {
	case n < 6:
		r.now = r.now.Add(time.Duration(r.rng.Int64N(int64(5 * time.Hour))))
	case n < 8 && r.model.newest >= 0:
		r.now = time.UnixMilli(r.model.newest).Add(-time.Duration(r.rng.Int64N(int64(30 * time.Hour))))
	default:
		// Land on an hour boundary, where rounding mistakes show.
		r.now = r.now.Add(time.Duration(r.rng.IntN(5)) * time.Hour).Truncate(time.Hour)
		r.now = r.now.Add(time.Duration(r.rng.IntN(3)) * time.Millisecond)
	}
	if r.rng.IntN(4) == 0 {
		r.now = r.now.Add(time.Duration(r.rng.IntN(int(time.Millisecond))))
	}
	r.now = r.now.In(modelZones[r.rng.IntN(len(modelZones))])
}

func (r *modelRun) randomDomain() int {
	return r.rng.IntN(len(modelDomains) + 1)
}

func (r *modelRun) randomLookBack() time.Duration {
	retention := time.Duration(r.model.retentionHours) * time.Hour
	switch n := r.rng.IntN(20); {
	case n < 6:
		return time.Duration(1+r.rng.Int64N(r.model.retentionHours)) * time.Hour
	case n < 10:
		return time.Duration(1+r.rng.Int64N(int64(retention/time.Millisecond))) * time.Millisecond
	case n < 12:
		// Whole hours and a fraction of a millisecond.
		return time.Duration(r.rng.Int64N(r.model.retentionHours))*time.Hour + time.Duration(1+r.rng.IntN(int(time.Millisecond)-1))
	case n < 14:
		return retention
	case n < 15:
		return retention + time.Millisecond
	case n < 16:
		return 0
	case n < 17:
		return -time.Hour
	case n < 18:
		return DefaultLookBack
	default:
		return time.Duration(1+r.rng.IntN(90)) * time.Minute
	}
}

// eventTime picks a time around the clock: mostly in the hours before it,
// sometimes after it, in a random zone and with nanoseconds.
func (r *modelRun) eventTime() time.Time {
	offset := time.Duration(r.rng.Int64N(int64(200*time.Hour))) - 20*time.Hour
	at := r.now.Add(-offset)
	if r.rng.IntN(10) == 0 {
		// Near an hour boundary.
		at = at.Truncate(time.Hour).Add(time.Duration(r.rng.Int64N(int64(2*time.Millisecond))) - time.Millisecond)
	}
	return at.In(modelZones[r.rng.IntN(len(modelZones))])
}

// machineSpelling returns machine number n of domain, spelled in one of the
// ways that compare equal.
func (r *modelRun) machineSpelling(domain, n int) string {
	id := fmt.Sprintf("ws-%d-%03d", domain%3, n)
	switch r.rng.IntN(5) {
	case 0:
		return strings.ToUpper(id)
	case 1:
		return "  " + id + "\t"
	case 2:
		return " " + strings.ToUpper(id[:3]) + id[3:]
	}
	return id
}

func (r *modelRun) record() {
	r.t.Helper()
	if len(r.replay) > 0 && r.rng.IntN(8) == 0 {
		// The same event again, possibly spelled and zoned differently.
		e := r.replay[r.rng.IntN(len(r.replay))]
		r.recordOne(e.domain, e.machine, e.at.In(modelZones[r.rng.IntN(len(modelZones))]))
		return
	}
	// The last domain gets a third of the events, so that it usually
	// passes the exact limit and switches to sketches.
	domain := r.rng.IntN(len(modelDomains))
	if r.rng.IntN(3) == 0 {
		domain = len(modelDomains) - 1
	}
	machine := r.machineSpelling(domain, r.rng.IntN(r.machinesPerDomain[domain]))
	r.recordOne(domain, machine, r.eventTime())
}

func (r *modelRun) recordOne(domain int, machine string, at time.Time) {
	r.t.Helper()
	d := modelDomains[domain]
	spelling := d.spellings[r.rng.IntN(len(d.spellings))]
	if err := r.store.Record(spelling, machine, at); err != nil {
		r.t.Fatalf("Record(%q, %q, %s) failed: %v", spelling, machine, at, err)
	}
	r.model.record(d.canonical, machine, at)
	r.replay = append(r.replay, modelReplay{domain: domain, machine: machine, at: at})
}

// recordRejected records an invalid event, which must change nothing.
func (r *modelRun) recordRejected() {
	r.t.Helper()
	cases := []struct {
		domain, machine string
		at              time.Time
		want            error
	}{
		{"example..com", "ws-1", r.now, ErrInvalidDomain},
		{"example.com:443", "ws-1", r.now, ErrInvalidDomain},
		{"example.com", " \t", r.now, ErrInvalidMachine},
		{"example.com", "ws-1", time.Time{}, ErrInvalidTime},
		{"example.com", "ws-1", time.Unix(-1, 0), ErrInvalidTime},
	}
	c := cases[r.rng.IntN(len(cases))]
	if err := r.store.Record(c.domain, c.machine, c.at); !errors.Is(err, c.want) {
		r.t.Errorf("Record(%q, %q, %s) = %v, want an error wrapping %v", c.domain, c.machine, c.at, err, c.want)
	}
}

// check compares StatsLookBack of domain, an index into modelDomains or
// len(modelDomains) for the absent domain, with the model.
func (r *modelRun) check(domain int, lookBack time.Duration) {
	r.t.Helper()
	r.checks++
	name, spelling := modelAbsentDomain, strings.ToUpper(modelAbsentDomain)
	if domain < len(modelDomains) {
		d := modelDomains[domain]
		name, spelling = d.canonical, d.spellings[r.rng.IntN(len(d.spellings))]
	}

	want, wantErr := r.model.stats(name, r.now, lookBack)
	var got Stats
	var err error
	if lookBack == DefaultLookBack && r.rng.IntN(2) == 0 {
		got, err = r.store.Stats(spelling)
	} else {
		got, err = r.store.StatsLookBack(spelling, lookBack)
	}

	call := fmt.Sprintf("StatsLookBack(%q, %s) at %s (newest %s, cutoff hour %d)",
		spelling, lookBack, r.now.UTC().Format(time.RFC3339Nano),
		time.UnixMilli(r.model.newest).UTC().Format(time.RFC3339Nano), r.model.cutoffHour())
	if wantErr != nil || err != nil {
		if !errors.Is(err, wantErr) || wantErr == nil {
			r.t.Errorf("%s = %+v, %v; want %+v, %v", call, got, err, want, wantErr)
		}
		return
	}

	if got.Host != want.Host || !got.OrgFirstSeen.Equal(want.OrgFirstSeen) || !got.OrgLastSeen.Equal(want.OrgLastSeen) ||
		got.OrgFirstSeen.Location() != time.UTC || got.OrgLastSeen.Location() != time.UTC {
		r.t.Errorf("%s = %+v, want %+v", call, got, want)
		return
	}

	if !r.model.mayBeSketched[name] {
		if got.OrgPrevalence != want.OrgPrevalence {
			r.t.Errorf("%s prevalence = %d, want exactly %d (domain never above the exact limit %d)",
				call, got.OrgPrevalence, want.OrgPrevalence, r.model.exactLimit)
		}
		return
	}
	slack := 0.02*float64(want.OrgPrevalence) + 2
	if math.Abs(float64(got.OrgPrevalence-want.OrgPrevalence)) > slack {
		r.t.Errorf("%s prevalence = %d, want %d within %.1f (sketch mode)",
			call, got.OrgPrevalence, want.OrgPrevalence, slack)
	}
}

func TestBugLookBackSubMillisecond(t *testing.T) {
	// The window starts at the hour of Now - lookBack. With Now on an hour
	// boundary and a look-back one nanosecond over an hour, that is the
	// hour before, and an event in its last nanosecond is inside the exact
	// span.
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	s := openTestStore(t, &Options{Now: func() time.Time { return now }})
	at := time.Date(2024, 5, 1, 8, 59, 59, 999_999_999, time.UTC)
	mustRecord(t, s, "example.com", "ws-1", at)

	lookBack := time.Hour + time.Nanosecond
	if now.Add(-lookBack).After(at) {
		t.Fatalf("test setup: event %s is not inside [%s, %s]", at, now.Add(-lookBack), now)
	}
	got, err := s.StatsLookBack("example.com", lookBack)
	if err != nil {
		t.Fatalf("StatsLookBack(example.com, %s) with an event at %s failed: %v", lookBack, at, err)
	}
	if got.OrgPrevalence != 1 {
		t.Errorf("StatsLookBack(example.com, %s).OrgPrevalence = %d, want 1", lookBack, got.OrgPrevalence)
	}
}

func TestBugCheckpointDuringFlush(t *testing.T) {
	// Checkpoint returns the value last set, flushed or not, so it must
	// not fall back to the stored value while a flush commits a newer one.
	s := openTestStore(t, nil)
	for i := range 200 {
		mustRecord(t, s, fmt.Sprintf("d%d.example", i), "ws-1", testNow)
	}
	for round := range 50 {
		want := []byte(strconv.Itoa(round))
		if err := s.SetCheckpoint("offset", want); err != nil {
			t.Fatalf("SetCheckpoint failed: %v", err)
		}
		mustRecord(t, s, fmt.Sprintf("r%d.example", round), "ws-1", testNow)

		flushed := make(chan error)
		go func() { flushed <- s.Flush() }()
		for done := false; !done; {
			select {
			case err := <-flushed:
				if err != nil {
					t.Fatalf("Flush failed: %v", err)
				}
				done = true
			default:
			}
			got, err := s.Checkpoint("offset")
			if err != nil {
				t.Fatalf("Checkpoint failed: %v", err)
			}
			if string(got) != string(want) {
				t.Fatalf("round %d: Checkpoint(offset) = %q during a flush, want %q", round, got, want)
			}
		}
	}
}

func TestBugStatsRacesFailedFlush(t *testing.T) {
	// A flush that fails puts its events back into the write buffer while
	// Stats may still read them as the running flush's. Record then
	// writes to maps that Stats reads without the shard lock. The race
	// detector reports it, and without it the runtime may stop with
	// "concurrent map iteration and map write".
	s := openTestStore(t, nil)
	mustRecord(t, s, "damaged.example", "ws-1", testNow)
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush failed: %v", err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(domainsBucket).Put([]byte("damaged.example"), []byte("not a record"))
	})
	if err != nil {
		t.Fatalf("damaging the record failed: %v", err)
	}

	// A buffered event makes the first flush fail too.
	mustRecord(t, s, "damaged.example", "ws-2", testNow)

	var workers sync.WaitGroup
	stop := make(chan struct{})
	workers.Add(2)
	go func() {
		defer workers.Done()
		for i := range 20_000 {
			if err := s.Record("damaged.example", fmt.Sprintf("ws-%d", i%500), testNow.Add(-time.Duration(i%50)*time.Hour)); err != nil {
				t.Errorf("Record failed: %v", err)
				return
			}
		}
	}()
	go func() {
		defer workers.Done()
		for range 500 {
			if err := s.Flush(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Flush over a damaged record = %v, want ErrCorrupt", err)
				return
			}
		}
	}()
	go func() {
		workers.Wait()
		close(stop)
	}()

	for running := true; running; {
		select {
		case <-stop:
			running = false
		default:
		}
		if _, err := s.StatsLookBack("damaged.example", time.Hour); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Stats over a damaged record = %v, want ErrCorrupt", err)
			break
		}
	}
	<-stop
}

func TestModelNormalizeDomainEdges(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(label63+".", 3) + strings.Repeat("b", 61)
	// "ü" followed by 57 ASCII letters is 58 runes, whose punycode label
	// is "xn--" plus 57 letters, "-" and 3 more: 65 octets.
	longIDNLabel := "ü" + strings.Repeat("a", 57)

	tests := []struct {
		reason string
		input  string
		want   string // empty: the input is rejected
	}{
		{"fullwidth letters map to ASCII", "ｅｘａｍｐｌｅ.com", "example.com"},
		{"ideographic full stop separates labels", "example。com", "example.com"},
		{"service record in an internationalized name", "_ldap._tcp.Bücher.de", "_ldap._tcp.xn--bcher-kva.de"},
		{"punycode with a trailing dot", "xn--bcher-kva.de.", "xn--bcher-kva.de"},
		{"punycode in mixed case", "Xn--Bcher-Kva.De", "xn--bcher-kva.de"},
		{"sharp s is kept", "faß.de", "xn--fa-hia.de"},
		{"Kelvin sign folds to k", "\u212Aelvin.example", "kelvin.example"},
		{"no-break space is trimmed", "\u00a0example.com\u00a0", "example.com"},
		{"single label with a trailing dot", "WPAD.", "wpad"},
		{"label of 63 octets", label63 + ".example", label63 + ".example"},
		{"label of 64 octets", label63 + "a.example", ""},
		{"internationalized label over 63 octets as punycode", longIDNLabel + ".example", ""},
		{"name of 253 octets", name253, name253},
		{"name of 253 octets and a trailing dot", name253 + ".", name253},
		{"name of 254 octets", name253 + "b", ""},
		{"two trailing dots", "example.com..", ""},
		{"leading dot", ".example.com", ""},
		{"only a dot", ".", ""},
		{"only spaces", "  \t ", ""},
		{"space inside", "exa mple.com", ""},
		{"port", "example.com:443", ""},
		{"URL", "https://example.com/", ""},
		{"at sign", "user@example.com", ""},
		{"invalid UTF-8", "ex\xffample.com", ""},
		{"punycode that does not decode", "xn--.example", ""},
		{"empty punycode payload in upper case", "XN--.example", ""},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			got, err := NormalizeDomain(tt.input)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidDomain) {
					t.Errorf("NormalizeDomain(%q) = %q, %v; want an error wrapping ErrInvalidDomain", tt.input, got, err)
				}
				if err != nil && !strings.Contains(err.Error(), strconv.Quote(tt.input)) {
					t.Errorf("NormalizeDomain(%q) error %q does not show the value", tt.input, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", tt.input, got, err, tt.want)
				return
			}
			again, err := NormalizeDomain(got)
			if err != nil || again != got {
				t.Errorf("NormalizeDomain(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestModelDomainSpellingsMatch(t *testing.T) {
	for _, d := range modelDomains {
		for _, spelling := range d.spellings {
			got, err := NormalizeDomain(spelling)
			if err != nil || got != d.canonical {
				t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", spelling, got, err, d.canonical)
			}
		}
	}
}

func TestBugNormalizeDomainWideTrailingDot(t *testing.T) {
	// UTS #46 maps the ideographic and fullwidth full stops to ".", so
	// they end a name as a trailing dot does. A normalizer that drops the
	// trailing dot only before the mapping rejects these names.
	for _, input := range []string{"example。com。", "example.com．", "example.com｡"} {
		got, err := NormalizeDomain(input)
		if err != nil || got != "example.com" {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", input, got, err, "example.com")
		}
	}
}

// modelRandomState returns a valid exact-mode or sketch-mode record.
func modelRandomState(rng *rand.Rand) *domainState {
	st := &domainState{mode: modeExact}
	if rng.IntN(4) == 0 {
		st.mode = modeSketch
	}
	hour := uint32(470_000 + rng.IntN(1000))
	var active []uint32
	for range 1 + rng.IntN(6) {
		base := int64(hour) * millisPerHour
		first := base + rng.Int64N(millisPerHour)
		last := first + rng.Int64N(base+millisPerHour-first)
		st.hours = append(st.hours, hourSpan{hour: hour, first: first, last: last})
		active = append(active, hour)
		hour += uint32(1 + rng.IntN(3))
	}
	if st.mode == modeSketch {
		return st
	}
	hashes := make(map[uint64]bool)
	for range 1 + rng.IntN(5) {
		hashes[rng.Uint64()] = true
	}
	for _, hash := range slices.Sorted(maps.Keys(hashes)) {
		var hours []uint32
		for _, h := range active {
			if rng.IntN(2) == 0 {
				hours = append(hours, h)
			}
		}
		if len(hours) == 0 {
			hours = active[:1]
		}
		st.machines = append(st.machines, machineRuns{hash: hash, runs: runsOf(hours)})
	}
	return st
}

// modelDamage changes data in one random way and appends a valid
// checksum, so that the damage reaches the decoder behind the checksum.
func modelDamage(rng *rand.Rand, name string, data []byte) []byte {
	body := slices.Clone(data[:len(data)-4])
	switch rng.IntN(6) {
	case 0:
		body[rng.IntN(len(body))] ^= byte(1 + rng.IntN(255))
	case 1:
		body = body[:rng.IntN(len(body))]
	case 2:
		i := rng.IntN(len(body) + 1)
		body = slices.Insert(body, i, byte(rng.IntN(256)))
	case 3:
		i := rng.IntN(len(body))
		body = slices.Delete(body, i, i+1)
	case 4:
		// A large varint where a count or delta was.
		i := 2 + rng.IntN(max(len(body)-2, 1))
		body = slices.Insert(body[:min(i, len(body))], min(i, len(body)), 0xff, 0xff, 0xff, 0xff, 0x0f)
	default:
		body[rng.IntN(len(body))] = 0x80
	}
	return appendCRC(name, body)
}

func TestModelDamagedRecordsNeverPanic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	accepted, rejected := 0, 0
	for range 20_000 {
		data := modelDamage(rng, "damaged.example", modelRandomState(rng).encode("damaged.example", nil))
		if _, err := decodeState("damaged.example", data); err != nil {
			rejected++
			continue
		}
		accepted++
	}
	t.Logf("decodeState accepted %d and rejected %d damaged records", accepted, rejected)
}

func TestModelDamagedRecordsThroughStore(t *testing.T) {
	// Each damaged record goes through every reader: Stats, Verify and
	// the flush that merges new events into it. Each must return an
	// error wrapping ErrCorrupt or a result, and agree with decodeState.
	rng := rand.New(rand.NewPCG(3, 4))
	s := openTestStore(t, &Options{ExactLimit: 3, Retention: 20000 * time.Hour})
	now := time.UnixMilli(int64(471_100) * millisPerHour)
	s.now = func() time.Time { return now }

	for i := range 300 {
		name := fmt.Sprintf("d%d.example", i)
		data := modelDamage(rng, name, modelRandomState(rng).encode(name, nil))
		_, decodeErr := decodeState(name, data)
		err := s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(domainsBucket).Put([]byte(name), data)
		})
		if err != nil {
			t.Fatalf("storing a damaged record failed: %v", err)
		}

		_, err = s.StatsLookBack(name, 20000*time.Hour)
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
			t.Errorf("Stats(%s) = %v, want a result, ErrNotFound or ErrCorrupt", name, err)
		}
		if decodeErr == nil && errors.Is(err, ErrCorrupt) {
			t.Errorf("Stats(%s) = %v, but decodeState accepts the record", name, err)
		}
		if errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), name) {
			t.Errorf("Stats(%s) error %q does not name the domain", name, err)
		}

		for m := range 5 {
			mustRecord(t, s, name, fmt.Sprintf("ws-%d", m), now)
		}
		err = s.Flush()
		if decodeErr == nil && err != nil {
			t.Errorf("Flush over a record decodeState accepts failed: %v", err)
		}
		if decodeErr != nil && !errors.Is(err, ErrCorrupt) {
			t.Errorf("Flush over a damaged record (%v) = %v, want ErrCorrupt", decodeErr, err)
		}

		// Drop the record and whatever the failed flush left buffered,
		// so that the next round starts clean.
		err = s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(domainsBucket).Delete([]byte(name))
		})
		if err != nil {
			t.Fatalf("deleting the record failed: %v", err)
		}
		if err := s.Flush(); err != nil {
			t.Fatalf("Flush after deleting the damaged record failed: %v", err)
		}
	}

	report, err := s.Verify()
	if err != nil {
		t.Fatalf("Verify failed: %v", err)
	}
	if len(report.Damaged) != 0 {
		t.Errorf("Verify found damage after the damaged records were replaced: %v", report.Damaged)
	}
}

func TestBugDecodeStateAcceptsRunOutsideHours(t *testing.T) {
	// The runs of a machine are hours in which the domain was active, so
	// a run that reaches past the record's hours is damage. Accepting it
	// lets a switch to sketches write one sketch per hour of the run, and
	// with a run of a million hours a flush ran for over 10 minutes.
	hour := uint32(470_000)
	st := &domainState{
		mode:  modeExact,
		hours: []hourSpan{{hour: hour, first: int64(hour) * millisPerHour, last: int64(hour) * millisPerHour}},
		machines: []machineRuns{
			{hash: 1, runs: []hourRun{{start: hour, end: hour + 100_000}}},
		},
	}
	if _, err := decodeState("example.com", st.encode("example.com", nil)); err == nil {
		t.Errorf("decodeState accepted a machine run of 100,001 hours in a record with 1 active hour")
	}
}

func TestModelCheckpointNeverAheadOfEvents(t *testing.T) {
	// One writer records event i and then sets the checkpoint to i, while
	// a flusher commits at random moments. In every committed state, each
	// event up to the committed checkpoint must be in the file.
	s := openTestStore(t, nil)
	const events = 400
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := range events {
			if err := s.Record(fmt.Sprintf("e%d.example", i), "ws-1", testNow); err != nil {
				t.Errorf("Record failed: %v", err)
				return
			}
			if err := s.SetCheckpoint("offset", []byte(strconv.Itoa(i))); err != nil {
				t.Errorf("SetCheckpoint failed: %v", err)
				return
			}
		}
	}()

	for running := true; running; {
		select {
		case <-written:
			running = false
		default:
		}
		if err := s.Flush(); err != nil {
			t.Fatalf("Flush failed: %v", err)
		}
		err := s.db.View(func(tx *bolt.Tx) error {
			value := tx.Bucket(checkpointsBucket).Get([]byte("offset"))
			if value == nil {
				return nil
			}
			committed, err := strconv.Atoi(string(value))
			if err != nil {
				return fmt.Errorf("checkpoint %q is not a number", value)
			}
			for i := range committed + 1 {
				if tx.Bucket(domainsBucket).Get([]byte(fmt.Sprintf("e%d.example", i))) == nil {
					return fmt.Errorf("checkpoint %d is committed without event %d", committed, i)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Checkpoint("offset"); err != nil || string(got) != strconv.Itoa(events-1) {
		t.Errorf("Checkpoint(offset) = %q, %v; want %q", got, err, strconv.Itoa(events-1))
	}
}

// modelBufferedEntries sums the entries of every buffer shard.
func modelBufferedEntries(s *Store) int {
	total := 0
	for i := range s.shards {
		shard := &s.shards[i]
		shard.mu.Lock()
		total += shard.entries
		shard.mu.Unlock()
	}
	return total
}

func TestModelBufferBound(t *testing.T) {
	// Record flushes by itself at twice the bound; the event that crossed
	// it may add its entries before the flush.
	for _, flushInterval := range []time.Duration{-1, time.Hour} {
		t.Run(fmt.Sprintf("flush interval %s", flushInterval), func(t *testing.T) {
			const bound = 6400
			s := openTestStore(t, &Options{MaxBufferedPairs: bound, FlushInterval: flushInterval})
			highest := 0
			for i := range 40_000 {
				mustRecord(t, s, fmt.Sprintf("d%d.example", i), fmt.Sprintf("ws-%d", i%7), testNow.Add(-time.Duration(i%3)*time.Hour))
				if i%97 == 0 {
					highest = max(highest, modelBufferedEntries(s))
				}
			}
			if limit := 2*bound + 2*shardCount; highest > limit {
				t.Errorf("the buffer held %d entries, more than %d for a bound of %d", highest, limit, bound)
			}
			t.Logf("the buffer held at most %d entries for a bound of %d", highest, bound)
		})
	}
}

func TestModelConcurrentUseAndClose(t *testing.T) {
	// Writers, readers of a sketch-mode domain and flushers run while the
	// store closes. Every call must return nil, ErrNotFound or ErrClosed,
	// and every event whose Record returned nil must survive the close.
	path := filepath.Join(t.TempDir(), "stats.db")
	s, err := Open(path, &Options{Now: func() time.Time { return testNow }, FlushInterval: time.Millisecond, ExactLimit: 20})
	if err != nil {
		t.Fatalf("Open failed: %v", err)
	}

	var workers sync.WaitGroup
	accepted := make([]map[string]bool, 3)
	for w := range accepted {
		accepted[w] = make(map[string]bool)
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range 3000 {
				machine := fmt.Sprintf("w%d-%d", w, i)
				err := s.Record("hot.example", machine, testNow.Add(-time.Duration(i%40)*time.Hour))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Record failed: %v", err)
					return
				}
				accepted[w][machine] = true
			}
		}()
	}
	for range 2 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range 3000 {
				_, err := s.StatsLookBack("hot.example", time.Duration(1+i%700)*time.Hour)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("Stats failed: %v", err)
					return
				}
				if _, err := s.Checkpoint("offset"); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("Checkpoint failed: %v", err)
					return
				}
				if err := s.Flush(); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("Flush failed: %v", err)
					return
				}
			}
		}()
	}

	for modelBufferedEntries(s) == 0 && s.storedNewest.Load() < 0 {
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close failed: %v", err)
	}
	workers.Wait()

	reopened := openTestStoreAt(t, path, nil)
	total := 0
	for _, machines := range accepted {
		total += len(machines)
	}
	got, err := reopened.Stats("hot.example")
	if err != nil {
		t.Fatalf("Stats after reopening failed: %v", err)
	}
	if slack := 0.02*float64(total) + 2; math.Abs(float64(got.OrgPrevalence-int64(total))) > slack {
		t.Errorf("prevalence after reopening = %d, want %d accepted machines within %.0f", got.OrgPrevalence, total, slack)
	}
}
