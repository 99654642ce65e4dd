package bookings_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

func TestAssignmentCreatedUpdatedEnded(t *testing.T) {
	e := newEnv(t, envOpts{})
	from := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	until := from.Add(4 * time.Hour)
	a := e.assign(t, e.van, e.ada, from, until)
	e.settle(t)

	// The grant is in the cloud for the linked key, window [started, ended).
	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok)
	require.Equal(t, box.KindBooking, g.Kind)
	require.Equal(t, []string{keyID}, g.KeyIDs)
	require.True(t, g.From.Equal(from), "from %s want %s", g.From, from)
	require.True(t, g.Until.Equal(until))
	require.Equal(t, "fleetio", g.Source)
	require.Equal(t, "fleetio:"+strconv.FormatInt(e.ada.ID, 10), g.DriverRef)
	require.False(t, g.Revoked)

	// The custom fields are filled in.
	got, ok := e.f.Assignment(a.ID)
	require.True(t, ok)
	pin := field(got, fleetio.FieldAccessCode)
	require.Len(t, pin, 6)
	require.False(t, bookings.TrivialPIN(pin))
	require.Contains(t, field(got, fleetio.FieldAccessInstructions), "Depot North")
	require.Contains(t, field(got, fleetio.FieldAccessInstructions), "slot 3")
	require.NotContains(t, field(got, fleetio.FieldAccessInstructions), pin)
	link := field(got, fleetio.FieldAccessLink)
	require.Contains(t, link, e.srv.URL+bookings.AccessPath)

	// The cloud holds that PIN for the grant: another grant cannot take it.
	_, err := e.cloud.PutGrant(boxID, box.Grant{ID: "other", Kind: box.KindBooking, KeyIDs: []string{keyID}}, pin)
	require.ErrorIs(t, err, box.ErrCodeInUse)

	// The driver was told, once, with the PIN and the link.
	ns := e.notes.all()
	require.Len(t, ns, 1)
	require.Equal(t, notify.KindBookingCreated, ns[0].kind)
	require.Equal(t, "ada@example.com", ns[0].to.Email)
	require.Equal(t, "+15550100", ns[0].to.Phone)
	require.Equal(t, pin, ns[0].data["pin"])
	require.Equal(t, link, ns[0].data[notify.DataAccessLink])

	// One PATCH: its own updated delivery came back and made no other.
	require.Equal(t, 1, e.patches())
	bk, ok, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, bookings.BookingActive, bk.State)
	require.Nil(t, bk.SealedPIN, "the PIN is forgotten once written back and sent")

	// The access page shows the booking.
	code, page := get(t, link)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "Depot North")
	require.Contains(t, page, "12 Dock Road, bay 4")
	require.Contains(t, page, "Van 7")
	require.NotContains(t, page, pin)

	// Updated window: the grant follows, the PIN stays, the driver is told.
	from2, until2 := from.Add(30*time.Minute), until.Add(2*time.Hour)
	_, err = e.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.StartedAt, a.EndedAt = from2, &until2 })
	require.NoError(t, err)
	e.settle(t)
	g, _ = e.grant(t, bookings.GrantID(a.ID))
	require.True(t, g.From.Equal(from2))
	require.True(t, g.Until.Equal(until2))
	got, _ = e.f.Assignment(a.ID)
	require.Equal(t, pin, field(got, fleetio.FieldAccessCode))
	ns = e.notes.all()
	require.Len(t, ns, 2)
	require.Equal(t, notify.KindBookingUpdated, ns[1].kind)
	require.Empty(t, ns[1].data["pin"])

	// Ended (ended_at moved into the past): revoked, fields cleared, page gone.
	past := time.Now().Add(-time.Minute)
	_, err = e.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.StartedAt, a.EndedAt = past.Add(-time.Hour), &past })
	require.NoError(t, err)
	e.settle(t)
	g, _ = e.grant(t, bookings.GrantID(a.ID))
	require.True(t, g.Revoked)
	got, _ = e.f.Assignment(a.ID)
	for _, k := range []string{fleetio.FieldAccessCode, fleetio.FieldAccessLink, fleetio.FieldAccessInstructions} {
		require.Empty(t, field(got, k), k)
	}
	code, _ = get(t, link)
	require.Equal(t, http.StatusGone, code)
	bk, _, err = e.store.Booking(a.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.BookingEnded, bk.State)
}

func TestAssignmentDeleted(t *testing.T) {
	e := newEnv(t, envOpts{})
	from := time.Now().Add(time.Hour)
	a := e.assign(t, e.van, e.ada, from, from.Add(time.Hour))
	e.settle(t)
	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok)
	require.False(t, g.Revoked)

	_, err := e.f.DeleteAssignment(a.ID)
	require.NoError(t, err)
	e.settle(t)
	g, _ = e.grant(t, bookings.GrantID(a.ID))
	require.True(t, g.Revoked)
	bk, _, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.BookingEnded, bk.State)
	ns := e.notes.all()
	require.Len(t, ns, 2)
	require.Equal(t, notify.KindBookingCancelled, ns[1].kind)
	require.Equal(t, "ada@example.com", ns[1].to.Email)
	require.Empty(t, ns[1].data["pin"])
}

func TestDuplicateAndOutOfOrderDeliveries(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.f.DuplicateDeliveries(true)
	e.f.PauseDeliveries()
	from := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	a := e.assign(t, e.van, e.ada, from, from.Add(time.Hour))
	until2 := from.Add(3 * time.Hour)
	_, err := e.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &until2 })
	require.NoError(t, err)
	// A second assignment, created then deleted: its deliveries arrive
	// deleted first, created last.
	b := e.assign(t, e.van, e.bob, from.Add(5*time.Hour), from.Add(6*time.Hour))
	_, err = e.f.DeleteAssignment(b.ID)
	require.NoError(t, err)
	e.f.ResumeDeliveries(2) // fake.Shuffled would also do; reversed is the worst case
	e.settle(t)

	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok)
	require.True(t, g.Until.Equal(until2), "the grant follows the record read back, not the delivery order")
	// Both queued at once, they run in id order: the created payload
	// may make a grant (with a PIN nobody is told: the write-back and
	// the message wait for the confirm), which the deletion revokes.
	if g, ok := e.grant(t, bookings.GrantID(b.ID)); ok {
		require.True(t, g.Revoked, "a deleted assignment whose created delivery came last keeps no live grant")
	}
	gotB, _, err := e.store.Booking(b.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.BookingEnded, gotB.State)

	// One booking notification for a, none for b, and one code written.
	var created int
	for _, n := range e.notes.all() {
		if n.kind == notify.KindBookingCreated {
			created++
		}
	}
	require.Equal(t, 1, created)
	got, _ := e.f.Assignment(a.ID)
	require.Len(t, field(got, fleetio.FieldAccessCode), 6)
}

func TestUnlinkedVehicle(t *testing.T) {
	e := newEnv(t, envOpts{})
	a := e.assign(t, e.truck, e.ada, time.Now().Add(time.Hour), time.Time{})
	e.settle(t)
	_, ok := e.grant(t, bookings.GrantID(a.ID))
	require.False(t, ok)
	bk, ok, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.True(t, ok, "recorded")
	require.Equal(t, bookings.BookingUnlinked, bk.State)
	require.Zero(t, e.patches())
	require.Empty(t, e.notes.all())
}

func TestPromptVehicle(t *testing.T) {
	e := newEnv(t, envOpts{})
	require.NoError(t, e.store.PutLink(bookings.Link{VehicleID: e.van.ID, BoxID: boxID, KeyID: keyID, Mode: bookings.ModePrompt}))
	a := e.assign(t, e.van, e.bob, time.Now().Add(time.Hour), time.Time{})
	e.settle(t)
	_, ok := e.grant(t, bookings.GrantID(a.ID))
	require.False(t, ok)
	r, ok, err := e.store.Reservation(a.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, e.bob.ID, r.ContactID)
	ns := e.notes.all()
	require.Len(t, ns, 1)
	require.Equal(t, notify.KindPromptReservation, ns[0].kind)
	require.Equal(t, "admin@example.com", ns[0].to.Email)
}

func TestFleetioRateLimitedThenOK(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.f.SetRetryAfter(0)
	e.f.FailNext(2, http.StatusTooManyRequests)
	a := e.assign(t, e.van, e.ada, time.Now().Add(time.Hour), time.Time{})
	e.settle(t)
	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok)
	require.True(t, g.Until.IsZero(), "open-ended assignment, open-ended grant")
	got, _ := e.f.Assignment(a.ID)
	require.Len(t, field(got, fleetio.FieldAccessCode), 6)
	d := e.f.Deliveries()[0]
	sd, err := e.store.Delivery(d.ID)
	require.NoError(t, err)
	require.Equal(t, bookings.DeliveryDone, sd.State)
	require.Equal(t, 1, sd.Attempts, "the grant came from the payload: no Fleetio call, no 429")
	bk, _, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	cd, err := e.store.Delivery(bk.ConfirmID)
	require.NoError(t, err)
	require.Equal(t, bookings.DeliveryDone, cd.State)
	require.GreaterOrEqual(t, cd.Attempts, 2, "the 429 left the confirm queued for a retry")
	require.Len(t, e.notes.all(), 1)
}

func TestNotifierFailsThenOK(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.notes.failNext(1) // the mail relay is down
	a := e.assign(t, e.van, e.ada, time.Now().Add(time.Hour), time.Time{})
	e.settle(t)
	ns := e.notes.all()
	require.Len(t, ns, 1, "told once the notifier works again")
	got, _ := e.f.Assignment(a.ID)
	require.Equal(t, field(got, fleetio.FieldAccessCode), ns[0].data["pin"], "the PIN kept sealed for the retry is the one written back")
	require.Equal(t, 1, e.patches(), "steps already done are not redone")
}

func TestDriverChangeGetsNewPIN(t *testing.T) {
	e := newEnv(t, envOpts{})
	from := time.Now().Add(time.Hour)
	a := e.assign(t, e.van, e.ada, from, from.Add(time.Hour))
	e.settle(t)
	got, _ := e.f.Assignment(a.ID)
	pin1, link1 := field(got, fleetio.FieldAccessCode), field(got, fleetio.FieldAccessLink)
	_, err := e.f.UpdateAssignment(a.ID, func(x *fleetio.VehicleAssignment) { x.ContactID = e.bob.ID })
	require.NoError(t, err)
	e.settle(t)
	got, _ = e.f.Assignment(a.ID)
	require.NotEqual(t, pin1, field(got, fleetio.FieldAccessCode))
	require.NotEqual(t, link1, field(got, fleetio.FieldAccessLink))
	code, _ := get(t, link1)
	require.Equal(t, http.StatusNotFound, code, "the old driver's link is dead")
	g, _ := e.grant(t, bookings.GrantID(a.ID))
	require.Equal(t, "fleetio:"+strconv.FormatInt(e.bob.ID, 10), g.DriverRef)
	ns := e.notes.all()
	require.Equal(t, "bob@example.com", ns[len(ns)-1].to.Email)
	require.Equal(t, field(got, fleetio.FieldAccessCode), ns[len(ns)-1].data["pin"])
}

func TestAccessPageUnknownToken(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, p := range []string{"nope", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "../../etc/passwd"} {
		code, _ := get(t, e.srv.URL+bookings.AccessPath+p)
		require.Equal(t, http.StatusNotFound, code, p)
	}
}
