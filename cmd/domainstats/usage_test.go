package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlagErrorPrintedOnce(t *testing.T) {
	tests := [][]string{
		{"stats", "--now", "2024-03-01", "www.example.com"},
		{"ingest", "--no-such-flag", "x.log"},
		{"serve", "--follow-interval", "often"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			res := runBinary(t, args...)
			if res.code != 2 {
				t.Errorf("exit status = %d, want 2", res.code)
			}
			first, _, _ := strings.Cut(res.stderr, "\n")
			if n := strings.Count(res.stderr, first); n != 1 {
				t.Errorf("the error %q is printed %d times, want once:\n%s", first, n, res.stderr)
			}
		})
	}
}

func TestStatsLookbackBelowOne(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lookback.db")
	mustRun(t, "ingest", "--db", db, sampleLogPath)

	for _, value := range []string{"0", "-5"} {
		t.Run(value, func(t *testing.T) {
			res := runBinary(t, "stats", "--db", db, "--lookback", value, "www.example.com")
			if res.code != 2 {
				t.Errorf("exit status = %d, want 2", res.code)
			}
			if want := "--lookback " + value + ": expected a number of hours from 1"; !strings.Contains(res.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stats printed %q, want nothing", res.stdout)
			}
		})
	}
}

func TestIngestRetentionZeroRejected(t *testing.T) {
	for _, value := range []string{"0", "-5"} {
		t.Run(value, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "retention.db")
			res := runBinary(t, "ingest", "--db", db, "--retention", value, sampleLogPath)
			if res.code != 2 {
				t.Errorf("exit status = %d, want 2", res.code)
			}
			if want := "--retention must be a positive number of hours, got " + value; !strings.Contains(res.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("rejected ingest left a store file behind (stat: %v)", err)
			}
		})
	}
}
