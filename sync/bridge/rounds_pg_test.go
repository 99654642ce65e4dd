package bridge

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.New(t), pgdb.Options{})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, pgdb.Migrate(ctx, pool, "bridge", migrations(), nil))
	return pool
}

// Replicas asking for the same round at once: exactly one gets it; the
// next round goes to one replica again.
func TestTakeRoundOncePerRound(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	const replicas = 5
	for round := 0; round < 3; round++ {
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range replicas {
			wg.Go(func() {
				ok, err := takeRound(ctx, pool, "maintenance", fmt.Sprintf("replica-%d", i), time.Hour)
				require.NoError(t, err)
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		require.EqualValues(t, 1, won.Load(), "round %d", round)
		// Another job's round is its own.
		ok, err := takeRound(ctx, pool, "other", "replica-0", time.Hour)
		require.NoError(t, err)
		require.Equal(t, round == 0, ok, "the other job's round was taken once, in the first pass")
		// The hour passes: put the recorded round one back, as the
		// database's clock moving on would leave it.
		_, err = pool.Exec(ctx, `UPDATE bridge_rounds SET round = round - 1 WHERE job = 'maintenance'`)
		require.NoError(t, err)
	}
}
