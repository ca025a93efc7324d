package domainstats

import (
	"errors"
	"time"
)

// Stats is the answer to "how many distinct machines contacted this domain,
// and when was it first and last seen" for one window. It carries the same
// facts as Microsoft Defender for Endpoint's InOrgDomainStats entity.
type Stats struct {
	Host          string    // the normalized domain
	OrgPrevalence int64     // distinct machines seen in the window
	OrgFirstSeen  time.Time // earliest event in the window, UTC
	OrgLastSeen   time.Time // latest event in the window, UTC
}

// Errors returned by the store. Callers test for them with errors.Is,
// because the returned errors wrap them with the value involved.
var (
	// ErrNotFound is returned by Stats when the domain has no event inside
	// the window.
	ErrNotFound = errors.New("domainstats: no events for domain in window")

	// ErrInvalidDomain is returned when a domain cannot be normalized. The
	// wrapping error shows the rejected value.
	ErrInvalidDomain = errors.New("domainstats: invalid domain")

	// ErrInvalidMachine is returned by Record when the machine ID is empty
	// after trimming spaces.
	ErrInvalidMachine = errors.New("domainstats: invalid machine")

	// ErrInvalidLookBack is returned by StatsLookBack when the look-back is
	// zero, negative or longer than the store's retention.
	ErrInvalidLookBack = errors.New("domainstats: invalid look-back")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("domainstats: store closed")

	// ErrCorrupt is returned when a stored record fails its checksum or
	// cannot be decoded. The wrapping error names the record.
	ErrCorrupt = errors.New("domainstats: corrupt record")
)

// DefaultLookBack is the window that Stats uses: 30 days, the default and
// maximum of Defender's API.
const DefaultLookBack = 720 * time.Hour

// Stats returns the statistics of domain over the default window, the
// DefaultLookBack hours that end at Options.Now.
func (s *Store) Stats(domain string) (Stats, error) {
	return s.StatsLookBack(domain, DefaultLookBack)
}

// StatsLookBack returns the statistics of domain over the window of
// lookBack that ends at Options.Now.
func (s *Store) StatsLookBack(domain string, lookBack time.Duration) (Stats, error) {
	panic("TODO")
}
