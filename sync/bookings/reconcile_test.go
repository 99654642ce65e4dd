package bookings_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

func whys(rep bookings.ReconcileReport) []string {
	var out []string
	for _, r := range rep.Repairs {
		out = append(out, r.Why)
	}
	return out
}

func TestReconcileRepairsAMissedWebhook(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()

	// Fleetio never delivers the created webhook (gave up, or the
	// webhook was disabled).
	e.webhooks(false)
	a := e.assign(t, e.van, e.ada, now.Add(time.Hour), now.Add(3*time.Hour))
	e.webhooks(true)
	_, ok, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.False(t, ok)

	rep, err := e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Vehicles)
	require.Equal(t, 1, rep.Assignments)
	require.Equal(t, []string{bookings.RepairMissing}, whys(rep))
	require.EqualValues(t, 1, e.b.Stats().Reconciled)

	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok, "grant pushed to the cloud")
	require.False(t, g.Revoked)
	require.True(t, g.From.Equal(a.StartedAt))
	require.True(t, g.Until.Equal(*a.EndedAt))
	fa, _ := e.f.Assignment(a.ID)
	require.Regexp(t, regexp.MustCompile(`^\d{6}$`), fa.CustomFields[fleetio.FieldAccessCode])
	require.NotEmpty(t, fa.CustomFields[fleetio.FieldAccessLink])
	created := e.notes.of(notify.KindBookingCreated)
	require.Len(t, created, 1)
	require.Equal(t, e.ada.ID, created[0].contactID)

	// Our write-back's webhook is an echo; a second round finds nothing.
	e.settle(t)
	patches := e.patches()
	rep, err = e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Empty(t, rep.Repairs)
	require.Equal(t, patches, e.patches())
	require.Len(t, e.notes.of(notify.KindBookingCreated), 1)
}

func TestReconcileRepairsAMissedUpdate(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	a := e.booked(t, e.van, e.ada, now.Add(time.Hour), now.Add(3*time.Hour))

	e.webhooks(false)
	later := now.Add(5 * time.Hour)
	_, err := e.f.UpdateAssignment(a.ID, func(x *fleetio.VehicleAssignment) { x.EndedAt = &later })
	require.NoError(t, err)
	e.webhooks(true)

	rep, err := e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{bookings.RepairWindow}, whys(rep))
	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok)
	require.True(t, g.Until.Equal(later.Truncate(time.Millisecond)), "grant until %s, want %s", g.Until, later)
	require.Len(t, e.notes.of(notify.KindBookingUpdated), 1)

	e.settle(t)
	rep, err = e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Empty(t, rep.Repairs)
}

func TestReconcileRevokesADeletedAssignment(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	a := e.booked(t, e.van, e.ada, now.Add(time.Hour), now.Add(3*time.Hour))
	kept := e.booked(t, e.truck, e.bob, now.Add(time.Hour), now.Add(3*time.Hour))

	e.webhooks(false)
	_, err := e.f.DeleteAssignment(a.ID)
	require.NoError(t, err)
	e.webhooks(true)

	rep, err := e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, []bookings.Repair{{AssignmentID: a.ID, VehicleID: e.van.ID, Why: bookings.RepairGone}}, rep.Repairs)
	require.Equal(t, 1, rep.Checked)
	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok)
	require.True(t, g.Revoked, "grant revoked in the cloud")
	bk, _, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.BookingEnded, bk.State)
	require.Len(t, e.notes.of(notify.KindBookingCancelled), 1, "the driver still holds a PIN: told")

	g, ok = e.grant(t, bookings.GrantID(kept.ID))
	require.True(t, ok)
	require.False(t, g.Revoked, "the other booking is untouched")

	rep, err = e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Empty(t, rep.Repairs)
	require.Zero(t, rep.Checked, "an ended booking is not looked up again")
}

func TestReconcileFleetioErrorsChangeNothing(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newEnv(t, envOpts{truck: true})
			ctx := context.Background()
			now := e.clock.Now()
			gone := e.booked(t, e.truck, e.bob, now.Add(time.Hour), now.Add(3*time.Hour))
			e.webhooks(false)
			a := e.assign(t, e.van, e.ada, now.Add(time.Hour), now.Add(3*time.Hour))
			_, err := e.f.DeleteAssignment(gone.ID)
			require.NoError(t, err)
			e.webhooks(true)
			patches := e.patches()

			// The failure can hit any of the reads: the first list, the
			// second, the look-up of the deleted one.
			for fail := 1; fail <= 3; fail++ {
				e.failRequest(fail, status)
				rep, err := e.b.Reconcile(ctx)
				require.Error(t, err)
				var ae *fleetio.APIError
				require.ErrorAs(t, err, &ae)
				require.Equal(t, status, ae.StatusCode)
				require.Empty(t, rep.Repairs)
				_, ok := e.grant(t, bookings.GrantID(a.ID))
				require.False(t, ok, "no grant pushed")
				_, ok, err = e.store.Booking(a.ID)
				require.NoError(t, err)
				require.False(t, ok, "no booking recorded")
				g, _ := e.grant(t, bookings.GrantID(gone.ID))
				require.False(t, g.Revoked, "nothing revoked")
				require.Equal(t, patches, e.patches(), "nothing written to Fleetio")
				require.Zero(t, e.b.Stats().Reconciled)
			}
			require.NotZero(t, e.b.Stats().FleetioErrors)

			// Fleetio is back: the next round repairs both.
			rep, err := e.b.Reconcile(ctx)
			require.NoError(t, err)
			require.ElementsMatch(t, []string{bookings.RepairMissing, bookings.RepairGone}, whys(rep))
		})
	}
}

func TestReconcileFinishesARepairCutShort(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	e.webhooks(false)
	a := e.assign(t, e.van, e.ada, now.Add(time.Hour), now.Add(3*time.Hour))
	e.webhooks(true)

	// Requests: list the van's, list the truck's, then the write-back.
	e.failRequest(3, http.StatusBadGateway)
	_, err := e.b.Reconcile(ctx)
	require.Error(t, err)
	_, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok, "the grant went in before Fleetio failed")
	fa, _ := e.f.Assignment(a.ID)
	require.Nil(t, fa.CustomFields[fleetio.FieldAccessCode])
	require.Empty(t, e.notes.of(notify.KindBookingCreated), "the driver is told after the write-back")

	rep, err := e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{bookings.RepairPending}, whys(rep))
	fa, _ = e.f.Assignment(a.ID)
	require.Regexp(t, regexp.MustCompile(`^\d{6}$`), fa.CustomFields[fleetio.FieldAccessCode])
	created := e.notes.of(notify.KindBookingCreated)
	require.Len(t, created, 1)
	require.Equal(t, fa.CustomFields[fleetio.FieldAccessCode], created[0].data["pin"], "the PIN in Fleetio is the one the driver got")
}

func TestRunMaintenance(t *testing.T) {
	e := newEnv(t, envOpts{truck: true, noHook: true})
	now := e.clock.Now()
	van := e.booked(t, e.van, e.ada, now.Add(-time.Hour), now.Add(time.Hour))
	e.send(t, e.take(now.Add(-30*time.Minute), van, keyID, 3)...) // nobody hands these over
	e.webhooks(false)
	a := e.assign(t, e.truck, e.bob, now.Add(time.Hour), now.Add(3*time.Hour))
	e.webhooks(true)
	e.clock.Advance(2 * time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.b.RunMaintenance(ctx, 20*time.Millisecond) }()
	require.Eventually(t, func() bool {
		_, ok := e.grant(t, bookings.GrantID(a.ID))
		return ok && len(e.notes.of(notify.KindKeyOverdue)) == 2
	}, 10*time.Second, 10*time.Millisecond, "missed webhook repaired, caught-up events make the van's key overdue")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("RunMaintenance did not return when its context ended")
	}
	require.EqualValues(t, 1, e.b.Stats().Overdue)
}

func TestReconcilePromptVehicle(t *testing.T) {
	e := newEnv(t, envOpts{truck: true})
	ctx := context.Background()
	now := e.clock.Now()
	require.NoError(t, e.store.PutLink(bookings.Link{VehicleID: e.truck.ID, BoxID: boxID, KeyID: truckKey, Mode: bookings.ModePrompt}))
	e.webhooks(false)
	a := e.assign(t, e.truck, e.bob, now.Add(time.Hour), now.Add(3*time.Hour))
	e.webhooks(true)

	rep, err := e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{bookings.RepairMissing}, whys(rep))
	_, ok, err := e.store.Reservation(a.ID)
	require.NoError(t, err)
	require.True(t, ok, "reservation recorded")
	require.Len(t, e.notes.of(notify.KindPromptReservation), 1, "admin told")
	_, ok = e.grant(t, bookings.GrantID(a.ID))
	require.False(t, ok, "no grant before the admin books")

	rep, err = e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Empty(t, rep.Repairs)

	// The admin books it with a shorter window: Reconcile leaves the
	// admin's window alone while Fleetio's does not move.
	until := a.EndedAt.Add(-time.Hour)
	_, err = e.b.CreateBooking(ctx, a.ID, bookings.BookingEdit{Until: &until})
	require.NoError(t, err)
	e.settle(t)
	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok)
	require.True(t, g.Until.Equal(until))
	rep, err = e.b.Reconcile(ctx)
	require.NoError(t, err)
	require.Empty(t, rep.Repairs)
	g, _ = e.grant(t, bookings.GrantID(a.ID))
	require.True(t, g.Until.Equal(until))
}
