package bookings_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// status is the box's status as it arrives at the cloud (the path Serve
// takes for a status message: stored, then the OnStatus hooks).
func (e *env) status(t testing.TB, online bool, rev uint64) {
	t.Helper()
	require.NoError(t, e.cloud.ReceiveStatus(boxID, wire.Status{V: wire.Version, Box: boxID, Online: online, Revision: rev}))
}

func (e *env) booking(t testing.TB, id int64) bookings.Booking {
	t.Helper()
	bk, ok, err := e.store.Booking(id)
	require.NoError(t, err)
	require.True(t, ok, "no booking %d", id)
	return bk
}

func (e *env) boxRev(t testing.TB) uint64 {
	t.Helper()
	rev, err := e.cloud.Revision(boxID)
	require.NoError(t, err)
	return rev
}

func TestLiveWhenTheBoxHoldsTheGrant(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.cloud.OnStatus(e.b.HandleStatus)
	from := e.clock.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	a := e.booked(t, e.van, e.ada, from, from.Add(4*time.Hour))

	bk := e.booking(t, a.ID)
	rev := e.boxRev(t)
	require.Equal(t, rev, bk.GrantRev, "the grant's put is the box's last revision")
	require.True(t, bk.LiveAt.IsZero(), "not live before the box says so")
	link := bk.AccessLink
	code, page := get(t, link)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "Your code is on its way to Depot North")
	require.Contains(t, page, "contact your fleet admin")
	require.NotContains(t, page, "Your code is active")

	// A box behind: not live, its revision noted.
	e.status(t, true, rev-1)
	bk = e.booking(t, a.ID)
	require.True(t, bk.LiveAt.IsZero())
	require.Equal(t, rev-1, bk.BoxRev)
	require.Contains(t, bookings.LiveText(bk, nil), "not yet (box at rev")

	// The box holds it: live since the status arrived.
	before := time.Now()
	e.status(t, true, rev)
	bk = e.booking(t, a.ID)
	require.False(t, bk.LiveAt.IsZero(), "live once the box holds the revision")
	require.False(t, bk.LiveAt.Before(before.Add(-time.Second)))
	require.Contains(t, bookings.LiveText(bk, nil), "live since ")
	_, page = get(t, link)
	require.Contains(t, page, "Your code is active on Depot North since "+bk.LiveAt.In(bk.From.Location()).Format("Mon 2 Jan 2006 15:04 (-07:00)"), "in the booking's zone, like its window")
	require.NotContains(t, page, "on its way")
	liveAt := bk.LiveAt

	// A writer holding the booking from before it went live does not undo
	// it (the same grant).
	stale := bk
	stale.LiveAt, stale.BoxRev = time.Time{}, 0
	require.NoError(t, e.store.PutBooking(stale, ""))
	require.True(t, e.booking(t, a.ID).LiveAt.Equal(liveAt))

	// A new window is a new grant: not live until the box holds its revision.
	from2 := from.Add(30 * time.Minute)
	_, err := e.f.UpdateAssignment(a.ID, func(x *fleetio.VehicleAssignment) { x.StartedAt = from2 })
	require.NoError(t, err)
	e.settle(t)
	bk = e.booking(t, a.ID)
	require.True(t, bk.From.Equal(from2))
	require.Greater(t, bk.GrantRev, rev)
	require.True(t, bk.LiveAt.IsZero(), "a changed grant is not live until the box reports it")
	_, page = get(t, link)
	require.Contains(t, page, "on its way")
	e.status(t, true, rev) // the old revision again (a retained status)
	require.True(t, e.booking(t, a.ID).LiveAt.IsZero())
	e.status(t, true, bk.GrantRev)
	require.False(t, e.booking(t, a.ID).LiveAt.IsZero())
}

func TestLiveNewDriverNewPIN(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.cloud.OnStatus(e.b.HandleStatus)
	from := e.clock.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	a := e.booked(t, e.van, e.ada, from, time.Time{})
	e.status(t, true, e.boxRev(t))
	bk := e.booking(t, a.ID)
	require.False(t, bk.LiveAt.IsZero())

	// Another driver: a new PIN, so a new grant revision, not live.
	_, err := e.f.UpdateAssignment(a.ID, func(x *fleetio.VehicleAssignment) { x.ContactID = e.bob.ID })
	require.NoError(t, err)
	e.settle(t)
	bk2 := e.booking(t, a.ID)
	require.Equal(t, e.bob.ID, bk2.ContactID)
	require.Greater(t, bk2.GrantRev, bk.GrantRev)
	require.True(t, bk2.LiveAt.IsZero())
	e.status(t, true, bk2.GrantRev)
	require.False(t, e.booking(t, a.ID).LiveAt.IsZero())
}

func TestLiveCatchUpFromKeptStatus(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	from := e.clock.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	a := e.booked(t, e.van, e.ada, from, time.Time{})
	b2 := e.booked(t, e.truck, e.bob, from, time.Time{})

	// An older bridge's booking: no grant revision recorded.
	old := e.booking(t, b2.ID)
	old.GrantRev, old.GrantAt = 0, time.Time{}
	require.NoError(t, e.store.PutBooking(old, ""))

	// The status arrived while the bridge was not listening (no hook).
	sent := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	require.NoError(t, e.cloud.SetStatus(boxID, wire.Status{V: wire.Version, Box: boxID, Online: true,
		Revision: e.boxRev(t), Clock: sent, ClockTrusted: true}))
	require.True(t, e.booking(t, a.ID).LiveAt.IsZero())

	e.clock.Advance(5 * time.Minute) // the status's clock is in the past
	n, err := e.b.CatchUpLive(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	bk := e.booking(t, a.ID)
	require.True(t, bk.LiveAt.Equal(sent), "live since the box sent it (its clock trusted): %s", bk.LiveAt)
	bk2 := e.booking(t, b2.ID)
	require.Equal(t, e.boxRev(t), bk2.GrantRev, "the older booking takes the box's revision")
	require.False(t, bk2.LiveAt.IsZero())

	n, err = e.b.CatchUpLive(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to catch up")
}

func TestNotLiveAlertOncePerGrant(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	e.cloud.OnStatus(e.b.HandleStatus)
	ctx := context.Background()
	from := e.clock.Now().Add(time.Hour).UTC().Truncate(time.Second)
	// The van's booking goes live; then the box goes offline, and the
	// truck's booking is made: its grant waits.
	van := e.booked(t, e.van, e.ada, from, from.Add(4*time.Hour))
	e.status(t, true, e.boxRev(t))
	require.False(t, e.booking(t, van.ID).LiveAt.IsZero())
	behind := e.boxRev(t)
	e.status(t, false, behind)
	truck := e.booked(t, e.truck, e.bob, from, from.Add(4*time.Hour))
	bk := e.booking(t, truck.ID)
	require.Greater(t, bk.GrantRev, behind)
	require.True(t, bk.LiveAt.IsZero())

	n, err := e.b.CheckLive(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "an hour before the start: too early")

	e.clock.Advance(51 * time.Minute) // 9 minutes before the start
	n, err = e.b.CheckLive(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the truck's, not the van's (live)")
	require.Eventually(t, func() bool { return len(e.notes.of(notify.KindNotLive)) == 1 }, 10*time.Second, 5*time.Millisecond)
	m := e.notes.of(notify.KindNotLive)[0]
	require.Equal(t, "admin@example.com", m.to.Email)
	require.Equal(t, "Depot North", m.data[notify.DataBox])
	require.Equal(t, "Bob Smith", m.data[notify.DataDriver])
	require.Equal(t, "Truck 2", m.data[notify.DataVehicle])
	require.Equal(t, "offline, last at revision "+utoa(behind), m.data[notify.DataBoxStatus])
	require.Equal(t, utoa(bk.GrantRev), m.data[notify.DataRevision])
	require.NotEmpty(t, m.data[notify.DataAt], "since when the grant waits")

	n, err = e.b.CheckLive(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "once per grant, not every round")
	require.Equal(t, uint64(1), e.b.Stats().NotLiveAlerts)

	// The window changes (a new grant) and the box misses it too: raised again.
	from2 := e.clock.Now().Add(5 * time.Minute).UTC().Truncate(time.Second)
	_, err = e.f.UpdateAssignment(truck.ID, func(x *fleetio.VehicleAssignment) { x.StartedAt = from2 })
	require.NoError(t, err)
	e.settle(t)
	require.Greater(t, e.booking(t, truck.ID).GrantRev, bk.GrantRev)
	n, err = e.b.CheckLive(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Eventually(t, func() bool { return len(e.notes.of(notify.KindNotLive)) == 2 }, 10*time.Second, 5*time.Millisecond)

	// The box comes back and applies it: no more alerts.
	e.status(t, true, e.boxRev(t))
	require.False(t, e.booking(t, truck.ID).LiveAt.IsZero())
	n, err = e.b.CheckLive(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, uint64(2), e.b.Stats().NotLiveAlerts)
}

func utoa(v uint64) string { return strconv.FormatUint(v, 10) }
