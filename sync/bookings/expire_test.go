package bookings_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// Fleetio sends nothing when an assignment's end simply passes: the
// maintenance round ends the booking, revokes its grant and clears the
// Keycafe fields, and tells nobody (nothing was cancelled).
func TestExpireEndedAtTheWindowsEnd(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	a := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	later := e.booked(t, e.truck, e.bob, now.Add(-time.Hour), now.Add(5*time.Hour))
	e.settle(t)

	n, err := e.b.ExpireEnded(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing is over yet")

	e.clock.Advance(2 * time.Hour)
	n, err = e.b.ExpireEnded(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	bk, ok, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, bookings.BookingEnded, bk.State)
	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok)
	require.True(t, g.Revoked)
	fa, _ := e.f.Assignment(a.ID)
	for _, f := range []string{fleetio.FieldAccessCode, fleetio.FieldAccessLink, fleetio.FieldAccessInstructions} {
		require.Nil(t, fa.CustomFields[f], f)
	}
	require.Empty(t, e.notes.of(notify.KindBookingCancelled))

	// The other booking is untouched, and a second round does nothing.
	bk, _, err = e.store.Booking(later.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.BookingActive, bk.State)
	patches := e.patches()
	n, err = e.b.ExpireEnded(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, patches, e.patches())
}

// A window Fleetio extended without a webhook is followed, not ended.
func TestExpireEndedFollowsAnExtension(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	a := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.settle(t)

	e.webhooks(false)
	newEnd := time.Now().Add(5 * time.Hour).UTC().Truncate(time.Second)
	_, err := e.f.UpdateAssignment(a.ID, func(x *fleetio.VehicleAssignment) { x.EndedAt = &newEnd })
	require.NoError(t, err)
	e.clock.Advance(2 * time.Hour)

	n, err := e.b.ExpireEnded(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	bk, _, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.BookingActive, bk.State)
	require.True(t, bk.Until.Equal(newEnd), "until %s", bk.Until)
	g, _ := e.grant(t, bookings.GrantID(a.ID))
	require.False(t, g.Revoked)
	require.True(t, g.Until.Equal(newEnd))
}

// A Fleetio error stops the round with the booking as it was; after a
// Disconnect the kept bookings end at the bridge alone.
func TestExpireEndedErrorsAndDisconnected(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	a := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.settle(t)
	e.clock.Advance(2 * time.Hour)

	e.failRequest(1, 500)
	_, err := e.b.ExpireEnded(ctx)
	require.Error(t, err)
	bk, _, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.BookingActive, bk.State)

	e.clock.Advance(-2 * time.Hour) // in progress at the Disconnect: kept
	_, err = e.b.Disconnect(ctx)
	require.NoError(t, err)
	e.clock.Advance(2 * time.Hour)
	patches := e.patches()
	n, err := e.b.ExpireEnded(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	bk, _, err = e.store.Booking(a.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.BookingEnded, bk.State)
	g, _ := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, g.Revoked)
	require.Equal(t, patches, e.patches(), "no Fleetio call once disconnected")
}
