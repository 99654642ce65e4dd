package fleetio

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testBucket is a TokenBucket on a clock the test moves; its sleeps move
// the clock by what they wait (and are recorded).
type testBucket struct {
	*TokenBucket
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newTestBucket(perMinute, burst int) *testBucket {
	tb := &testBucket{now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	tb.TokenBucket = NewTokenBucket(perMinute, burst, tb.clock)
	tb.TokenBucket.sleep = func(ctx context.Context, d time.Duration) error {
		tb.mu.Lock()
		tb.sleeps = append(tb.sleeps, d)
		tb.now = tb.now.Add(d)
		tb.mu.Unlock()
		return ctx.Err()
	}
	return tb
}

func (tb *testBucket) clock() time.Time {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.now
}

func (tb *testBucket) advance(d time.Duration) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.now = tb.now.Add(d)
}

func (tb *testBucket) slept() (total time.Duration) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, d := range tb.sleeps {
		total += d
	}
	return total
}

func TestTokenBucketBurstThenRate(t *testing.T) {
	tb := newTestBucket(20, 5) // 3 s a token
	for range 5 {
		require.True(t, tb.TryTake(), "a full bucket gives its burst at once")
	}
	require.False(t, tb.TryTake(), "spent")
	tb.advance(2 * time.Second)
	require.False(t, tb.TryTake(), "2 s refill less than a token")
	tb.advance(time.Second)
	require.True(t, tb.TryTake(), "3 s: one token")

	// Take waits for the next one: 3 s.
	require.NoError(t, tb.Take(context.Background()))
	require.Equal(t, 3*time.Second, tb.slept())

	// A long idle refills the burst, no more.
	tb.advance(time.Hour)
	require.Equal(t, 5, tb.Available())
}

func TestTokenBucketPause(t *testing.T) {
	tb := newTestBucket(600, 10)
	tb.Pause(tb.clock().Add(30 * time.Second))
	require.False(t, tb.TryTake(), "paused: nothing, even with tokens")
	require.Zero(t, tb.Available())
	require.NoError(t, tb.Take(context.Background()))
	require.GreaterOrEqual(t, tb.slept(), 30*time.Second, "Take waits the pause out")
	// An earlier Pause does not shorten a longer one.
	tb.Pause(tb.clock().Add(time.Minute))
	tb.Pause(tb.clock().Add(time.Second))
	tb.advance(2 * time.Second)
	require.False(t, tb.TryTake())
}

func TestTokenBucketTakeEndsWithContext(t *testing.T) {
	tb := NewTokenBucket(1, 1, nil)
	require.True(t, tb.TryTake())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, tb.Take(ctx), context.Canceled)
}

// TestClientTakesFromBudget: every attempt, retries included, takes a
// token; a 429's Retry-After pauses the budget for every caller.
func TestClientTakesFromBudget(t *testing.T) {
	tb := newTestBucket(60, 100)
	var n atomic.Int32
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "20")
			writeJSON(w, 429, map[string]any{"error": "Too many requests detected from your account token"})
			return
		}
		writeJSON(w, 200, map[string]any{"id": 3, "name": "Van"})
	}, func(o *Options) { o.Budget = tb; o.Now = tb.clock })
	_, err := h.c.GetVehicle(context.Background(), 3)
	require.NoError(t, err)
	require.Equal(t, int32(2), n.Load())
	require.Equal(t, []time.Duration{20 * time.Second}, h.slept(), "the retry waited Retry-After")
	require.GreaterOrEqual(t, tb.slept(), 20*time.Second, "the budget was paused for 20 s: the retry's token waited too")

	// Another caller, while the pause lasts, waits for it in the budget.
	tb2 := newTestBucket(600, 10)
	tb2.Pause(tb2.clock().Add(20 * time.Second))
	h2 := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": 3, "name": "Van"})
	}, func(o *Options) { o.Budget = tb2; o.Now = tb2.clock })
	_, err = h2.c.GetVehicle(context.Background(), 3)
	require.NoError(t, err)
	require.GreaterOrEqual(t, tb2.slept(), 20*time.Second)
	require.Empty(t, h2.slept(), "no request was sent, and so none refused, before the pause was over")
}

// TestPrepaid: a caller that took its token first sends its first request
// without waiting, and any further one only if a token is free: otherwise
// ErrBudgetSpent, nothing sent.
func TestPrepaid(t *testing.T) {
	tb := newTestBucket(1, 1)
	require.True(t, tb.TryTake()) // the caller's own token: the bucket is empty
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": 3, "name": "Van"})
	}, func(o *Options) { o.Budget = tb; o.Now = tb.clock })
	ctx := Prepaid(context.Background(), 1)
	_, err := h.c.GetVehicle(ctx, 3)
	require.NoError(t, err)
	_, err = h.c.GetVehicle(ctx, 3)
	require.ErrorIs(t, err, ErrBudgetSpent)
	require.False(t, errors.Is(err, ErrNotFound))
	require.Equal(t, int32(1), h.calls.Load(), "the refused request was not sent")
	require.Zero(t, tb.slept(), "nobody waited on the budget")
	tb.advance(time.Minute)
	_, err = h.c.GetVehicle(ctx, 3)
	require.NoError(t, err, "a free token is taken")

	// A Prepaid request is not retried inside the client: its caller
	// retries.
	var n atomic.Int32
	h429 := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "20")
		writeJSON(w, 429, map[string]any{"error": "Too many requests"})
	}, func(o *Options) { o.Budget = newTestBucket(600, 10); o.MaxRetries = 3 })
	_, err = h429.c.GetVehicle(Prepaid(context.Background(), 1), 3)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 20*time.Second, ae.RetryAfter)
	require.Equal(t, int32(1), n.Load())
	require.Empty(t, h429.slept(), "no back-off slept")

	// Without a budget, Prepaid changes nothing.
	free := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": 3, "name": "Van"})
	})
	for range 3 {
		_, err = free.c.GetVehicle(Prepaid(context.Background(), 0), 3)
		require.NoError(t, err)
	}
}
