// Package retry is the one back-off rule and the one retry loop of the
// SmartBox cloud side: the Fleetio client, the SMS client, the bookings
// delivery queue, the broker's login throttle and the link's ack wait all
// use it, each with its own bounds, set (and explained) where it is used.
//
// # The rule
//
// Wait n (n = 1 for the first retry) has the ceiling Base·2^(n-1), at most
// Cap: capped exponential back-off. A wait that is drawn once, before a
// retry (Policy.Delay), takes "full jitter" above Base: uniform in
// [Base, ceiling], so that many clients hit by one outage do not retry in
// step, and none retries sooner than Base. A server's Retry-After is a
// floor (capped at MaxRetryAfter, so a wild header cannot stall a worker).
//
// A wait that is recomputed from stored state at every check (the login
// throttle: refused until last failure + wait; the ack wait: resend when
// the batch is older than the wait) uses the ceiling itself
// (Policy.Ceiling): a draw made again at each check would make the wait
// mean nothing. So does the bookings delivery queue, whose attempts at the
// cap are how long a delivery is tried (about a day, as Fleetio tries its
// own webhooks); its Retry-After floor is Policy.AtLeast.
//
// # The loop
//
// Do sends a request until it succeeds, fails for good, has had its
// attempts or its context ends, waiting Delay between attempts. What is
// worth a retry (for HTTP: 429, 5xx, a network error) is the caller's
// verdict on each attempt (Outcome).
package retry

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// Policy is a capped exponential back-off (see the package comment).
type Policy struct {
	Base time.Duration // the first wait, and the least one
	Cap  time.Duration // no wait is longer (but a Retry-After up to MaxRetryAfter)
	// MaxRetryAfter caps a server's Retry-After; 0: Cap.
	MaxRetryAfter time.Duration
	// Rand returns a uniform number in [0, n); nil: math/rand/v2. Tests
	// inject one to pin the draw.
	Rand func(n int64) int64
}

// Ceiling is the longest wait n (n >= 1; less counts as 1): Base doubled
// n-1 times, at most Cap.
func (p Policy) Ceiling(n int) time.Duration {
	// The box's rule (the daemon's cool-down and lockout use it too): one
	// definition of capped doubling in the tree.
	return max(box.Doubling(p.Base, p.Cap, n-1), 0)
}

// Delay is wait n drawn once before a retry: uniform in [Base, Ceiling(n)],
// at least retryAfter (what the server asked for; 0: nothing) capped at
// MaxRetryAfter.
func (p Policy) Delay(n int, retryAfter time.Duration) time.Duration {
	ceil := p.Ceiling(n)
	d := ceil
	if lo := max(p.Base, 0); ceil > lo {
		draw := rand.Int64N
		if p.Rand != nil {
			draw = p.Rand
		}
		d = lo + time.Duration(draw(int64(ceil-lo)+1))
	}
	return p.AtLeast(d, retryAfter)
}

// AtLeast is d, or retryAfter capped at MaxRetryAfter when that is longer.
func (p Policy) AtLeast(d, retryAfter time.Duration) time.Duration {
	capRA := p.MaxRetryAfter
	if capRA <= 0 {
		capRA = p.Cap
	}
	return max(d, min(retryAfter, capRA))
}

// RetryAfter reads an HTTP Retry-After value (RFC 9110): delay seconds, or
// an HTTP date, counted from now. 0: absent, unusable or past. It is not
// capped: Policy.Delay caps it (MaxRetryAfter).
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		switch {
		case n <= 0 || n != n:
			return 0
		case n >= float64(math.MaxInt64/int64(time.Second)):
			return time.Duration(math.MaxInt64) // would overflow: "for ever"
		}
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// Outcome is the caller's verdict on a failed attempt.
type Outcome struct {
	Retry      bool          // a later attempt may succeed (e.g. 429, 5xx, a network error)
	RetryAfter time.Duration // how long the server asked to wait; 0: it did not say
}

// Loop is how Do retries.
type Loop struct {
	Policy
	// Attempts is how many tries Do makes in all (1: no retry; less
	// counts as 1).
	Attempts int
	// Sleep waits d, or returns ctx's error when ctx ends first; nil:
	// Sleep (a timer). Tests inject one to run without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, if set, hears of each failed attempt that will be tried
	// again, before the wait (a log line).
	OnRetry func(ctx context.Context, attempt int, wait time.Duration, err error)
}

// Error is how Do ends when no answer was final: the attempts ran out, or
// ctx ended. errors.Is and errors.As see both Ctx and Last.
type Error struct {
	Attempts int   // attempts made
	Last     error // the last attempt's error; nil if ctx ended before the first
	Ctx      error // the context's error if it ended the loop, else nil
}

func (e *Error) Error() string {
	switch {
	case e.Ctx != nil && e.Last != nil:
		return fmt.Sprintf("%v (last attempt: %v)", e.Ctx, e.Last)
	case e.Ctx != nil:
		return e.Ctx.Error()
	}
	return fmt.Sprintf("giving up after %d attempts: %v", e.Attempts, e.Last)
}

func (e *Error) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Ctx, e.Last} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Do calls try until it returns a nil error, and returns its value. It
// ends with the attempt's own error when the attempt says it is final (or
// when only one attempt is allowed: nothing was retried), and with an
// *Error when the attempts ran out or ctx ended (checked before each
// attempt, after a failed one, and during the wait).
func Do[T any](ctx context.Context, l Loop, try func(ctx context.Context) (T, Outcome, error)) (T, error) {
	var zero T
	sleep := l.Sleep
	if sleep == nil {
		sleep = Sleep
	}
	attempts := max(l.Attempts, 1)
	var last error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return zero, &Error{Attempts: attempt - 1, Last: last, Ctx: err}
		}
		v, out, err := try(ctx)
		if err == nil {
			return v, nil
		}
		last = err
		switch {
		case ctx.Err() != nil:
			// The caller gave up: say so, with what the attempt saw.
			return zero, &Error{Attempts: attempt, Last: err, Ctx: ctx.Err()}
		case !out.Retry || attempts == 1:
			return zero, err
		case attempt >= attempts:
			return zero, &Error{Attempts: attempt, Last: err}
		}
		wait := l.Delay(attempt, out.RetryAfter)
		if l.OnRetry != nil {
			l.OnRetry(ctx, attempt, wait, err)
		}
		if err := sleep(ctx, wait); err != nil {
			return zero, &Error{Attempts: attempt, Last: last, Ctx: err}
		}
	}
}

// Sleep waits d, or until ctx ends (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
