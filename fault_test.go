package domainstats

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// helperEnv, when set, makes TestHelperProcess act as the child process of
// a test instead of a test: its value names the role.
const helperEnv = "DOMAINSTATS_TEST_HELPER"

// Roles of TestHelperProcess, and the variables that pass their inputs.
const (
	helperOpen    = "open"    // open helperPathEnv with helperTimeoutEnv as lock timeout
	helperDamaged = "damaged" // read every domain of helperPathEnv, see damagedFileResult

	helperVerifyFlushes = "verify-flushes" // see verifyDuringFlushes

	helperPathEnv    = "DOMAINSTATS_TEST_PATH"
	helperTimeoutEnv = "DOMAINSTATS_TEST_LOCK_TIMEOUT"
)

// startHelper returns a command that runs this test binary as the child
// process role, with extra environment variables env.
func startHelper(role string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// TestHelperProcess is the child process of the tests that need one: a
// second process opening a locked file, and reads of damaged files that
// may crash the process.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "":
		t.Skip("runs only as the child process of another test")
	case helperOpen:
		timeout, err := time.ParseDuration(os.Getenv(helperTimeoutEnv))
		if err != nil {
			fmt.Println("invalid lock timeout:", err)
			os.Exit(3)
		}
		s, err := Open(os.Getenv(helperPathEnv), &Options{LockTimeout: timeout, FlushInterval: -1})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		s.Close()
		fmt.Println("opened")
		os.Exit(0)
	case helperVerifyFlushes:
		if err := verifyDuringFlushes(os.Getenv(helperPathEnv)); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	case helperDamaged:
		result := readDamagedFile(os.Getenv(helperPathEnv))
		if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
}

func TestOpenLockedByOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	holder := openTestStoreAt(t, path, nil)
	mustRecord(t, holder, "held.example", "host-1", testNow)

	const lockTimeout = 300 * time.Millisecond
	cmd := startHelper(helperOpen, helperPathEnv+"="+path, helperTimeoutEnv+"="+lockTimeout.String())
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// A child that is still waiting long after its lock timeout hangs.
	var err error
	select {
	case err = <-done:
	case <-time.After(lockTimeout + 20*time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("second process still waiting for the lock after %s, with a lock timeout of %s", time.Since(started), lockTimeout)
	}
	waited := time.Since(started)

	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("second process ended with %v, want exit status 1:\n%s", err, output.String())
	}
	for _, want := range []string{"locked by another process", path, lockTimeout.String()} {
		if !strings.Contains(output.String(), want) {
			t.Errorf("second process error lacks %q:\n%s", want, output.String())
		}
	}
	t.Logf("second process failed after %s (lock timeout %s): %s", waited.Round(time.Millisecond), lockTimeout, strings.TrimSpace(output.String()))

	// The holder is unaffected, and once it closes the file opens.
	if err := holder.Flush(); err != nil {
		t.Errorf("Flush of the holder after the failed open: %v", err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	cmd = startHelper(helperOpen, helperPathEnv+"="+path, helperTimeoutEnv+"="+lockTimeout.String())
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "opened") {
		t.Errorf("second process after Close: %v\n%s", err, out)
	}
}

// damageStoreDomains are the domains that buildDamageStore records: the
// first ones in exact mode, the last ones switched to sketches.
func damageStoreDomains() []string {
	var domains []string
	for i := range 300 {
		domains = append(domains, fmt.Sprintf("exact%d.zone%d.example", i, i%7))
	}
	for i := range 8 {
		domains = append(domains, fmt.Sprintf("sketch%d.example", i))
	}
	return domains
}

// buildDamageStore writes a store of several pages at path and returns the
// statistics of every domain in it, as statsOf formats them.
func buildDamageStore(t *testing.T, path string) map[string]string {
	t.Helper()

	s := openTestStoreAt(t, path, &Options{ExactLimit: 20})
	for i, domain := range damageStoreDomains() {
		machines := 1 + i%9
		if strings.HasPrefix(domain, "sketch") {
			machines = 40
		}
		for m := range machines {
			at := testNow.Add(-time.Duration((i+m)%30) * time.Hour)
			mustRecord(t, s, domain, fmt.Sprintf("host-%d", m), at)
		}
		if i%100 == 99 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	reopened := openTestStoreAt(t, path, nil)
	want := statsOf(reopened, damageStoreDomains())
	if err := reopened.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// statsOf returns the statistics of each domain, or its error text.
func statsOf(s *Store, domains []string) map[string]string {
	got := make(map[string]string, len(domains))
	for _, domain := range domains {
		stats, err := s.Stats(domain)
		if err != nil {
			got[domain] = "error: " + err.Error()
			continue
		}
		got[domain] = fmt.Sprintf("%d machines, %s to %s", stats.OrgPrevalence,
			stats.OrgFirstSeen.Format(time.RFC3339Nano), stats.OrgLastSeen.Format(time.RFC3339Nano))
	}
	return got
}

// recordDamage is one way to damage a stored value.
type recordDamage struct {
	name   string
	damage func(rng *rand.Rand, value []byte) []byte
}

var recordDamages = []recordDamage{
	{"version byte flipped", func(_ *rand.Rand, v []byte) []byte { v[0] ^= 0xff; return v }},
	{"mode byte flipped", func(_ *rand.Rand, v []byte) []byte { v[1] ^= 0x01; return v }},
	{"one body byte flipped", func(rng *rand.Rand, v []byte) []byte {
		v[2+rng.IntN(len(v)-6)] ^= byte(1 + rng.IntN(255))
		return v
	}},
	{"checksum byte flipped", func(rng *rand.Rand, v []byte) []byte { v[len(v)-1-rng.IntN(4)] ^= 0x10; return v }},
	{"truncated", func(rng *rand.Rand, v []byte) []byte { return v[:rng.IntN(len(v))] }},
	{"empty", func(_ *rand.Rand, v []byte) []byte { return v[:0] }},
	{"trailing bytes", func(_ *rand.Rand, v []byte) []byte { return append(v, 0, 1, 2) }},
	{"random bytes", func(rng *rand.Rand, v []byte) []byte {
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		return v
	}},
}

// TestDamagedRecordsNamed damages stored records and sketches through bbolt,
// then checks that Open succeeds, Stats fails with ErrCorrupt naming each
// damaged domain, the intact domains are unchanged, and Verify lists
// exactly the damaged domains.
func TestDamagedRecordsNamed(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	for _, tt := range recordDamages {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(len(tt.name))))
			path := filepath.Join(t.TempDir(), "stats.db")
			want := buildDamageStore(t, path)

			// Damage every 20th exact-mode record, and one sketch of
			// every other sketch-mode domain.
			damagedRecords := map[string]bool{}
			damagedSketches := map[string]bool{}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				domains := tx.Bucket(domainsBucket)
				for i, domain := range damageStoreDomains() {
					if strings.HasPrefix(domain, "exact") && i%20 == 0 {
						value := tt.damage(rng, bytes.Clone(domains.Get([]byte(domain))))
						damagedRecords[domain] = true
						if err := domains.Put([]byte(domain), value); err != nil {
							return err
						}
					}
				}

				sketches := tx.Bucket(sketchesBucket)
				for i := 0; i < 8; i += 2 {
					domain := fmt.Sprintf("sketch%d.example", i)
					prefix := append([]byte(domain), 0)
					key, value := sketches.Cursor().Seek(prefix)
					if !bytes.HasPrefix(key, prefix) {
						return fmt.Errorf("no sketch stored for %s", domain)
					}
					damagedSketches[domain] = true
					if err := sketches.Put(bytes.Clone(key), tt.damage(rng, bytes.Clone(value))); err != nil {
						return err
					}
				}
				return nil
			})
			if closeErr := db.Close(); err == nil {
				err = closeErr
			}
			if err != nil {
				t.Fatal(err)
			}

			s := openTestStoreAt(t, path, nil)
			for _, domain := range damageStoreDomains() {
				stats, err := s.Stats(domain)
				damaged := damagedRecords[domain] || damagedSketches[domain]
				switch {
				case damaged && (!errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), strconv.Quote(domain))):
					t.Errorf("Stats(%s) of a damaged domain = %+v, %v; want ErrCorrupt naming the domain", domain, stats, err)
				case !damaged && err != nil:
					t.Errorf("Stats(%s) of an intact domain failed: %v", domain, err)
				}
			}
			got := statsOf(s, damageStoreDomains())
			for domain := range got {
				if damagedRecords[domain] || damagedSketches[domain] {
					delete(got, domain)
					delete(want, domain)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("statistics of intact domains changed (-want +got):\n%s", diff)
			}

			report, err := s.Verify()
			if err != nil {
				t.Fatalf("Verify failed: %v", err)
			}
			found := map[string]string{}
			for _, d := range report.Damaged {
				found[d.Domain] = d.Part
			}
			wantFound := map[string]string{}
			for domain := range damagedRecords {
				wantFound[domain] = "record"
			}
			for domain := range damagedSketches {
				wantFound[domain] = found[domain]
				if !strings.HasPrefix(found[domain], "sketch of hour ") {
					wantFound[domain] = "sketch of hour …"
				}
			}
			if diff := cmp.Diff(wantFound, found); diff != "" {
				t.Errorf("Verify damage by domain mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// damagedFileResult is what the child process of TestDamagedFileBytes
// found in a damaged file.
type damagedFileResult struct {
	// Stage is where the child stopped: "open", "stats", "verify" or
	// "done".
	Stage string

	// OpenError is the error of Open, if it failed.
	OpenError string

	// Stats has the statistics or error text of each domain.
	Stats map[string]string

	// Damage lists what Verify reported, and VerifyError its error.
	Damage      []string
	VerifyError string

	// Panic and Stack describe a recovered panic of Stage.
	Panic string
	Stack string
}

// readDamagedFile opens the store at path and reads every domain, then
// verifies it, recovering panics and memory faults.
func readDamagedFile(path string) (result damagedFileResult) {
	// A damaged page can make bbolt read outside its memory map. With
	// this, such a read in this goroutine panics instead of crashing.
	debug.SetPanicOnFault(true)
	defer func() {
		if v := recover(); v != nil {
			result.Panic = fmt.Sprint(v)
			result.Stack = string(debug.Stack())
		}
	}()

	result.Stage = "open"
	s, err := Open(path, &Options{Now: func() time.Time { return testNow }, FlushInterval: -1, LockTimeout: time.Second})
	if err != nil {
		result.OpenError = err.Error()
		return result
	}
	defer s.Close()

	result.Stage = "stats"
	result.Stats = statsOf(s, damageStoreDomains())

	result.Stage = "verify"
	report, err := s.Verify()
	if err != nil {
		result.VerifyError = err.Error()
	}
	for _, d := range report.Damaged {
		result.Damage = append(result.Damage, d.String())
	}
	result.Stage = "done"
	return result
}

// fileDamage is one way to damage the bytes of a store file.
type fileDamage struct {
	name   string
	damage func(rng *rand.Rand, data []byte, pageSize int) []byte
}

var fileDamages = []fileDamage{
	{"byte in meta page 0", func(rng *rand.Rand, data []byte, _ int) []byte {
		data[rng.IntN(80)] ^= byte(1 + rng.IntN(255))
		return data
	}},
	{"byte in meta page 1", func(rng *rand.Rand, data []byte, pageSize int) []byte {
		data[pageSize+rng.IntN(80)] ^= byte(1 + rng.IntN(255))
		return data
	}},
	{"both meta pages", func(rng *rand.Rand, data []byte, pageSize int) []byte {
		data[16+rng.IntN(64)] ^= 0x55
		data[pageSize+16+rng.IntN(64)] ^= 0x55
		return data
	}},
	{"one byte in a data page", func(rng *rand.Rand, data []byte, pageSize int) []byte {
		data[2*pageSize+rng.IntN(len(data)-2*pageSize)] ^= byte(1 + rng.IntN(255))
		return data
	}},
	{"page header byte", func(rng *rand.Rand, data []byte, pageSize int) []byte {
		page := 2 + rng.IntN(len(data)/pageSize-2)
		data[page*pageSize+rng.IntN(16)] ^= byte(1 + rng.IntN(255))
		return data
	}},
	{"16 bytes in one page", func(rng *rand.Rand, data []byte, pageSize int) []byte {
		page := 2 + rng.IntN(len(data)/pageSize-2)
		for range 16 {
			data[page*pageSize+rng.IntN(pageSize)] = byte(rng.Uint32())
		}
		return data
	}},
	{"page zeroed", func(rng *rand.Rand, data []byte, pageSize int) []byte {
		page := 2 + rng.IntN(len(data)/pageSize-2)
		clear(data[page*pageSize : (page+1)*pageSize])
		return data
	}},
	{"truncated", func(rng *rand.Rand, data []byte, _ int) []byte { return data[:rng.IntN(len(data))] }},
}

// damagedFileCasesEnv sets how many damaged copies TestDamagedFileBytes
// tries per kind of damage.
const damagedFileCasesEnv = "DOMAINSTATS_DAMAGED_FILE_CASES"

// TestDamagedFileBytes damages copies of a store file at the byte level
// and reads each in a child process, because bbolt may crash a process on
// a damaged page. It fails when Open, Stats or Verify panics in this
// module's code, other than a memory fault on a value bbolt returned.
// Panics, crashes and hangs inside bbolt, and statistics that change
// without any error, are logged and counted, not failed.
func TestDamagedFileBytes(t *testing.T) {
	// A child built with the race detector takes about a second to start.
	casesPerKind := 12
	if raceEnabled {
		casesPerKind = 2
	}
	if value := os.Getenv(damagedFileCasesEnv); value != "" {
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: expected a positive number", damagedFileCasesEnv, value)
		}
		casesPerKind = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	dir := t.TempDir()
	original := filepath.Join(dir, "original.db")
	want := buildDamageStore(t, original)
	data, err := os.ReadFile(original)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	t.Logf("store file: %d bytes, %d pages of %d bytes", len(data), len(data)/pageSize, pageSize)

	for _, kind := range fileDamages {
		t.Run(kind.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(len(kind.name))))
			outcomes := map[string]int{}
			for i := range casesPerKind {
				path := filepath.Join(dir, fmt.Sprintf("damaged-%d.db", i))
				if err := os.WriteFile(path, kind.damage(rng, bytes.Clone(data), pageSize), 0o600); err != nil {
					t.Fatal(err)
				}
				outcome := readDamagedCopy(t, path, want)
				outcomes[outcome]++
				os.Remove(path)
			}
			t.Logf("%d copies: %v", casesPerKind, outcomes)
		})
	}
}

// readDamagedCopy reads the damaged file at path in a child process and
// returns a short name for what happened.
func readDamagedCopy(t *testing.T, path string, want map[string]string) string {
	t.Helper()

	cmd := startHelper(helperDamaged, helperPathEnv+"="+path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		// SIGQUIT makes the child print every goroutine's stack, which
		// shows whether the loop is inside bbolt or in this module.
		cmd.Process.Signal(syscall.SIGQUIT)
		<-done
		if strings.Contains(stderr.String(), "go.etcd.io/bbolt") {
			t.Logf("%s: reading hung for 30 s inside bbolt", filepath.Base(path))
			return "hang in bbolt"
		}
		t.Errorf("reading %s hung for 30 s outside bbolt:\n%s", filepath.Base(path), stderr.String())
		return "hang"
	}

	var result damagedFileResult
	if err != nil || json.Unmarshal(stdout.Bytes(), &result) != nil {
		// The process died: a panic in a goroutine that bbolt started, a
		// fatal runtime error or an out-of-memory kill.
		crash := firstLines(stderr.String()+stdout.String(), 3)
		inBbolt := strings.Contains(stderr.String(), "go.etcd.io/bbolt")
		t.Logf("%s: process crashed (%v), in bbolt: %t:\n%s", filepath.Base(path), err, inBbolt, crash)
		if !inBbolt {
			t.Errorf("%s: process crashed outside bbolt (%v):\n%s", filepath.Base(path), err, stderr.String())
		}
		return "process crash in bbolt"
	}

	if result.Panic != "" {
		where := panicOrigin(result.Stack)
		t.Logf("%s: panic during %s in %s: %s", filepath.Base(path), result.Stage, where, result.Panic)
		switch {
		case strings.Contains(result.Stack, "go.etcd.io/bbolt"):
			return "recovered panic in bbolt during " + result.Stage
		case isMemoryFault(result.Panic):
			// A damaged page can make bbolt return a value that points
			// outside its memory map; reading it faults in this module.
			return "memory fault reading a value from a damaged page during " + result.Stage
		}
		t.Errorf("%s: panic in this module during %s: %s\n%s", filepath.Base(path), result.Stage, result.Panic, result.Stack)
		return "panic in this module during " + result.Stage
	}

	if result.OpenError != "" {
		if !strings.Contains(result.OpenError, path) {
			t.Errorf("Open error %q does not name the file", result.OpenError)
		}
		return "Open error"
	}

	detected := len(result.Damage) > 0 || result.VerifyError != ""
	for domain, stats := range result.Stats {
		if stats == want[domain] {
			continue
		}
		if strings.Contains(stats, ErrCorrupt.Error()) && !strings.Contains(stats, strconv.Quote(domain)) {
			t.Errorf("Stats(%s) error does not name the domain: %s", domain, stats)
		}
		if strings.HasPrefix(stats, "error: ") && !strings.Contains(stats, ErrNotFound.Error()) {
			detected = true
		}
	}
	changed := !cmp.Equal(want, result.Stats)
	switch {
	case detected:
		return "error from Stats or Verify"
	case changed:
		t.Logf("%s: statistics changed and neither Stats nor Verify reported damage:\n%s", filepath.Base(path), cmp.Diff(want, result.Stats))
		return "undetected change"
	}
	return "no effect"
}

// panicOrigin returns the function that panicked: the first frame of stack
// outside the runtime, the recover handler and debug.Stack.
func panicOrigin(stack string) string {
	for _, line := range strings.Split(stack, "\n") {
		if strings.HasPrefix(line, "\t") || line == "" || strings.HasPrefix(line, "goroutine ") {
			continue
		}
		if strings.HasPrefix(line, "runtime") || strings.Contains(line, "readDamagedFile.func") || strings.HasPrefix(line, "panic(") {
			continue
		}
		return line
	}
	return "unknown"
}

// isMemoryFault reports whether a recovered panic value is a memory fault
// that debug.SetPanicOnFault turned into a panic.
func isMemoryFault(panicValue string) bool {
	return strings.Contains(panicValue, "invalid memory address") || strings.Contains(panicValue, "unexpected fault address")
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// mountTmpfs mounts a tmpfs of size bytes on a new temporary folder, or
// skips the test when this process may not mount.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()

	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a %d-byte tmpfs on %s (%v); run the tests as root on Linux to fill a real disk", size, dir, err)
	}
	// Cleanups run last first, so this runs before TempDir removes dir.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full, and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()

	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v, want ENOSPC", dir, err)
			}
			return path
		}
	}
}

// recordBatch records n domains with prefix, each seen by one machine.
func recordBatch(t *testing.T, s *Store, prefix string, n int) []string {
	t.Helper()

	var domains []string
	for i := range n {
		domain := fmt.Sprintf("%s%d.example", prefix, i)
		mustRecord(t, s, domain, "host-1", testNow.Add(-time.Duration(i%48)*time.Hour))
		domains = append(domains, domain)
	}
	return domains
}

// checkFound fails the test unless every domain has statistics.
func checkFound(t *testing.T, s *Store, when string, domains []string) {
	t.Helper()

	missing := 0
	for _, domain := range domains {
		if _, err := s.Stats(domain); err != nil {
			missing++
			if missing <= 3 {
				t.Errorf("%s: Stats(%s) failed: %v", when, domain, err)
			}
		}
	}
	if missing > 3 {
		t.Errorf("%s: %d of %d domains failed", when, missing, len(domains))
	}
}

// checkClean fails the test unless Verify of s finds no damage.
// checkReopened closes s, reopens the file at path and checks that it is
// clean and holds exactly the committed and the buffered domains.
func checkReopened(t *testing.T, s *Store, path string, committed, buffered []string) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	reopened := openTestStoreAt(t, path, nil)
	report := checkClean(t, reopened, "after reopening")
	if report.Domains != len(committed)+len(buffered) {
		t.Errorf("Verify read %d domains, want %d", report.Domains, len(committed)+len(buffered))
	}
	checkFound(t, reopened, "after reopening", buffered)
	checkFound(t, reopened, "after reopening", committed)
}

func checkClean(t *testing.T, s *Store, when string) VerifyReport {
	t.Helper()

	report, err := s.Verify()
	if err != nil {
		t.Fatalf("%s: Verify failed: %v", when, err)
	}
	for _, d := range report.Damaged {
		t.Errorf("%s: Verify found damage: %s", when, d)
	}
	return report
}

func TestFlushFullDisk(t *testing.T) {
	dir := mountTmpfs(t, 2<<20)
	path := filepath.Join(dir, "stats.db")

	s := openTestStoreAt(t, path, nil)
	committed := recordBatch(t, s, "committed", 500)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	filler := fillDisk(t, dir)

	// Enough new domains to need pages the full disk cannot give.
	buffered := recordBatch(t, s, "buffered", 5000)
	err := s.Flush()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Flush on a full disk = %v, want an error wrapping ENOSPC", err)
	}
	t.Logf("Flush on a full disk: %v", err)
	checkFound(t, s, "after the failed flush", buffered)
	checkFound(t, s, "after the failed flush", committed)

	// A second try on a still full disk fails the same way.
	if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("second Flush on a full disk = %v, want ENOSPC", err)
	}
	checkClean(t, s, "after failed flushes")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush after freeing space failed: %v", err)
	}
	checkReopened(t, s, path, committed, buffered)
}

func TestCloseOnFullDiskKeepsFileValid(t *testing.T) {
	dir := mountTmpfs(t, 2<<20)
	path := filepath.Join(dir, "stats.db")

	s, err := Open(path, &Options{Now: func() time.Time { return testNow }, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	committed := recordBatch(t, s, "committed", 500)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	fillDisk(t, dir)
	recordBatch(t, s, "lost", 5000)

	// Close cannot commit and returns an error; what was committed must
	// survive.
	err = s.Close()
	if err == nil || !strings.Contains(err.Error(), "buffered events are lost") || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close on a full disk = %v, want an error saying buffered events are lost, wrapping ENOSPC", err)
	}

	// Open rewrites only existing pages, so it works on the full disk.
	reopened := openTestStoreAt(t, path, nil)
	report := checkClean(t, reopened, "after reopening on a full disk")
	if report.Domains != len(committed) {
		t.Errorf("Verify read %d domains, want the %d committed", report.Domains, len(committed))
	}
	checkFound(t, reopened, "after reopening on a full disk", committed)
}

// setImmutable sets or clears the immutable attribute of path with
// chattr, or skips the test when that is not possible.
func setImmutable(t *testing.T, path string, on bool) {
	t.Helper()

	flag := "-i"
	if on {
		flag = "+i"
	}
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skipf("chattr not found (%v); it is needed to make an open file read-only", err)
	}
	if out, err := exec.Command(chattr, flag, path).CombinedOutput(); err != nil {
		if on {
			t.Skipf("chattr +i %s failed (%v: %s); it needs root and a file system with the immutable attribute, such as ext4", path, err, out)
		}
		t.Fatalf("chattr -i %s: %v: %s", path, err, out)
	}
}

// TestFlushReadOnlyFile makes the open store file immutable, which on
// Linux makes every write through an already open descriptor fail with
// EPERM. A read-only remount does not work for this: the kernel refuses it
// while a file is open for writing.
func TestFlushReadOnlyFile(t *testing.T) {
	tests := []struct {
		name     string
		buffered int
		reason   string
	}{
		{"within the file", 1, "bbolt writes the pages with pwrite"},
		{"growing the file", 3000, "bbolt first grows the file with ftruncate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "stats.db")
			s := openTestStoreAt(t, path, nil)
			committed := recordBatch(t, s, "committed", 200)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}

			setImmutable(t, path, true)
			cleared := false
			t.Cleanup(func() {
				if !cleared {
					setImmutable(t, path, false)
				}
			})

			buffered := recordBatch(t, s, "buffered", tt.buffered)
			err := s.Flush()

			// NOTE: bbolt 1.4 formats a failed ftruncate with %s, so only
			// the message, not errors.Is, shows EPERM on that path.
			if err == nil || !strings.Contains(err.Error(), syscall.EPERM.Error()) {
				t.Fatalf("Flush to an immutable file (%s) = %v, want %q", tt.reason, err, syscall.EPERM.Error())
			}
			t.Logf("Flush to an immutable file: %v (errors.Is EPERM: %t)", err, errors.Is(err, syscall.EPERM))
			checkFound(t, s, "after the failed flush", buffered)
			checkFound(t, s, "after the failed flush", committed)
			checkClean(t, s, "after the failed flush")

			setImmutable(t, path, false)
			cleared = true
			if err := s.Flush(); err != nil {
				t.Fatalf("Flush after clearing the immutable attribute failed: %v", err)
			}
			checkReopened(t, s, path, committed, buffered)
		})
	}
}

// TestVerifyFindsDamagedKey flips one byte of a stored domain name in the
// file, keeping the keys in order so that bbolt's page checks pass. The
// domain's events then vanish from Stats, and Verify must report it.
func TestVerifyFindsDamagedKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	buildDamageStore(t, path)

	// In a leaf page the key is followed by its value, which starts with
	// the record version and the exact mode.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const domain = "exact1.zone1.example"
	at := bytes.Index(data, []byte(domain+"\x01\x00"))
	if at < 0 {
		t.Fatalf("record of %s not found in the file", domain)
	}
	// "exact1.zone1.examplf" still sorts between its neighbours.
	data[at+len(domain)-1] = 'f'
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	s := openTestStoreAt(t, path, nil)
	if _, err := s.Stats(domain); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stats(%s) after renaming its key = %v, want ErrNotFound", domain, err)
	}
	report, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}

	// NOTE: the record checksum covers the value only, so a damaged key
	// leaves a record that passes every check. Covering the key too would
	// make Verify report it.
	if len(report.Damaged) == 0 {
		t.Errorf("Verify found no damage after the key of %s changed to %s in the file, and its events are lost", domain, domain[:len(domain)-1]+"f")
	}
}
