// Package domainstats answers, from an organisation's own telemetry, the
// question of Microsoft Defender for Endpoint's "Get domain statistics"
// API: how many distinct machines contacted a domain, and when was it first
// and last seen.
//
// A [Store] records (domain, machine, time) events from DNS, TLS, HTTP or
// endpoint logs into a bbolt file and returns [Stats] for a window that ends
// at the store's clock:
//
//	store, err := domainstats.Open("domainstats.db", nil)
//	...
//	err = store.Record("www.example.com", "ws-0042", eventTime)
//	...
//	stats, err := store.Stats("www.example.com") // the last 720 hours
//
// Domains are normalized by [NormalizeDomain]: lowercase, no trailing dot,
// internationalized names in punycode. Machine IDs are opaque and compared
// after trimming spaces and folding case.
//
// # Storage
//
// Each domain keeps the hours in which it was active, with the first and
// last event time of each hour. It also keeps the 64-bit hashes of the
// machines that contacted it, each with the runs of hours it was active.
// A domain whose machines outnumber [Options].ExactLimit switches to one
// HyperLogLog sketch per hour (github.com/axiomhq/hyperloglog). Statistics
// are computed from these hours, so window edges are rounded outward to
// whole hours, as [Store.StatsLookBack] describes.
//
// Data older than the retention is pruned, counted back from the newest
// event recorded rather than from the wall clock, so a replayed old log
// keeps its data.
//
// # Caveats
//
// Counts are exact while a domain has at most ExactLimit machines (16,384
// by default) within the retention, apart from 64-bit hash collisions,
// which are negligible at these sizes. Above that they are HyperLogLog
// estimates with a standard error of about 1.04/sqrt(2^p): 0.8% at the
// default precision 14. A domain does not return to exact counting until
// all its data has aged out.
//
// [Store.Record] buffers events in memory, and a background flush commits
// them once per [Options].FlushInterval (1 second by default) in one bbolt
// transaction; [Store.Flush] and [Store.Close] commit at once. A crash loses
// the events recorded since the last flush and nothing before it, and bbolt
// keeps the file consistent. Replaying the same events is harmless:
// counts are of distinct machines and first and last seen are minimum and
// maximum. Stored records carry a format version and a CRC-32C checksum; a
// damaged record returns an error wrapping [ErrCorrupt] that names the
// domain.
//
// A bbolt file can be open in one process at a time; [Open] waits up to
// [Options].LockTimeout for another process to let go of it.
package domainstats
