package domainstats

import "time"

// Record adds one event: machine contacted domain at time at.
func (s *Store) Record(domain, machine string, at time.Time) error { panic("TODO") }
