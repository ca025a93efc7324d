// Package bench measures the domainstats store side by side with what a
// team would use instead: SQLite through modernc.org/sqlite, Redis
// HyperLogLog and a plain Go map.
//
// The package holds the deterministic workload generator, a reader for
// Zeek dns.log files and one [Counter] per approach. The benchmarks live in
// the _test.go files and are described in BENCHMARKS.md at the root of the
// repository.
//
// # Caveats
//
// The Redis baseline stores only counts, so its [Result] has no first or
// last seen time. The SQLite pairs table and the map keep one first-seen
// and one last-seen time per (domain, machine), so their counts are exact
// but their OrgFirstSeen is clamped to the window start when a machine was
// first seen before the window.
package bench
