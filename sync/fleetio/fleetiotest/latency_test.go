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
		// The fake's wait is a barrier: it lets the requests go only once
		// all n wait at the same time, which they cannot if the fake
		// serves them one at a time (the wait inside its lock). No clock
		// decides: a loaded machine only takes longer.
		const n = 8
		var (
			mu      gosync.Mutex
			waiting int
			all     = make(chan struct{})
		)
		e := newEnv(t, fleetiotest.Options{Latency: lat, Wait: func(ctx context.Context, d time.Duration) error {
			require.Equal(t, lat, d)
			mu.Lock()
			if waiting++; waiting == n {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}})
		c, err := fleetio.New(fleetio.Options{BaseURL: e.api, APIKey: apiKey, AccountToken: account, MaxRetries: -1})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg gosync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() {
				_, err := c.GetVehicle(ctx, e.van.ID)
				errs <- err
			})
		}
		select {
		case <-all:
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatal("requests were served one at a time: never all waiting at once")
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})
	t.Run("a caller that gives up is not held", func(t *testing.T) {
		// An hour's latency: only the caller's deadline can end the call,
		// however loaded the machine.
		e := newEnv(t, fleetiotest.Options{Latency: time.Hour})
		c, err := fleetio.New(fleetio.Options{BaseURL: e.api, APIKey: apiKey, AccountToken: account, MaxRetries: -1})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_, err = c.Me(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Empty(t, e.f.Requests(), "the fake answered nobody")
	})
}
