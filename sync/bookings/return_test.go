package bookings_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// overdueKeys lists the bookings whose overdue alert is still raised.
func (e *env) overdueKeys(t *testing.T) []int64 {
	t.Helper()
	ks, err := e.b.OverdueKeys()
	require.NoError(t, err)
	var ids []int64
	for _, k := range ks {
		ids = append(ids, k.AssignmentID)
	}
	return ids
}

// alertsSent waits for the alerts queued so far to have been sent (by Run's
// loop or by this call: SendAlerts runs one at a time).
func (e *env) alertsSent(t *testing.T) {
	t.Helper()
	_, _, err := e.b.SendAlerts(context.Background())
	require.NoError(t, err)
}

// A fob alone is weak evidence: an overdue key's alert is cleared by a fob
// return whose slot sensor saw the key seated for the settle time, or by a
// remote return; not by a shorter one, nor by one from firmware that does
// not say (fail secure). Every return is attached to the booking.
func TestOverdueClearedOnlyByAProvenReturn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		by       box.ReturnBy
		seatedMS int64
		cleared  bool
	}{
		{"fob, seated the settle time", box.ReturnByFob, 2000, true},
		{"fob, seated longer", box.ReturnByFob, 7500, true},
		{"fob, seated under the settle time", box.ReturnByFob, 300, false},
		{"fob, sensor never saw it", box.ReturnByFob, 0, false},
		{"older firmware: no return_by", "", 0, false},
		{"remote return", box.ReturnByRemote, 0, true},
		{"technician's local release, seated the settle time", box.ReturnByLocal, 2000, true},
		{"technician's local release, seated under it", box.ReturnByLocal, 300, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{truck: true})
			ctx := context.Background()
			van := e.overdueVan(t)

			e.send(t, e.giveBackBy(e.clock.Now(), keyID, "01000734E0", 3, tc.by, tc.seatedMS)...)
			evs, err := e.b.BookingEvents(van.ID)
			require.NoError(t, err)
			ret := evs[len(evs)-1]
			require.Equal(t, box.EventKeyReturned, ret.Type, "the return is attached either way")
			require.Equal(t, tc.by, ret.ReturnBy)
			require.Equal(t, tc.seatedMS, ret.SeatedMS)
			e.alertsSent(t)
			told := e.notes.of(notify.KindReturnUnconfirmed)
			if tc.cleared {
				require.Empty(t, e.overdueKeys(t), "the key is proved back")
				require.False(t, ret.Unconfirmed)
				require.Empty(t, told)
				require.Zero(t, e.b.Stats().ReturnsUnconfirmed)
				return
			}
			require.Equal(t, []int64{van.ID}, e.overdueKeys(t), "the overdue alert stays raised")
			require.True(t, ret.Unconfirmed)
			require.Contains(t, ret.Detail, "not confirmed by the slot sensor")
			require.EqualValues(t, 1, e.b.Stats().ReturnsUnconfirmed)
			require.Len(t, told, 1, "the admin is told")
			require.Equal(t, "admin@example.com", told[0].to.Email)
			require.Equal(t, "Van 7", told[0].data["key"])
			require.Equal(t, "Van 7", told[0].data["vehicle"])
			require.Equal(t, "Depot North", told[0].data["box"])
			require.Contains(t, told[0].data["reason"], "not confirmed by the slot sensor")
			n, err := e.b.CheckOverdue(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "raised once")

			// A return the slot confirms clears it after all.
			e.send(t, e.giveBack(e.clock.Now().Add(time.Minute), keyID, "01000734E0", 3)...)
			require.Empty(t, e.overdueKeys(t))
		})
	}
}

// A fob return the slot did not confirm during the window leaves the key
// out: it is overdue when the window ends (a confirmed one is not: see
// TestOverdueNotRaised).
func TestUnconfirmedReturnInTimeStillOverdue(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...)
	e.send(t, e.giveBackBy(now.Add(-5*time.Minute), keyID, "01000734E0", 3, box.ReturnByFob, 150)...)
	e.alertsSent(t)
	require.Len(t, e.notes.of(notify.KindReturnUnconfirmed), 1)

	e.clock.Advance(2 * time.Hour)
	n, err := e.b.CheckOverdue(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, e.notes.of(notify.KindKeyOverdue), 2, "driver and admin")
	require.Equal(t, []int64{van.ID}, e.overdueKeys(t))

	// The next booking takes the key from its slot: it was back after all.
	bob := e.booked(t, e.van, e.bob, e.clock.Now().Add(-time.Minute), e.clock.Now().Add(time.Hour))
	e.send(t, e.take(e.clock.Now(), bob, keyID, 3)...)
	require.Empty(t, e.overdueKeys(t))
}

// A keypad_attack from a box reaches the admin at once, is counted, and is
// shown on the bookings in whose window it happened; more from the same box
// within attackAlertInterval wait and go as one message.
func TestKeypadAttackTellsTheAdmin(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))

	e.send(t, e.ev(now, box.EventKeypadAttack, func(ev *box.Event) { ev.Count = 10 }))
	require.Eventually(t, func() bool { return len(e.notes.of(notify.KindKeypadAttack)) == 1 }, 10*time.Second, time.Millisecond,
		"the admin is told without waiting for the maintenance loop")
	got := e.notes.of(notify.KindKeypadAttack)[0]
	require.Equal(t, "admin@example.com", got.to.Email)
	require.Equal(t, "10", got.data["count"])
	require.Equal(t, "Depot North", got.data["box"])
	require.Equal(t, "12 Dock Road, bay 4", got.data["location"])
	require.NotEmpty(t, got.data["at"])
	require.EqualValues(t, 1, e.b.Stats().KeypadAttacks)

	evs, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	require.Equal(t, []box.EventType{box.EventKeypadAttack}, types(evs))
	require.Equal(t, 10, evs[0].Count)

	// Two more a minute later: held, then told as one.
	e.clock.Advance(time.Minute)
	e.send(t, e.ev(e.clock.Now(), box.EventKeypadAttack, func(ev *box.Event) { ev.Count = 5 }),
		e.ev(e.clock.Now(), box.EventKeypadAttack, func(ev *box.Event) { ev.Count = 6 }))
	e.alertsSent(t)
	require.Len(t, e.notes.of(notify.KindKeypadAttack), 1, "not a second message within the interval")
	require.EqualValues(t, 3, e.b.Stats().KeypadAttacks)
	e.clock.Advance(15 * time.Minute)
	e.alertsSent(t)
	told := e.notes.of(notify.KindKeypadAttack)
	require.Len(t, told, 2)
	require.Equal(t, "11", told[1].data["count"])
}

// A failed message is tried again, not lost.
func TestKeypadAttackAlertRetried(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	e.notes.failNext(1)
	e.send(t, e.ev(e.clock.Now(), box.EventKeypadAttack, func(ev *box.Event) { ev.Count = 10 }))
	require.Eventually(t, func() bool { return e.b.Stats().NotificationsFailed == 1 }, 10*time.Second, time.Millisecond)
	require.Empty(t, e.notes.of(notify.KindKeypadAttack))
	e.clock.Advance(time.Minute)
	e.alertsSent(t)
	require.Len(t, e.notes.of(notify.KindKeypadAttack), 1)
}

// A keypad_closed from a box reaches the admin at once, with the box, when
// it closed, until when, and the command that reopens it; it is counted
// and shown on the bookings in whose window it happened. A second closure
// (the budget spent again after a refill or a restore) is told too: it is
// not held like keypad_attack.
func TestKeypadClosedTellsTheAdmin(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	until := now.Add(60 * time.Hour)

	e.send(t, e.ev(now, box.EventKeypadClosed, func(ev *box.Event) { ev.Count, ev.Until = 20, until }))
	require.Eventually(t, func() bool { return len(e.notes.of(notify.KindKeypadClosed)) == 1 }, 10*time.Second, time.Millisecond,
		"the admin is told without waiting for the maintenance loop")
	got := e.notes.of(notify.KindKeypadClosed)[0]
	require.Equal(t, "admin@example.com", got.to.Email)
	require.Equal(t, "20", got.data[notify.DataCount])
	require.Equal(t, "Depot North", got.data[notify.DataBox])
	require.Equal(t, boxID, got.data[notify.DataBoxID])
	require.EqualValues(t, 1, e.b.Stats().KeypadClosures)
	require.Zero(t, e.b.Stats().KeypadAttacks)

	// What the admin reads, through the built-in templates.
	tm, err := notify.LoadTemplates("")
	require.NoError(t, err)
	for _, m := range notify.Methods {
		r, err := tm.Render(notify.KindKeypadClosed, m, got.to, got.msg.Data)
		require.NoError(t, err)
		for _, want := range []string{"Depot North", now.UTC().Format("Mon 2 Jan 2006 15:04"), until.UTC().Format("Mon 2 Jan 2006 15:04"),
			"smartbox-bridge restore-keypad --box " + boxID} {
			require.Contains(t, r.Body, want, "%s body:\n%s", m, r.Body)
		}
	}

	evs, err := e.b.BookingEvents(van.ID)
	require.NoError(t, err)
	require.Equal(t, []box.EventType{box.EventKeypadClosed}, types(evs))

	// Spent again a minute later (a restore, then more guessing): told
	// again at once.
	e.clock.Advance(time.Minute)
	e.send(t, e.ev(e.clock.Now(), box.EventKeypadClosed, func(ev *box.Event) { ev.Count, ev.Until = 20, until.Add(time.Minute) }))
	e.alertsSent(t)
	require.Len(t, e.notes.of(notify.KindKeypadClosed), 2, "each closure shuts drivers out: not held")
	require.EqualValues(t, 2, e.b.Stats().KeypadClosures)
}
