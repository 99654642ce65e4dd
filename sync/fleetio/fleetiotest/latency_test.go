package fleetiotest_test

import (
	"context"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// TestLatency: every API request waits Options.Latency, concurrent ones at
// the same time (the wait is outside the fake's lock), and a caller that
// gives up is not held.
func TestLatency(t *testing.T) {
	const lat = 100 * time.Millisecond
	e := newEnv(t, fleetiotest.Options{Latency: lat})
	c, err := fleetio.New(fleetio.Options{BaseURL: e.api, APIKey: apiKey, AccountToken: account, MaxRetries: -1})
	require.NoError(t, err)

	t.Run("each request waits", func(t *testing.T) {
		start := time.Now()
		_, err := c.Me(context.Background())
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), lat)
	})
	t.Run("concurrent requests wait side by side", func(t *testing.T) {
		const n = 8
		start := time.Now()
		var wg gosync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() {
				_, err := c.GetVehicle(context.Background(), e.van.ID)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		took := time.Since(start)
		require.GreaterOrEqual(t, took, lat)
		// Serial would be n*lat (800 ms); generous for a loaded CI machine.
		require.Less(t, took, time.Duration(n)*lat/2, "requests were served one at a time")
	})
	t.Run("a caller that gives up is not held", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_, err := c.Me(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}
