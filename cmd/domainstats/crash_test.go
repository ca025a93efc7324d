package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/domainstats/domainstats"
	"github.com/google/go-cmp/cmp"
)

// Environment variables of TestIngestCrashLoop.
const (
	// crashKillsEnv sets how many times the loop kills an ingest; the
	// default is defaultCrashKills.
	crashKillsEnv = "DOMAINSTATS_CRASH_KILLS"

	// crashSeedEnv repeats the kill moments of an earlier run, whose seed
	// the test logs.
	crashSeedEnv = "DOMAINSTATS_CRASH_SEED"
)

// defaultCrashKills keeps the loop to about ten seconds on an idle
// two-core machine.
const defaultCrashKills = 40

// maxKillsPerRound bounds the kills on one store. The next run then
// finishes, so that every store gets compared.
const maxKillsPerRound = 12

// crashWorkload is a set of generated Zeek dns.log files. Each file ends
// with a commit and touches most domains, so an ingest spends much of its
// time inside bbolt transactions, where a kill hurts most.
type crashWorkload struct {
	files   []string
	domains []string
	newest  time.Time
}

func writeCrashWorkload(t *testing.T, dir string) crashWorkload {
	t.Helper()

	var w crashWorkload
	for i := range 2500 {
		w.domains = append(w.domains, fmt.Sprintf("h%d.zone%d.example.com", i, i%23))
	}
	var machines []string
	for i := range 400 {
		machines = append(machines, fmt.Sprintf("10.1.%d.%d", i/256, i%256))
	}

	const (
		fileCount    = 24
		linesPerFile = 6000
	)
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range fileCount {
		path := filepath.Join(dir, fmt.Sprintf("dns-%02d.log", i))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		// Files overlap in time, as logs of several sensors do. Lines are
		// at most 3 s apart.
		fileStart := start.Add(time.Duration(i) * 40 * time.Minute)
		if err := writeZeekDNSLog(f, linesPerFile, w.domains, machines, fileStart, uint64(100+i)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		w.files = append(w.files, path)
		if end := fileStart.Add(3 * linesPerFile * time.Second); end.After(w.newest) {
			w.newest = end
		}
	}
	return w
}

// storeStats returns the statistics of every domain in the store at path,
// or the error text for a domain that has none, over a window that ends at
// now.
func storeStats(t *testing.T, path string, domains []string, now time.Time) map[string]string {
	t.Helper()

	store, err := domainstats.Open(path, &domainstats.Options{Now: func() time.Time { return now }, FlushInterval: -1})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer store.Close()

	got := map[string]string{}
	for _, domain := range domains {
		stats, err := store.Stats(domain)
		if err != nil {
			got[domain] = "error: " + err.Error()
			continue
		}
		got[domain] = fmt.Sprintf("%d machines, %s to %s", stats.OrgPrevalence,
			stats.OrgFirstSeen.Format(time.RFC3339Nano), stats.OrgLastSeen.Format(time.RFC3339Nano))
	}
	return got
}

// runIngestUntil starts an ingest and sends it SIGKILL after delay. It
// returns true when the signal killed the process, and false when the
// ingest finished first.
func runIngestUntil(t *testing.T, delay time.Duration, args []string) bool {
	t.Helper()

	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ingest failed before it was killed: %v\n%s", err, stderr.String())
		}
		return false
	case <-timer.C:
	}

	// The process may finish between the timer and the signal.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	err := <-done
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() && status.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("ingest failed: %v\n%s", err, stderr.String())
	}
	return false
}

// TestIngestCrashLoop kills ingests of a generated log at random moments,
// checks the store after every kill, and compares the statistics of every
// domain with an uninterrupted ingest once a rerun gets to the end.
func TestIngestCrashLoop(t *testing.T) {
	wantKills := defaultCrashKills
	if value := os.Getenv(crashKillsEnv); value != "" {
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: expected a positive number of kills", crashKillsEnv, value)
		}
		wantKills = n
	}
	seed := uint64(time.Now().UnixNano())
	if value := os.Getenv(crashSeedEnv); value != "" {
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: expected an unsigned integer", crashSeedEnv, value)
		}
		seed = n
	}
	t.Logf("seed %d; set %s=%d to repeat these kill moments", seed, crashSeedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))

	dir := t.TempDir()
	workload := writeCrashWorkload(t, dir)
	ingestArgs := func(db string) []string {
		return append([]string{"ingest", "--db", db}, workload.files...)
	}

	whole := filepath.Join(dir, "whole.db")
	started := time.Now()
	mustRun(t, ingestArgs(whole)...)
	fullRun := time.Since(started)
	want := storeStats(t, whole, workload.domains, workload.newest)
	t.Logf("an uninterrupted ingest of %d files takes %s", len(workload.files), fullRun.Round(time.Millisecond))

	kills, rounds := 0, 0
	for kills < wantKills {
		rounds++
		db := filepath.Join(dir, fmt.Sprintf("round-%d.db", rounds))

		for roundKills := 0; roundKills < maxKillsPerRound; roundKills++ {
			// One kill in eight lands in the first 30 ms, while the
			// process starts and creates or opens the file. The others
			// land within the first third of a whole run, so that a
			// round takes several kills to get through the input.
			var delay time.Duration
			if rng.IntN(8) == 0 {
				delay = time.Duration(rng.Int64N(int64(30 * time.Millisecond)))
			} else {
				delay = time.Duration(rng.Int64N(int64(fullRun / 3)))
			}
			if !runIngestUntil(t, delay, ingestArgs(db)) {
				break
			}
			kills++

			if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
				continue
			}
			res := runBinary(t, "verify", "--db", db)
			if res.code != 0 {
				t.Fatalf("round %d, kill %d after %s: verify exited with %d:\n%s%s", rounds, roundKills+1, delay, res.code, res.stdout, res.stderr)
			}
		}

		// The last run of the round may have been killed too: finish it.
		mustRun(t, ingestArgs(db)...)
		got := storeStats(t, db, workload.domains, workload.newest)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("round %d: statistics after kills differ from an uninterrupted ingest (-want +got):\n%s", rounds, diff)
		}
		if err := os.Remove(db); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills in %d rounds survived: verify clean after each, statistics of all %d domains equal after each round",
		kills, rounds, len(workload.domains))
}
