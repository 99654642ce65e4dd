package bookings_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// removed is what a box sends when its sensor finds a locked slot empty:
// the slot, no key.
func (e *env) removed(at time.Time, slot int) box.Event {
	return e.ev(at, box.EventSlotUnexpected, func(ev *box.Event) { ev.Slot, ev.Detail = slot, "key removed from a locked slot" })
}

// overdueEvents counts the key_overdue events of a booking.
func (e *env) overdueEvents(t *testing.T, id int64) int {
	t.Helper()
	evs, err := e.b.BookingEvents(id)
	require.NoError(t, err)
	n := 0
	for _, ev := range evs {
		if ev.Type == bookings.EventKeyOverdue {
			n++
		}
	}
	return n
}

// overdueVan books the van for the hour around now, has its key taken,
// and moves past the window's end until CheckOverdue raises it.
func (e *env) overdueVan(t *testing.T) fleetio.VehicleAssignment {
	t.Helper()
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)
	e.clock.Advance(2 * time.Hour)
	n, err := e.b.CheckOverdue(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []int64{van.ID}, e.overdueKeys(t))
	return van
}

// A cloned fob and a dummy seated past the settle time clear an overdue
// alert; pulling the dummy out (slot_unexpected on the key's slot, no key
// id) undoes the return: the alert is raised again (the same one: no
// second key_overdue, nobody told twice of it), the return is marked
// unconfirmed and the admin is told why.
func TestRemovalAfterReturnRestoresOverdue(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	van := e.overdueVan(t)
	require.Len(t, e.notes.of(notify.KindKeyOverdue), 2, "driver and admin")

	back := e.clock.Now()
	e.send(t, e.giveBackBy(back, keyID, "01000734E0", 3, box.ReturnByFob, 2000)...)
	require.Empty(t, e.overdueKeys(t), "a return the sensor confirmed")

	e.send(t, e.removed(back.Add(3*time.Minute), 3))
	require.Equal(t, []int64{van.ID}, e.overdueKeys(t), "raised again")
	n, err := e.b.CheckOverdue(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "not a new alert")
	require.Equal(t, 1, e.overdueEvents(t, van.ID))
	require.Len(t, e.notes.of(notify.KindKeyOverdue), 2, "nobody told twice")

	e.alertsSent(t)
	told := e.notes.of(notify.KindReturnUnconfirmed)
	require.Len(t, told, 1, "the admin is told")
	require.Equal(t, "admin@example.com", told[0].to.Email)
	require.Equal(t, "Van 7", told[0].data["key"])
	require.Contains(t, told[0].data["reason"], "removed from its locked slot 2m55s after the return")
	require.EqualValues(t, 1, e.b.Stats().ReturnsUnconfirmed)

	evs, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	last := evs[len(evs)-1]
	require.Equal(t, box.EventSlotUnexpected, last.Type, "the removal is on the booking")
	require.Equal(t, keyID, last.KeyID, "found from the slot")
	for _, ev := range evs {
		if ev.Type == box.EventKeyReturned {
			require.True(t, ev.Unconfirmed, "the return is no longer proof")
			require.Contains(t, ev.Detail, "removed from its locked slot")
		}
	}

	// The key itself, seated and confirmed, clears it again.
	e.send(t, e.giveBack(e.clock.Now().Add(time.Hour), keyID, "01000734E0", 3)...)
	require.Empty(t, e.overdueKeys(t))
}

// A fake return inside the window, pulled out afterwards, leaves the key
// out with its booking: it is overdue when the window ends.
func TestRemovalAfterReturnInWindowStillOverdue(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)
	e.send(t, e.giveBack(now.Add(-10*time.Minute), keyID, "01000734E0", 3)...)
	e.send(t, e.removed(now.Add(-9*time.Minute), 3))

	e.clock.Advance(2 * time.Hour)
	n, err := e.b.CheckOverdue(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []int64{van.ID}, e.overdueKeys(t))
	e.alertsSent(t)
	require.Len(t, e.notes.of(notify.KindReturnUnconfirmed), 1)
}

// What does not undo a return: a key seated (not removed), a removal on
// another key's slot, one more than a day later, one after the key was
// taken again.
func TestRemovalAfterReturnLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(e *env, t *testing.T, back time.Time)
	}{
		{"key appeared", func(e *env, t *testing.T, back time.Time) {
			e.send(t, e.ev(back.Add(time.Minute), box.EventSlotUnexpected, func(ev *box.Event) {
				ev.Slot, ev.Detail = 3, "key appeared in a locked slot"
			}))
		}},
		{"another slot", func(e *env, t *testing.T, back time.Time) { e.send(t, e.removed(back.Add(time.Minute), 4)) }},
		{"over a day later", func(e *env, t *testing.T, back time.Time) {
			e.send(t, e.removed(back.Add(25*time.Hour), 3))
		}},
		{"taken again first", func(e *env, t *testing.T, back time.Time) {
			e.send(t, e.ev(back.Add(time.Minute), box.EventKeyTaken, func(ev *box.Event) {
				ev.Slot, ev.KeyID, ev.Purpose = 3, keyID, box.PurposeRemote
			}))
			e.send(t, e.removed(back.Add(2*time.Minute), 3))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{truck: true})
			e.overdueVan(t)
			back := e.clock.Now()
			e.send(t, e.giveBack(back, keyID, "01000734E0", 3)...)
			require.Empty(t, e.overdueKeys(t))

			tc.after(e, t, back)
			require.Empty(t, e.overdueKeys(t), "the return stands")
			e.alertsSent(t)
			require.Empty(t, e.notes.of(notify.KindReturnUnconfirmed))
		})
	}
}
