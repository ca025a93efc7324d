package domainstats_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/domainstats/domainstats"
)

func Example() {
	dir, err := os.MkdirTemp("", "domainstats-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A fixed clock makes the output repeatable; leave Now nil in real
	// programs to end windows at the present.
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	store, err := domainstats.Open(filepath.Join(dir, "domainstats.db"), &domainstats.Options{
		Now: func() time.Time { return now },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	events := []struct {
		domain, machine string
		at              time.Time
	}{
		{"Example.COM.", "WS-0001", now.Add(-50 * time.Hour)},
		{"example.com", "ws-0002", now.Add(-2 * time.Hour)},
		{"example.com", "ws-0001", now.Add(-time.Hour)},
	}
	for _, e := range events {
		if err := store.Record(e.domain, e.machine, e.at); err != nil {
			log.Fatal(err)
		}
	}

	stats, err := store.Stats("example.com")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d machines, first seen %s, last seen %s\n",
		stats.Host, stats.OrgPrevalence, stats.OrgFirstSeen.Format(time.RFC3339), stats.OrgLastSeen.Format(time.RFC3339))

	lastDay, err := store.StatsLookBack("example.com", 24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("last 24 hours: %d machines\n", lastDay.OrgPrevalence)
	// Output:
	// example.com: 2 machines, first seen 2024-04-29T10:00:00Z, last seen 2024-05-01T11:00:00Z
	// last 24 hours: 2 machines
}
