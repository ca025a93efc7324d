package statshttp

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// limiterStart is an arbitrary start time for the fake clocks.
var limiterStart = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func TestRateLimiterDefaults(t *testing.T) {
	l := newRateLimiter(RateLimit{}, time.Now)

	want := []limitWindow{
		{calls: 100, period: time.Minute, name: "minute"},
		{calls: 1500, period: time.Hour, name: "hour"},
	}
	if diff := cmp.Diff(want, l.windows, cmp.AllowUnexported(limitWindow{})); diff != "" {
		t.Errorf("default windows mismatch (-want +got):\n%s", diff)
	}
}

func TestRateLimiterMinuteLimit(t *testing.T) {
	clock := &fakeClock{now: limiterStart}
	l := newRateLimiter(RateLimit{}, clock.Now)

	for i := range 100 {
		if d := l.allow("a"); !d.allowed {
			t.Fatalf("call %d of 100 in one instant was rejected", i+1)
		}
	}

	d := l.allow("a")
	if d.allowed {
		t.Fatal("call 101 in one instant was allowed")
	}
	if d.retryAfter != time.Second {
		t.Errorf("retryAfter = %v, want 1s (one call refills every 0.6s)", d.retryAfter)
	}
	if got, want := d.message(), "Rate limit of 100 calls per minute exceeded. Retry after 1 second."; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}

	if d := l.allow("b"); !d.allowed {
		t.Error("another caller was rejected, want limits per caller")
	}

	clock.Advance(600 * time.Millisecond)
	if d := l.allow("a"); !d.allowed {
		t.Error("call after 0.6s of refill was rejected")
	}
	if d := l.allow("a"); d.allowed {
		t.Error("second call after 0.6s of refill was allowed")
	}
}

func TestRateLimiterHourLimit(t *testing.T) {
	clock := &fakeClock{now: limiterStart}
	l := newRateLimiter(RateLimit{}, clock.Now)

	// One call a second never touches the minute limit, which refills 1.67
	// calls a second, but drains the hourly bucket, which refills 0.42.
	allowed := 0
	var rejected rateDecision
	for range 3600 {
		d := l.allow("a")
		if !d.allowed {
			rejected = d
			break
		}
		allowed++
		clock.Advance(time.Second)
	}

	// After n seconds the bucket has handed out n calls and refilled
	// n*1500/3600, so it runs dry when n - n*5/12 > 1500, at n = 2572.
	if allowed < 2560 || allowed > 2580 {
		t.Errorf("allowed %d calls at one a second before the hour limit, want about 2572", allowed)
	}
	if rejected.window.name != "hour" {
		t.Errorf("exhausted window = %q, want %q", rejected.window.name, "hour")
	}
	if rejected.retryAfter < time.Second || rejected.retryAfter > 3*time.Second {
		t.Errorf("retryAfter = %v, want 1s to 3s (one call refills every 2.4s)", rejected.retryAfter)
	}
}

func TestRateLimiterRejectedCallIsFree(t *testing.T) {
	clock := &fakeClock{now: limiterStart}
	l := newRateLimiter(RateLimit{PerMinute: 2, PerHour: 3}, clock.Now)

	for i := range 2 {
		if d := l.allow("a"); !d.allowed {
			t.Fatalf("call %d was rejected", i+1)
		}
	}

	// Calls rejected by the minute limit must not drain the hour limit.
	for range 10 {
		if d := l.allow("a"); d.allowed {
			t.Fatal("call over the minute limit was allowed")
		}
	}

	clock.Advance(time.Minute)
	if d := l.allow("a"); !d.allowed {
		t.Fatal("third call of the hour was rejected after the minute refilled")
	}

	d := l.allow("a")
	if d.allowed {
		t.Fatal("fourth call of the hour was allowed")
	}
	if d.window.name != "hour" {
		t.Errorf("exhausted window = %q, want %q", d.window.name, "hour")
	}

	// The hour bucket refills one call every 20 minutes. It was at zero
	// one minute after the start, having refilled 1/20 of a call, so the
	// next call is due 19 minutes later.
	if want := 19 * time.Minute; d.retryAfter != want {
		t.Errorf("retryAfter = %v, want %v", d.retryAfter, want)
	}
}

func TestRateLimiterOff(t *testing.T) {
	l := newRateLimiter(RateLimit{PerMinute: -1, PerHour: -1}, time.Now)

	for i := range 5000 {
		if d := l.allow("a"); !d.allowed {
			t.Fatalf("call %d was rejected with both limits off", i+1)
		}
	}
}

func TestRateLimiterSweepsIdleCallers(t *testing.T) {
	clock := &fakeClock{now: limiterStart}
	l := newRateLimiter(RateLimit{PerMinute: 1, PerHour: 1}, clock.Now)

	l.allow("idle")
	clock.Advance(30 * time.Minute)
	l.allow("active")

	clock.Advance(30 * time.Minute)
	l.allow("active")

	if _, ok := l.callers["idle"]; ok {
		t.Error("caller idle for an hour is still kept")
	}
	if _, ok := l.callers["active"]; !ok {
		t.Error("caller active 30 minutes ago was dropped")
	}

	// A dropped caller starts with full buckets, as it would have had.
	if d := l.allow("idle"); !d.allowed {
		t.Error("first call of a dropped caller was rejected")
	}
}
