package domainstats

// NormalizeDomain returns the canonical ASCII form of domain.
func NormalizeDomain(domain string) (string, error) { panic("TODO") }
