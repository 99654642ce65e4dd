package bookings_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
)

func TestBookingEventsAttachedToTheRightBooking(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	truck := e.booked(t, e.truck, e.bob, now.Add(-time.Hour), now.Add(time.Hour))

	var evs []box.Event
	// A wrong code before either booking started: nobody's.
	evs = append(evs, e.ev(now.Add(-3*time.Hour), box.EventCodeRefused, func(ev *box.Event) {
		ev.Reason, ev.Failures = box.ReasonUnknownCode, 1
	}))
	// A wrong code during both windows: both bookings see it.
	evs = append(evs, e.ev(now.Add(-40*time.Minute), box.EventCodeRefused, func(ev *box.Event) {
		ev.Reason, ev.Failures = box.ReasonUnknownCode, 1
	}))
	// Ada takes the van's key with her PIN.
	evs = append(evs, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)
	// A grant the bridge did not make (an admin's) refused, and used to
	// take the truck's key: not the bridge's business.
	evs = append(evs, e.ev(now.Add(-20*time.Minute), box.EventCodeRefused, func(ev *box.Event) {
		ev.Reason, ev.GrantID = box.ReasonExpired, "admin-grant-1"
	}))
	evs = append(evs, e.ev(now.Add(-19*time.Minute), box.EventKeyTaken, func(ev *box.Event) {
		ev.Slot, ev.KeyID, ev.GrantID = 4, truckKey, "admin-grant-1"
	}))
	// Another assignment's grant id of a booking the bridge never made.
	evs = append(evs, e.ev(now.Add(-18*time.Minute), box.EventCodeAccepted, func(ev *box.Event) {
		ev.GrantID = bookings.GrantID(999999)
	}))
	// Ada brings the key back: the box names only the key.
	evs = append(evs, e.giveBack(now.Add(-10*time.Minute), keyID, "01000734E0", 3)...)
	e.send(t, evs...)

	got, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	require.Equal(t, []box.EventType{box.EventCodeRefused, box.EventCodeAccepted, box.EventSlotReleased,
		box.EventKeyTaken, box.EventKeyReturned}, types(got))
	require.Equal(t, "window", got[0].Via)
	require.Equal(t, boxID, got[0].BoxID)
	for _, ev := range got[1:4] {
		require.Equal(t, "grant", ev.Via)
		require.Equal(t, bookings.GrantID(van.ID), ev.GrantID)
		require.Equal(t, van.ID, ev.AssignmentID)
	}
	require.Equal(t, keyID, got[3].KeyID)
	require.Equal(t, "key", got[4].Via)
	require.Equal(t, 3, got[4].Slot)

	got, err = e.b.BookingEvents(truck.ID)
	require.NoError(t, err)
	require.Equal(t, []box.EventType{box.EventCodeRefused}, types(got), "only the wrong code during its window")
	require.Equal(t, box.ReasonUnknownCode, got[0].Reason)

	// The same events again (a box resending after a lost ack, handed to
	// the hook directly): nothing is attached twice.
	e.b.HandleEvents(boxID, evs)
	again, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	require.Len(t, again, 5)

	_, err = e.b.BookingEvents(424242)
	require.ErrorIs(t, err, bookings.ErrNotFound)
}

func TestBookingEventsRemoteReleaseAndDriverCode(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))

	e.send(t,
		// The driver's own code (per-driver mode) accepted at the box.
		e.ev(now.Add(-50*time.Minute), box.EventCodeAccepted, func(ev *box.Event) {
			ev.GrantID, ev.Detail = "fleetio-driver-"+itoa(e.ada.ID), string(box.KindDriverCode)
		}),
		// Bob's driver code: not Ada's booking.
		e.ev(now.Add(-49*time.Minute), box.EventCodeAccepted, func(ev *box.Event) {
			ev.GrantID = "fleetio-driver-" + itoa(e.bob.ID)
		}),
		// A remote release from the admin: the box names the slot only.
		e.ev(now.Add(-40*time.Minute), box.EventSlotReleased, func(ev *box.Event) {
			ev.Slot, ev.Purpose = 3, box.PurposeRemote
		}),
		e.ev(now.Add(-39*time.Minute), box.EventKeyTaken, func(ev *box.Event) {
			ev.Slot, ev.Purpose = 3, box.PurposeRemote
		}),
		// Slot released for a code and nothing taken.
		e.ev(now.Add(-30*time.Minute), box.EventSlotRelocked, func(ev *box.Event) {
			ev.Slot, ev.KeyID, ev.GrantID, ev.Reason, ev.Purpose = 3, keyID, bookings.GrantID(van.ID), box.ReasonTimeout, box.PurposeTake
		}),
	)
	got, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	require.Equal(t, []box.EventType{box.EventCodeAccepted, box.EventKeyTaken, box.EventSlotRelocked}, types(got))
	require.Equal(t, "driver_code", got[0].Via)
	require.Equal(t, keyID, got[1].KeyID, "the slot's key, from the cloud's records")
	require.Equal(t, "key", got[1].Via)
	require.Equal(t, box.ReasonTimeout, got[2].Reason)
}

func TestBookingEventsGapFilledFromTheCloud(t *testing.T) {
	// The hook is not registered while the box's first events arrive (the
	// bridge was down): they wait in the cloud.
	e := newEnv(t, envOpts{truck: true, noHook: true})
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	first := e.take(now.Add(-30*time.Minute), van, keyID, 3)
	e.send(t, first...)
	got, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	require.Empty(t, got)

	t.Run("a later batch fills the gap", func(t *testing.T) {
		back := e.giveBack(now.Add(-10*time.Minute), keyID, "01000734E0", 3)
		e.send(t, back...)
		e.b.HandleEvents(boxID, back) // seq 5.. with 1..4 never handed over
		got, err := e.b.BookingEvents(van.ID)
		require.NoError(t, err)
		require.Equal(t, []box.EventType{box.EventCodeAccepted, box.EventSlotReleased, box.EventKeyTaken,
			box.EventKeyReturned}, types(got))
	})
	t.Run("catch up reads what nobody handed over", func(t *testing.T) {
		e.send(t, e.ev(now.Add(-5*time.Minute), box.EventCodeRefused, func(ev *box.Event) {
			ev.Reason = box.ReasonUnknownCode
		}))
		n, err := e.b.CatchUpEvents()
		require.NoError(t, err)
		require.Equal(t, 1, n)
		n, err = e.b.CatchUpEvents()
		require.NoError(t, err)
		require.Zero(t, n)
		got, err := e.b.BookingEvents(van.ID)
		require.NoError(t, err)
		require.Len(t, got, 5)
	})
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// FuzzHandleEvents feeds events as a broken or hostile box might send them:
// nothing panics, and the box's events never stall behind a bad one.
func FuzzHandleEvents(f *testing.F) {
	f.Add("key_taken", "van-key", "fleetio-1", 3, int64(0), "")
	f.Add("key_returned", "", "", 3, int64(-3600), "")
	f.Add("code_refused", "", "fleetio-driver-x", 0, int64(60), "unknown_code")
	f.Add("key_taken", string(make([]byte, 40000)), "fleetio-driver-12", -1, int64(1<<40), "")
	f.Add("code_accepted", "k\x00ey", "fleetio-99999999999999999999", 1<<30, int64(-1<<40), "expired")
	e := newEnv(f, envOpts{truck: true})
	now := e.clock.Now()
	van := e.booked(f, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	f.Fuzz(func(t *testing.T, typ, keyID, grantID string, slot int, offset int64, reason string) {
		ev := e.ev(now.Add(time.Duration(offset)*time.Second), box.EventType(typ), func(ev *box.Event) {
			ev.KeyID, ev.GrantID, ev.Slot, ev.Reason = keyID, grantID, slot, box.Reason(reason)
		})
		e.send(t, ev) // the cloud stores it and hands it to HandleEvents
		_, err := e.b.CatchUpEvents()
		require.NoError(t, err, "a bad event must not stall the box's events")
		// The next good event is still attached.
		e.send(t, e.ev(now, box.EventCodeRefused, func(ev *box.Event) { ev.Reason = box.ReasonUnknownCode }))
		n, err := e.b.CatchUpEvents()
		require.NoError(t, err)
		require.Zero(t, n, "the hook took it, nothing left to catch up")
		evs, err := e.b.BookingEvents(van.ID)
		require.NoError(t, err)
		require.True(t, slices.ContainsFunc(evs, func(x bookings.BookingEvent) bool { return x.Seq == e.seq }),
			"the good event after the fuzzed one is attached")
	})
}

// The box folds repeated refusals into one refusals_merged (box/refusal.go)
// and, past its outbox quota, counts them (store/outbox.go): a booking sees
// the merged event with its count as it saw the single ones.
func TestMergedRefusalsAttached(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.send(t,
		// Wrong codes during the window, merged by the box.
		e.ev(now.Add(-30*time.Minute), box.EventRefusalsMerged, func(ev *box.Event) {
			ev.Reason, ev.Count, ev.Detail = box.ReasonUnknownCode, 41, string(box.EventCodeRefused)
		}),
		// The booking's own PIN refused again and again (used up).
		e.ev(now.Add(-20*time.Minute), box.EventRefusalsMerged, func(ev *box.Event) {
			ev.Reason, ev.GrantID, ev.Count, ev.Detail = box.ReasonUsedUp, bookings.GrantID(van.ID), 7, string(box.EventCodeRefused)
		}),
	)
	got, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	require.Equal(t, []box.EventType{box.EventRefusalsMerged, box.EventRefusalsMerged}, types(got))
	require.Equal(t, "window", got[0].Via)
	require.Equal(t, 41, got[0].Count)
	require.Equal(t, "grant", got[1].Via)
	require.Equal(t, 7, got[1].Count)
}
