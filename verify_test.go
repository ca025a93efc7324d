package domainstats

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestVerifyFindsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.db")
	s := openTestStoreAt(t, path, &Options{ExactLimit: 2})
	for _, domain := range []string{"intact.example", "damaged.example"} {
		mustRecord(t, s, domain, "host-1", testNow)
	}
	for _, machine := range []string{"host-1", "host-2", "host-3"} {
		mustRecord(t, s, "sketched.example", machine, testNow.Add(-time.Hour))
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	clean, err := s.Verify()
	if err != nil {
		t.Fatalf("Verify failed: %v", err)
	}
	if len(clean.Damaged) != 0 || clean.Domains != 3 || clean.Sketches != 1 {
		t.Fatalf("Verify of an intact file = %+v, want 3 domains, 1 sketch and no damage", clean)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Damage one record and one sketch behind the store's back.
	updateClosedFile(t, path, func(tx *bolt.Tx) error {
		domains := tx.Bucket(domainsBucket)
		record := append([]byte{}, domains.Get([]byte("damaged.example"))...)
		record[2] ^= 0x01
		if err := domains.Put([]byte("damaged.example"), record); err != nil {
			return err
		}
		sketches := tx.Bucket(sketchesBucket)
		key, value := sketches.Cursor().First()
		damaged := append([]byte{}, value...)
		damaged[len(damaged)-1] ^= 0xff
		return sketches.Put(append([]byte{}, key...), damaged)
	})

	reopened := openTestStoreAt(t, path, nil)
	report, err := reopened.Verify()
	if err != nil {
		t.Fatalf("Verify failed: %v", err)
	}
	var found []string
	for _, d := range report.Damaged {
		found = append(found, d.String())
	}
	if len(report.Damaged) != 2 {
		t.Fatalf("Verify found %d damaged parts, want 2: %q", len(report.Damaged), found)
	}
	if report.Damaged[0].Domain != "damaged.example" || report.Damaged[0].Part != "record" {
		t.Errorf("first damage = %s, want the record of damaged.example", report.Damaged[0])
	}
	if report.Damaged[1].Domain != "sketched.example" || !strings.HasPrefix(report.Damaged[1].Part, "sketch of hour") {
		t.Errorf("second damage = %s, want a sketch of sketched.example", report.Damaged[1])
	}
	if _, err := reopened.Stats("sketched.example"); err == nil || !strings.Contains(err.Error(), "sketched.example") {
		t.Errorf("Stats(sketched.example) over a damaged sketch = %v, want an error naming the domain", err)
	}
}
