package bookings

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// testBudgets opens n replicas' budgets (each on a pool of its own) of one
// name on a new database.
func testBudgets(t *testing.T, n, perMinute, burst int) []*PostgresBudget {
	t.Helper()
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("a budget shared in PostgreSQL: bbolt's replica is one process, its budget fleetio.TokenBucket (tested in sync/fleetio)")
	}
	url := pgtest.New(t)
	OpenTestPostgresStore(t, url) // the migrations
	var out []*PostgresBudget
	for range n {
		pool, err := pgdb.Open(context.Background(), url, pgdb.Options{MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		b, err := NewPostgresBudget(context.Background(), pool, "fleetio", perMinute, burst)
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

// TestPostgresBudgetShared: replicas taking at once share one bucket: the
// burst is handed out once between them, a pause holds them all.
func TestPostgresBudgetShared(t *testing.T) {
	bs := testBudgets(t, 3, 6, 10) // a token per 10 s: none refills during the test
	var took atomic.Int64
	var wg sync.WaitGroup
	for _, b := range bs {
		for range 4 {
			wg.Go(func() {
				for b.TryTake() {
					took.Add(1)
				}
			})
		}
	}
	wg.Wait()
	require.EqualValues(t, 10, took.Load(), "the burst, once, between the replicas")
	n, err := bs[1].Available(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)

	// A waiting Take tells the wait: about 10 s for the next token.
	wait, ok, err := bs[2].take(context.Background())
	require.NoError(t, err)
	require.False(t, ok)
	require.InDelta(t, 10*time.Second, wait, float64(time.Second))
}

// TestPostgresBudgetPause: a 429 seen by one replica pauses every one.
func TestPostgresBudgetPause(t *testing.T) {
	bs := testBudgets(t, 2, 6000, 50)
	require.True(t, bs[1].TryTake())
	bs[0].Pause(time.Now().Add(time.Hour))
	require.False(t, bs[1].TryTake())
	wait, ok, err := bs[1].take(context.Background())
	require.NoError(t, err)
	require.False(t, ok)
	require.Greater(t, wait, 59*time.Minute, "the pause's end, not the refill's")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, bs[0].Take(ctx), context.DeadlineExceeded)
}

// TestPostgresBudgetRate: replicas taking as fast as they can stay at the
// rate: burst plus the refill of the time taken.
func TestPostgresBudgetRate(t *testing.T) {
	bs := testBudgets(t, 3, 600, 5) // 10 a second
	start := time.Now()
	var took atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	for _, b := range bs {
		wg.Go(func() {
			for b.Take(ctx) == nil {
				took.Add(1)
			}
		})
	}
	wg.Wait()
	max := 5 + int64(time.Since(start).Seconds()*10) + 1
	require.LessOrEqual(t, took.Load(), max)
	require.GreaterOrEqual(t, took.Load(), int64(10), "the replicas got the rate between them")
}
