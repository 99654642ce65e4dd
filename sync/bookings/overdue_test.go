package bookings_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

func TestOverdueRaisedOnceAndNotified(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)

	n, err := e.b.CheckOverdue(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the window has not ended")

	e.clock.Advance(2 * time.Hour)
	n, err = e.b.CheckOverdue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.EqualValues(t, 1, e.b.Stats().Overdue)

	got := e.notes.of(notify.KindKeyOverdue)
	require.Len(t, got, 2)
	driver, admin := got[0], got[1]
	require.Equal(t, e.ada.ID, driver.contactID)
	require.Equal(t, "ada@example.com", driver.to.Email)
	require.Equal(t, "+15550100", driver.to.Phone)
	require.Equal(t, "admin@example.com", admin.to.Email)
	for _, x := range got {
		require.Equal(t, "Van 7", x.data["vehicle"])
		require.Equal(t, "Depot North", x.data["box"])
		require.Equal(t, "12 Dock Road, bay 4", x.data["location"])
		require.Equal(t, "Van 7", x.data["key"], "the key's name")
		require.Contains(t, x.data["driver"], "Ada")
		require.NotEmpty(t, x.data[notify.DataEnd])
		require.NotContains(t, x.data, "pin")
	}

	evs, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.EventKeyOverdue, evs[len(evs)-1].Type)

	t.Run("raised once", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		n, err := e.b.CheckOverdue(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Len(t, e.notes.of(notify.KindKeyOverdue), 2)
		require.EqualValues(t, 1, e.b.Stats().Overdue)
	})
	t.Run("returned late: attached, nothing cleared", func(t *testing.T) {
		e.send(t, e.giveBack(e.clock.Now(), keyID, "01000734E0", 3)...)
		evs, err := e.b.BookingEvents(van.ID)
		require.NoError(t, err)
		require.Equal(t, []box.EventType{box.EventCodeAccepted, box.EventSlotReleased, box.EventKeyTaken,
			bookings.EventKeyOverdue, box.EventKeyReturned}, types(evs))
		n, err := e.b.CheckOverdue(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Len(t, e.notes.of(notify.KindKeyOverdue), 2)
	})
}

func TestOverdueNotRaised(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"key returned in time", func(t *testing.T, e *env) {
			now := e.clock.Now()
			van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
			e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)
			e.send(t, e.giveBack(now.Add(-5*time.Minute), keyID, "01000734E0", 3)...)
		}},
		{"key never taken", func(t *testing.T, e *env) {
			now := e.clock.Now()
			e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
		}},
		{"open-ended booking", func(t *testing.T, e *env) {
			now := e.clock.Now()
			van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), time.Time{})
			e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)
		}},
		{"key taken by the next booking", func(t *testing.T, e *env) {
			// The first driver returned it; the second has it in their
			// own window, which has not ended.
			now := e.clock.Now()
			first := e.booked(t, e.van, e.ada, now.Add(-3*time.Hour), now.Add(time.Hour))
			second := e.booked(t, e.van, e.bob, now.Add(time.Hour), now.Add(6*time.Hour))
			e.send(t, e.take(now.Add(-2*time.Hour), first, keyID, 3)...)
			e.send(t, e.giveBack(now.Add(-time.Hour), keyID, "01000734E0", 3)...)
			e.send(t, e.take(now.Add(90*time.Minute), second, keyID, 3)...)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{truck: true})
			tc.run(t, e)
			e.clock.Advance(2 * time.Hour)
			n, err := e.b.CheckOverdue(context.Background())
			require.NoError(t, err)
			require.Zero(t, n)
			require.Empty(t, e.notes.of(notify.KindKeyOverdue))
			require.Zero(t, e.b.Stats().Overdue)
		})
	}
}

func TestOverdueWhenBookingEndsEarly(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(5*time.Hour))
	e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)

	// The fleet manager deletes the assignment while the key is out.
	_, err := e.f.DeleteAssignment(van.ID)
	require.NoError(t, err)
	e.settle(t)
	bk, _, err := e.store.Booking(van.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.BookingEnded, bk.State)

	e.clock.Advance(time.Minute)
	n, err := e.b.CheckOverdue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the booking is over though its Until is hours away")
	require.Len(t, e.notes.of(notify.KindKeyOverdue), 2)
}

func TestOverdueNotificationRetried(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)
	e.clock.Advance(2 * time.Hour)

	e.notes.failNext(1) // the driver's message fails, the admin's goes
	n, err := e.b.CheckOverdue(ctx)
	require.Error(t, err)
	require.Equal(t, 1, n)
	got := e.notes.of(notify.KindKeyOverdue)
	require.Len(t, got, 1)
	require.Equal(t, "admin@example.com", got[0].to.Email)

	n, err = e.b.CheckOverdue(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "not raised again")
	got = e.notes.of(notify.KindKeyOverdue)
	require.Len(t, got, 2, "the driver is told on the next check, the admin not twice")
	require.Equal(t, "ada@example.com", got[1].to.Email)
	require.EqualValues(t, 1, e.b.Stats().Overdue)

	evs, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	overdue := 0
	for _, ev := range evs {
		if ev.Type == bookings.EventKeyOverdue {
			overdue++
		}
	}
	require.Equal(t, 1, overdue)
}
