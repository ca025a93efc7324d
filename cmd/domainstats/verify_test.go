package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// storedRecords returns a copy of every key and value in the domains
// bucket of the store file at path, opened read-only.
func storedRecords(t *testing.T, path string) map[string][]byte {
	t.Helper()

	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	records := map[string][]byte{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("domains")).ForEach(func(key, value []byte) error {
			records[string(key)] = bytes.Clone(value)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return records
}

// damageRecord flips one byte in the middle of the stored record of domain.
func damageRecord(t *testing.T, path, domain string) {
	t.Helper()

	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		domains := tx.Bucket([]byte("domains"))
		record := bytes.Clone(domains.Get([]byte(domain)))
		if record == nil {
			t.Fatalf("no stored record for %s", domain)
		}
		record[len(record)/2] ^= 0x40
		return domains.Put([]byte(domain), record)
	})
	if closeErr := db.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCleanStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "clean.db")
	mustRun(t, "ingest", "--db", db, sampleLogPath)
	before := storedRecords(t, db)

	res := runBinary(t, "verify", "--db", db)
	if res.code != 0 {
		t.Fatalf("verify of a clean store exited with %d:\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	want := "12 domain records and 0 sketches checked, 0 damaged parts found"
	if !strings.Contains(res.stdout, want) {
		t.Errorf("verify output lacks %q:\n%s", want, res.stdout)
	}

	if diff := cmp.Diff(before, storedRecords(t, db)); diff != "" {
		t.Errorf("verify changed the stored records (-want +got):\n%s", diff)
	}
}

func TestVerifyDamagedStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "damaged.db")
	mustRun(t, "ingest", "--db", db, sampleLogPath)
	damageRecord(t, db, "mail.example.com")
	damageRecord(t, db, "vpn.example.net")
	before := storedRecords(t, db)

	res := runBinary(t, "verify", "--db", db)
	if res.code != 1 {
		t.Errorf("verify of a damaged store exited with %d, want 1", res.code)
	}
	for _, want := range []string{
		`domain "mail.example.com", record: `,
		`domain "vpn.example.net", record: `,
		"12 domain records and 0 sketches checked, 2 damaged parts found",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, res.stdout)
		}
	}
	if !strings.Contains(res.stderr, "store is damaged: 2 damaged parts") {
		t.Errorf("verify error lacks the damage count:\n%s", res.stderr)
	}
	if strings.Contains(res.stdout, "www.example.com") {
		t.Errorf("verify reported an intact domain:\n%s", res.stdout)
	}

	if diff := cmp.Diff(before, storedRecords(t, db)); diff != "" {
		t.Errorf("verify changed the stored records (-want +got):\n%s", diff)
	}

	// Only the damaged domains fail; the others still return statistics.
	if res := runBinary(t, "stats", "--db", db, "--now", "latest", "mail.example.com"); res.code != 1 || !strings.Contains(res.stdout, "InternalServerError") {
		t.Errorf("stats of a damaged domain: exit %d, output %s; want exit 1 and an InternalServerError body", res.code, res.stdout)
	}
	queryStats(t, db, []string{"www.example.com"})
}

func TestStatsLogsDamagedRecord(t *testing.T) {
	db := filepath.Join(t.TempDir(), "damaged.db")
	mustRun(t, "ingest", "--db", db, sampleLogPath)
	damageRecord(t, db, "mail.example.com")

	res := runBinary(t, "stats", "--db", db, "--now", "latest", "mail.example.com")
	if res.code != 1 {
		t.Errorf("stats of a damaged domain exited with %d, want 1", res.code)
	}
	for _, want := range []string{
		"level=ERROR",
		"mail.example.com",
		"corrupt",
		"domainstats verify --db " + db,
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stats stderr lacks %q:\n%s", want, res.stderr)
		}
	}
}

func TestVerifyFailures(t *testing.T) {
	dir := t.TempDir()
	notStore := filepath.Join(dir, "not-a-store.db")
	if err := os.WriteFile(notStore, bytes.Repeat([]byte("not a bbolt file "), 1024), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"missing store", []string{"verify", "--db", filepath.Join(dir, "absent.db")}, 1, "run domainstats ingest first"},
		{"not a store", []string{"verify", "--db", notStore}, 1, "invalid database"},
		{"extra argument", []string{"verify", "--db", notStore, "www.example.com"}, 2, `unexpected argument "www.example.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runBinary(t, tt.args...)
			if res.code != tt.wantCode {
				t.Errorf("exit status = %d, want %d", res.code, tt.wantCode)
			}
			if !strings.Contains(res.stderr, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, res.stderr)
			}
		})
	}
}
