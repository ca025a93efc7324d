package statshttp

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defender's documented limits for this API.
const (
	defaultCallsPerMinute = 100
	defaultCallsPerHour   = 1500
)

// RateLimit sets per-caller limits on calls. The zero value applies
// Defender's limits of 100 calls per minute and 1,500 calls per hour.
//
// Each limit is a token bucket whose capacity is the limit and which
// refills at the limit's rate: a caller may spend a full minute's calls at
// once and then gets one call back every 60/PerMinute seconds.
type RateLimit struct {
	// PerMinute is the number of calls a caller may make per minute. If
	// zero, defaults to 100. A negative value turns the limit off.
	PerMinute int

	// PerHour is the number of calls a caller may make per hour. If zero,
	// defaults to 1,500. A negative value turns the limit off.
	PerHour int
}

// limitWindow is one of a caller's limits: its size in calls per period.
type limitWindow struct {
	calls  int
	period time.Duration
	name   string // "minute" or "hour", for the 429 message
}

// callerBuckets holds one caller's buckets, in the order of
// rateLimiter.windows.
type callerBuckets struct {
	buckets  []*rate.Limiter
	lastSeen time.Time
}

// rateLimiter keeps the buckets of every caller. It is safe for concurrent
// use by multiple goroutines.
type rateLimiter struct {
	now     func() time.Time
	windows []limitWindow

	// mu guards callers and lastSweep, and makes check-then-take on a
	// caller's buckets atomic.
	mu        sync.Mutex
	callers   map[string]*callerBuckets
	lastSweep time.Time
}

// newRateLimiter returns a limiter for cfg that reads time from now.
func newRateLimiter(cfg RateLimit, now func() time.Time) *rateLimiter {
	l := &rateLimiter{now: now, callers: make(map[string]*callerBuckets)}

	if cfg.PerMinute == 0 {
		cfg.PerMinute = defaultCallsPerMinute
	}
	if cfg.PerHour == 0 {
		cfg.PerHour = defaultCallsPerHour
	}
	if cfg.PerMinute > 0 {
		l.windows = append(l.windows, limitWindow{calls: cfg.PerMinute, period: time.Minute, name: "minute"})
	}
	if cfg.PerHour > 0 {
		l.windows = append(l.windows, limitWindow{calls: cfg.PerHour, period: time.Hour, name: "hour"})
	}
	return l
}

// rateDecision is the outcome of one call to rateLimiter.allow.
type rateDecision struct {
	allowed    bool
	retryAfter time.Duration // whole seconds, at least one, when !allowed
	window     limitWindow   // the exhausted limit, when !allowed
}

// allow takes one call from each of caller's buckets, or none when any
// bucket is empty. A rejected call costs nothing, so a caller that retries
// after retryAfter succeeds unless it spent calls elsewhere meanwhile.
func (l *rateLimiter) allow(caller string) rateDecision {
	if len(l.windows) == 0 {
		return rateDecision{allowed: true}
	}

	now := l.now()

	l.mu.Lock()
	defer l.mu.Unlock()

	l.sweep(now)

	c := l.callers[caller]
	if c == nil {
		c = &callerBuckets{}
		for _, w := range l.windows {
			perSecond := rate.Limit(float64(w.calls) / w.period.Seconds())
			c.buckets = append(c.buckets, rate.NewLimiter(perSecond, w.calls))
		}
		l.callers[caller] = c
	}
	c.lastSeen = now

	// Check every bucket before taking from any, so a rejected call leaves
	// them all as they were.
	var worst rateDecision
	for i, b := range c.buckets {
		tokens := b.TokensAt(now)
		if tokens >= 1 {
			continue
		}

		wait := time.Duration((1 - tokens) / float64(b.Limit()) * float64(time.Second))
		seconds := max(1, int64(math.Ceil(wait.Seconds())))
		retry := time.Duration(seconds) * time.Second
		if retry > worst.retryAfter {
			worst = rateDecision{retryAfter: retry, window: l.windows[i]}
		}
	}
	if worst.retryAfter > 0 {
		return worst
	}

	for _, b := range c.buckets {
		b.AllowN(now, 1)
	}
	return rateDecision{allowed: true}
}

// sweepEvery is how often allow drops idle callers.
const sweepEvery = time.Minute

// sweep drops callers idle for at least the longest period. Their buckets
// have refilled by then, so a fresh set of buckets behaves the same and
// the map stays bounded by the callers active in the last period.
func (l *rateLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < sweepEvery && now.After(l.lastSweep) {
		return
	}
	l.lastSweep = now

	longest := l.windows[len(l.windows)-1].period
	for id, c := range l.callers {
		if now.Sub(c.lastSeen) >= longest {
			delete(l.callers, id)
		}
	}
}

// message returns the text of the 429 body for d.
func (d rateDecision) message() string {
	seconds := int64(d.retryAfter / time.Second)
	unit := "seconds"
	if seconds == 1 {
		unit = "second"
	}
	return fmt.Sprintf("Rate limit of %d calls per %s exceeded. Retry after %d %s.",
		d.window.calls, d.window.name, seconds, unit)
}
