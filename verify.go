package domainstats

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Damage is one damaged part of a store file found by Verify.
type Damage struct {
	// Domain is the domain whose data is damaged, or empty for damage to
	// the file itself or to its metadata.
	Domain string

	// Part names what is damaged: "record", "sketch of hour N",
	// "file structure" or "meta key K".
	Part string

	// Err is the check that failed.
	Err error
}

func (d Damage) String() string {
	if d.Domain == "" {
		return fmt.Sprintf("%s: %v", d.Part, d.Err)
	}
	return fmt.Sprintf("domain %q, %s: %v", d.Domain, d.Part, d.Err)
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Domains      int      // domain records read
	Sketches     int      // hourly sketches read
	DamagedTotal int      // damaged parts found, listed or not
	Damaged      []Damage // the first damaged parts found, at most 10,000
}

// maxReportedDamage bounds VerifyReport.Damaged, so that a thoroughly
// broken file cannot exhaust memory; DamagedTotal counts past it.
const maxReportedDamage = 10_000

// Verify reads every stored record and sketch, checks its format version,
// checksum and layout, and runs bbolt's consistency check of the file's
// pages. It changes nothing, and it reads the committed data only, not the
// buffered events. The error is for failures to read at all; damage goes
// into the report.
func (s *Store) Verify() (report VerifyReport, err error) {
	if s.closed.Load() {
		return VerifyReport{}, ErrClosed
	}

	// bbolt's page check reads the freelist, which a committing flush
	// changes, so no flush may run meanwhile.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.dbClosed {
		return VerifyReport{}, ErrClosed
	}
	if s.blank {
		return report, nil
	}
	defer guardFaults()()
	defer recoverDamage(&err, s.path, "", "")

	addDamage := func(d Damage) {
		report.DamagedTotal++
		if len(report.Damaged) < maxReportedDamage {
			report.Damaged = append(report.Damaged, d)
		}
	}

	err = s.db.View(func(tx *bolt.Tx) error {
		// NOTE: bbolt 1.4.3's page check can loop without end when damage
		// makes a page refer back to itself; such a file hangs Verify.
		for err := range tx.Check() {
			addDamage(Damage{Part: "file structure", Err: err})
		}

		meta := tx.Bucket(metaBucket)
		for _, key := range [][]byte{newestKey, sweptKey} {
			if _, err := readInt64(meta.Get(key), 0); err != nil {
				addDamage(Damage{Part: fmt.Sprintf("meta key %q", key), Err: err})
			}
		}

		err := tx.Bucket(domainsBucket).ForEach(func(key, data []byte) error {
			report.Domains++
			if _, err := decodeState(string(key), data); err != nil {
				addDamage(Damage{Domain: string(key), Part: "record", Err: err})
			}
			return nil
		})
		if err != nil {
			return err
		}

		return tx.Bucket(sketchesBucket).ForEach(func(key, data []byte) error {
			report.Sketches++
			if len(key) < 6 || key[len(key)-5] != 0 {
				addDamage(Damage{Domain: string(key), Part: "sketch key", Err: errTruncated})
				return nil
			}
			domain := string(key[:len(key)-5])
			hour := binary.BigEndian.Uint32(key[len(key)-4:])
			if _, err := decodeSketch(key, data); err != nil {
				addDamage(Damage{Domain: domain, Part: fmt.Sprintf("sketch of hour %d", hour), Err: err})
			}
			return nil
		})
	})
	if err != nil {
		return report, s.viewError(err)
	}
	return report, nil
}
