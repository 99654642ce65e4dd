package fleetio

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/sync/internal/retry"
)

// Budget is the client side of Fleetio's per-account rate limit: every
// request the Client sends (each attempt, retries included) takes a token
// first. It is an interface so that the bridge's replicas can share one
// budget in their database later; TokenBucket is the one-process budget.
type Budget interface {
	// Take waits for one request's token, or returns ctx's error.
	Take(ctx context.Context) error
	// TryTake takes a token if one is free now, without waiting.
	TryTake() bool
	// Pause says Fleetio answered 429 with Retry-After: no request is to
	// be sent before until, by anyone sharing the budget.
	Pause(until time.Time)
}

// TokenBucket is a Budget of perMinute requests a minute with bursts of up
// to burst: it starts full, refills continuously, and a Pause empties it
// and holds every Take until the pause is over (Fleetio's word on its
// limit beats our guess of it). Safe for concurrent use; waiters are not
// served in order.
type TokenBucket struct {
	perToken time.Duration // refill time of one token
	burst    float64
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error

	mu     sync.Mutex
	tokens float64
	last   time.Time
	paused time.Time
}

// NewTokenBucket makes a full bucket of perMinute requests a minute (at
// least 1) and bursts of burst (at least 1). now nil: time.Now.
func NewTokenBucket(perMinute, burst int, now func() time.Time) *TokenBucket {
	if now == nil {
		now = time.Now
	}
	perMinute, burst = max(perMinute, 1), max(burst, 1)
	return &TokenBucket{perToken: time.Minute / time.Duration(perMinute), burst: float64(burst), tokens: float64(burst),
		now: now, sleep: retry.Sleep}
}

// Take waits for a token.
func (b *TokenBucket) Take(ctx context.Context) error {
	for {
		wait, ok := b.take()
		if ok {
			return nil
		}
		if err := b.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// TryTake takes a token if one is free now.
func (b *TokenBucket) TryTake() bool {
	_, ok := b.take()
	return ok
}

// take takes a token if one is there; otherwise it says how long until
// one may be.
func (b *TokenBucket) take() (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if now.Before(b.paused) {
		return b.paused.Sub(now), false
	}
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return max(time.Duration((1-b.tokens)*float64(b.perToken)), time.Millisecond), false
}

func (b *TokenBucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.last = now
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+float64(d)/float64(b.perToken))
	}
	b.last = now
}

// Pause holds every Take until until and empties the bucket.
func (b *TokenBucket) Pause(until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if until.After(b.paused) {
		b.paused = until
	}
	b.tokens, b.last = 0, until
}

// Available is how many whole tokens the bucket holds now (0 while paused):
// for stats and tests.
func (b *TokenBucket) Available() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if now.Before(b.paused) {
		return 0
	}
	b.refill(now)
	return int(b.tokens)
}

// ErrBudgetSpent is a request refused by the client itself: its context
// said not to wait for the budget (Prepaid) and no token was free. Nothing
// was sent; the caller tries again once it has a token.
var ErrBudgetSpent = errors.New("fleetio: request budget spent")

// credit is what Prepaid puts in a context.
type credit struct {
	mu      sync.Mutex
	prepaid int
}

type creditKey struct{}

// Prepaid returns a context whose requests use n tokens the caller already
// took from the client's budget and then, instead of waiting for more,
// take one only if it is free now, or fail with ErrBudgetSpent; and are
// not retried inside the client (a retry waits its back-off or a 429's
// Retry-After), whatever Options.MaxRetries says. A caller holding
// something others wait for (the bridge's worker, an assignment) takes its
// token before it takes the lock, never waits on the budget or a back-off
// while holding it, and retries later itself.
func Prepaid(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, creditKey{}, &credit{prepaid: n})
}

func prepaid(ctx context.Context) bool {
	_, ok := ctx.Value(creditKey{}).(*credit)
	return ok
}

// takeToken takes the token of one attempt (see Budget, Prepaid).
func (c *Client) takeToken(ctx context.Context) error {
	b := c.opts.Budget
	if b == nil {
		return nil
	}
	if cr, ok := ctx.Value(creditKey{}).(*credit); ok {
		cr.mu.Lock()
		defer cr.mu.Unlock()
		if cr.prepaid > 0 {
			cr.prepaid--
			return nil
		}
		if !b.TryTake() {
			return ErrBudgetSpent
		}
		return nil
	}
	return b.Take(ctx)
}

// Budget is the budget c's requests take from (nil: none).
func (c *Client) Budget() Budget { return c.opts.Budget }

// WithBudget returns a copy of c whose requests take their tokens from
// budget (nil: none, only Fleetio's 429s pace them).
func (c *Client) WithBudget(budget Budget) *Client {
	cc := *c
	cc.opts.Budget = budget
	return &cc
}
