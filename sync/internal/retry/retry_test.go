package retry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/internal/retry"
)

func TestCeiling(t *testing.T) {
	p := retry.Policy{Base: time.Second, Cap: 10 * time.Second}
	var got []time.Duration
	for n := range 7 {
		got = append(got, p.Ceiling(n))
	}
	require.Equal(t, []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 10 * time.Second, 10 * time.Second}, got, "n < 1 counts as 1")
	require.Equal(t, 10*time.Second, p.Ceiling(1<<30), "no overflow")
	huge := retry.Policy{Base: time.Second, Cap: time.Duration(1<<63 - 1)}
	require.Positive(t, huge.Ceiling(100), "no overflow near the largest duration")
	require.Equal(t, 3*time.Second, retry.Policy{Base: 5 * time.Second, Cap: 3 * time.Second}.Ceiling(1), "a base above the cap is the cap")
}

// Full jitter above Base: the draw spans [Base, ceiling] exactly.
func TestDelayFullJitter(t *testing.T) {
	var asked []int64
	low := func(n int64) int64 { asked = append(asked, n); return 0 }
	high := func(n int64) int64 { return n - 1 }
	p := retry.Policy{Base: 100 * time.Millisecond, Cap: time.Second}
	for n, ceil := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 9: time.Second} {
		p.Rand = low
		require.Equal(t, 100*time.Millisecond, p.Delay(n, 0), "retry %d at its least", n)
		p.Rand = high
		require.Equal(t, ceil, p.Delay(n, 0), "retry %d at its most", n)
	}
	require.Equal(t, []int64{int64(100*time.Millisecond) + 1, int64(300*time.Millisecond) + 1, int64(900*time.Millisecond) + 1},
		sorted(asked), "no draw for the first retry, whose range is one value")

	p.Rand = nil // math/rand/v2
	for range 1000 {
		d := p.Delay(3, 0)
		require.GreaterOrEqual(t, d, 100*time.Millisecond)
		require.LessOrEqual(t, d, 400*time.Millisecond)
	}
}

func sorted(a []int64) []int64 {
	out := slices.Clone(a)
	slices.Sort(out)
	return out
}

// A server's Retry-After is a floor, capped at MaxRetryAfter (Cap if unset).
func TestDelayRetryAfterFloor(t *testing.T) {
	p := retry.Policy{Base: time.Second, Cap: 10 * time.Second, Rand: func(int64) int64 { return 0 }}
	require.Equal(t, 7*time.Second, p.Delay(1, 7*time.Second))
	require.Equal(t, 10*time.Second, p.Delay(1, time.Hour), "capped at Cap")
	require.Equal(t, 4*time.Second, retry.Policy{Base: time.Second, Cap: 10 * time.Second, Rand: func(n int64) int64 { return n - 1 }}.Delay(3, 2*time.Second),
		"a floor below the draw changes nothing")
	p.MaxRetryAfter = time.Minute
	require.Equal(t, time.Minute, p.Delay(1, time.Hour), "capped at MaxRetryAfter")
	require.Equal(t, 30*time.Second, p.Delay(1, 30*time.Second), "above Cap up to MaxRetryAfter")
	require.Equal(t, time.Second, p.Delay(1, -time.Second))
}

// script is a retried call whose attempts answer in turn.
type script struct {
	answers []error
	outs    []retry.Outcome
	calls   int
	waits   []time.Duration
}

func (s *script) try(ctx context.Context) (int, retry.Outcome, error) {
	i := s.calls
	s.calls++
	if i >= len(s.answers) || s.answers[i] == nil {
		return 42, retry.Outcome{}, nil
	}
	return 0, s.outs[i], s.answers[i]
}

func (s *script) loop(attempts int) retry.Loop {
	return retry.Loop{
		Policy:   retry.Policy{Base: time.Second, Cap: 8 * time.Second, Rand: func(n int64) int64 { return n - 1 }},
		Attempts: attempts,
		Sleep: func(ctx context.Context, d time.Duration) error {
			s.waits = append(s.waits, d)
			return ctx.Err()
		},
	}
}

var (
	errBusy  = errors.New("HTTP 503")
	errLimit = errors.New("HTTP 429")
	errBad   = errors.New("HTTP 400")
	again    = retry.Outcome{Retry: true}
)

func TestDo(t *testing.T) {
	tests := []struct {
		name     string
		attempts int
		answers  []error
		outs     []retry.Outcome
		want     error // nil: success
		wantMsg  string
		calls    int
		waits    []time.Duration
	}{
		{name: "first try", attempts: 4, calls: 1},
		{name: "retried then sent", attempts: 4, answers: []error{errBusy, errBusy, nil}, outs: []retry.Outcome{again, again},
			calls: 3, waits: []time.Duration{time.Second, 2 * time.Second}},
		{name: "Retry-After honoured", attempts: 4, answers: []error{errLimit, nil}, outs: []retry.Outcome{{Retry: true, RetryAfter: 5 * time.Second}},
			calls: 2, waits: []time.Duration{5 * time.Second}},
		{name: "final answer not retried", attempts: 4, answers: []error{errBusy, errBad}, outs: []retry.Outcome{again, {}},
			want: errBad, wantMsg: "HTTP 400", calls: 2, waits: []time.Duration{time.Second}},
		{name: "attempts run out", attempts: 3, answers: []error{errBusy, errBusy, errBusy, errBusy}, outs: []retry.Outcome{again, again, again, again},
			want: errBusy, wantMsg: "giving up after 3 attempts: HTTP 503", calls: 3, waits: []time.Duration{time.Second, 2 * time.Second}},
		{name: "one attempt: its error as is", attempts: 1, answers: []error{errBusy}, outs: []retry.Outcome{again},
			want: errBusy, wantMsg: "HTTP 503", calls: 1},
		{name: "zero attempts count as one", attempts: 0, answers: []error{errBusy}, outs: []retry.Outcome{again},
			want: errBusy, wantMsg: "HTTP 503", calls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{answers: tt.answers, outs: tt.outs}
			v, err := retry.Do(context.Background(), s.loop(tt.attempts), s.try)
			require.Equal(t, tt.calls, s.calls)
			require.Equal(t, tt.waits, s.waits)
			if tt.want == nil {
				require.NoError(t, err)
				require.Equal(t, 42, v)
				return
			}
			require.ErrorIs(t, err, tt.want)
			require.EqualError(t, err, tt.wantMsg)
			require.Zero(t, v)
		})
	}
}

func TestDoOnRetry(t *testing.T) {
	s := &script{answers: []error{errBusy, errBusy}, outs: []retry.Outcome{again, again}}
	l := s.loop(4)
	var heard []string
	l.OnRetry = func(_ context.Context, attempt int, wait time.Duration, err error) {
		heard = append(heard, fmt.Sprintf("%d %v %v", attempt, wait, err))
	}
	_, err := retry.Do(context.Background(), l, s.try)
	require.NoError(t, err)
	require.Equal(t, []string{"1 1s HTTP 503", "2 2s HTTP 503"}, heard)
}

// The caller giving up ends the loop wherever it lands: before the first
// attempt, during an attempt, or during the wait. Each case is reached by
// the test's own hand, with no timer.
func TestDoContextEnds(t *testing.T) {
	t.Run("before the first attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s := &script{}
		_, err := retry.Do(ctx, s.loop(4), s.try)
		require.ErrorIs(t, err, context.Canceled)
		require.EqualError(t, err, "context canceled")
		require.Zero(t, s.calls)
	})
	t.Run("during an attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &script{}
		calls := 0
		_, err := retry.Do(ctx, s.loop(4), func(ctx context.Context) (int, retry.Outcome, error) {
			calls++
			cancel() // the request sees its context end
			return 0, again, fmt.Errorf("request: %w", ctx.Err())
		})
		require.ErrorIs(t, err, context.Canceled)
		require.EqualError(t, err, "context canceled (last attempt: request: context canceled)")
		require.Equal(t, 1, calls, "no retry after the caller gave up")
		require.Empty(t, s.waits)
	})
	t.Run("during the wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &script{answers: []error{errBusy, errBusy}, outs: []retry.Outcome{again, again}}
		l := s.loop(4)
		l.Sleep = func(ctx context.Context, d time.Duration) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		_, err := retry.Do(ctx, l, s.try)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, errBusy, "with what the last attempt saw")
		require.EqualError(t, err, "context canceled (last attempt: HTTP 503)")
		require.Equal(t, 1, s.calls)
	})
}

// Sleep is a real timer that the context cuts short.
func TestSleep(t *testing.T) {
	require.NoError(t, retry.Sleep(context.Background(), 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, retry.Sleep(ctx, time.Hour), context.Canceled)
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 2 ", 2 * time.Second},
		{"1.5", 1500 * time.Millisecond},
		{"0", 0},
		{"-3", 0},
		{"NaN", 0},
		{"1e300", time.Duration(1<<63 - 1)},
		{now.Add(12 * time.Second).Format(http.TimeFormat), 12 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, retry.RetryAfter(tt.in, now), "%q", tt.in)
	}
}
