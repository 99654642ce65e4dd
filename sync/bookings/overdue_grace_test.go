package bookings_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// A driver a few minutes late is not told off: the key is overdue only
// OverdueGrace after the end. A box that says it is offline may hold the
// return in its outbox: it is judged once it is back.
func TestOverdueGraceAndOfflineBox(t *testing.T) {
	e := newEnv(t, envOpts{truck: true, grace: 10 * time.Minute})
	ctx := context.Background()
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)

	e.clock.Advance(time.Hour + 5*time.Minute) // 5 min past the end
	n, err := e.b.CheckOverdue(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "within the grace")

	e.clock.Advance(10 * time.Minute)
	require.NoError(t, e.cloud.SetStatus(boxID, wire.Status{V: wire.Version, Box: boxID, Online: false}))
	n, err = e.b.CheckOverdue(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the box is offline: not judged")
	require.Empty(t, e.notes.of(notify.KindKeyOverdue))

	require.NoError(t, e.cloud.SetStatus(boxID, wire.Status{V: wire.Version, Box: boxID, Online: true}))
	n, err = e.b.CheckOverdue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, e.notes.of(notify.KindKeyOverdue), 2, "driver and admin")
}
