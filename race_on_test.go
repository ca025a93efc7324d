//go:build race

package domainstats

// raceEnabled reports whether the tests run under the race detector, which
// slows them down about tenfold.
const raceEnabled = true
