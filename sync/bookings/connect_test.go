package bookings_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

func TestConnect(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	require.NoError(t, e.store.ForgetSettings())
	require.False(t, e.b.Connected())

	good := bookings.Settings{APIKey: apiKey, AccountToken: account, WebhookSecret: secret, BaseURL: e.f.APIURL()}
	for _, tc := range []struct {
		name string
		s    func(bookings.Settings) bookings.Settings
	}{
		{"bad key", func(s bookings.Settings) bookings.Settings { s.APIKey = "nope"; return s }},
		{"bad account token", func(s bookings.Settings) bookings.Settings { s.AccountToken = "nope"; return s }},
		{"no webhook secret", func(s bookings.Settings) bookings.Settings { s.WebhookSecret = ""; return s }},
		{"bad code mode", func(s bookings.Settings) bookings.Settings { s.CodeMode = "sometimes"; return s }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.b.Connect(ctx, tc.s(good))
			require.Error(t, err)
			require.NotContains(t, err.Error(), "nope", "no credential in errors")
			require.False(t, e.b.Connected())
			_, err = e.store.Settings()
			require.ErrorIs(t, err, bookings.ErrNotConnected, "nothing stored")
		})
	}

	// Not connected: the webhook answers 503 and stores nothing.
	body := delivery(700001, fleetio.EventAssignmentCreated, `{"id":1,"vehicle_id":1}`)
	hdr := map[string]string{fleetio.SignatureHeader: fleetio.Sign([]byte(secret), body)}
	require.Equal(t, http.StatusServiceUnavailable, post(t, e.srv.URL+bookings.WebhookPath, body, hdr))

	u, err := e.b.Connect(ctx, good)
	require.NoError(t, err)
	require.Positive(t, u.ID)
	require.True(t, e.b.Connected())
	require.Equal(t, http.StatusOK, post(t, e.srv.URL+bookings.WebhookPath, body, hdr))
}

func TestDisconnect(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	require.NoError(t, e.b.SetCodeMode(bookings.CodePerDriver))
	now := time.Now()
	current := e.assign(t, e.van, e.ada, now.Add(-time.Hour), now.Add(3*time.Hour))
	future := e.assign(t, e.van, e.bob, now.Add(5*time.Hour), now.Add(6*time.Hour))
	e.settle(t)
	for _, a := range []fleetio.VehicleAssignment{current, future} {
		g, ok := e.grant(t, bookings.GrantID(a.ID))
		require.True(t, ok)
		require.False(t, g.Revoked)
	}
	codes, err := e.b.DriverCodes()
	require.NoError(t, err)
	require.Len(t, codes, 2)

	rep, err := e.b.Disconnect(ctx)
	require.NoError(t, err)
	require.Len(t, rep.Revoked, 1)
	require.Equal(t, future.ID, rep.Revoked[0].AssignmentID)
	require.Len(t, rep.Kept, 1)
	require.Equal(t, current.ID, rep.Kept[0].AssignmentID)

	g, _ := e.grant(t, bookings.GrantID(future.ID))
	require.True(t, g.Revoked, "a booking that has not started loses its grant")
	g, _ = e.grant(t, bookings.GrantID(current.ID))
	require.False(t, g.Revoked, "a booking in progress keeps its grant until its end")
	g, _ = e.grant(t, bookings.DriverGrantID(e.bob.ID))
	require.True(t, g.Revoked, "bob has no booking left on the box")
	g, _ = e.grant(t, bookings.DriverGrantID(e.ada.ID))
	require.False(t, g.Revoked, "ada's code opens her booking in progress")
	got, _ := e.f.Assignment(future.ID)
	require.Empty(t, field(got, fleetio.FieldAccessCode), "fields of the revoked booking cleared")

	// Secrets gone, webhook closed.
	require.False(t, e.b.Connected())
	_, err = e.store.Settings()
	require.ErrorIs(t, err, bookings.ErrNotConnected)
	codes, err = e.b.DriverCodes()
	require.NoError(t, err)
	require.Empty(t, codes)
	bks, err := e.b.Bookings()
	require.NoError(t, err)
	for _, bk := range bks {
		require.Nil(t, bk.SealedPIN)
	}
	body := delivery(700002, fleetio.EventAssignmentUpdated, `{"id":1,"vehicle_id":1}`)
	hdr := map[string]string{fleetio.SignatureHeader: fleetio.Sign([]byte(secret), body)}
	require.Equal(t, http.StatusServiceUnavailable, post(t, e.srv.URL+bookings.WebhookPath, body, hdr))
	_, err = e.store.Delivery(700002)
	require.ErrorIs(t, err, bookings.ErrNotFound)

	_, err = e.b.Disconnect(ctx)
	require.ErrorIs(t, err, bookings.ErrNotConnected)
	mode, err := e.store.CodeMode()
	require.NoError(t, err)
	require.Equal(t, bookings.CodePerDriver, mode, "the mode is a preference, kept")
}

func TestSetLink(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		l    bookings.Link
		is   error
	}{
		{"missing key", bookings.Link{VehicleID: e.truck.ID, BoxID: boxID, KeyID: "no-such-key", Mode: bookings.ModeAutomatic}, bookings.ErrNotFound},
		{"missing vehicle", bookings.Link{VehicleID: 999999, BoxID: boxID, KeyID: keyID, Mode: bookings.ModeAutomatic}, nil},
		{"key of another vehicle", bookings.Link{VehicleID: e.truck.ID, BoxID: boxID, KeyID: keyID, Mode: bookings.ModeAutomatic}, bookings.ErrInvalid},
		{"bad method", bookings.Link{VehicleID: e.truck.ID, BoxID: boxID, KeyID: keyID, Mode: "often"}, bookings.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.b.SetLink(ctx, tc.l)
			require.Error(t, err)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
	_, err := e.cloud.PutKey(boxID, box.Key{ID: truckKey, Name: "Truck 2", FobUID: "0100073500", Slot: 4})
	require.NoError(t, err)
	require.NoError(t, e.b.SetLink(ctx, bookings.Link{VehicleID: e.truck.ID, BoxID: boxID, KeyID: truckKey, Mode: bookings.ModePrompt}))
	// Changing the method any time.
	require.NoError(t, e.b.SetLink(ctx, bookings.Link{VehicleID: e.truck.ID, BoxID: boxID, KeyID: truckKey, Mode: bookings.ModeAutomatic}))

	vs, err := e.b.Vehicles(ctx)
	require.NoError(t, err)
	require.Len(t, vs, 2)
	for _, v := range vs {
		require.NotNil(t, v.Link, v.Vehicle.Name)
		require.Equal(t, v.Vehicle.ID, v.Link.VehicleID)
	}
	require.NoError(t, e.b.Unlink(e.truck.ID))
	require.ErrorIs(t, e.b.Unlink(e.truck.ID), bookings.ErrNotFound)
	vs, err = e.b.Vehicles(ctx)
	require.NoError(t, err)
	for _, v := range vs {
		require.Equal(t, v.Vehicle.ID == e.van.ID, v.Link != nil)
	}
}

func TestCreateBookingFromPrompt(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	require.NoError(t, e.b.SetLink(ctx, bookings.Link{VehicleID: e.van.ID, BoxID: boxID, KeyID: keyID, Mode: bookings.ModePrompt}))
	from := time.Now().Add(time.Hour).Truncate(time.Second)
	until := from.Add(4 * time.Hour)
	a := e.assign(t, e.van, e.ada, from, until)
	e.settle(t)
	rs, err := e.b.Reservations()
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.Equal(t, a.ID, rs[0].AssignmentID)

	// Bad edits change nothing.
	_, err = e.b.CreateBooking(ctx, a.ID, bookings.BookingEdit{ContactMethod: "pigeon"})
	require.ErrorIs(t, err, bookings.ErrInvalid)
	back := from.Add(-time.Hour)
	_, err = e.b.CreateBooking(ctx, a.ID, bookings.BookingEdit{Until: &back})
	require.ErrorIs(t, err, bookings.ErrInvalid)
	_, err = e.b.CreateBooking(ctx, 123456789, bookings.BookingEdit{})
	require.ErrorIs(t, err, bookings.ErrNotFound)
	_, ok := e.grant(t, bookings.GrantID(a.ID))
	require.False(t, ok)

	ef, eu := from.Add(30*time.Minute), until.Add(2*time.Hour)
	bk, err := e.b.CreateBooking(ctx, a.ID, bookings.BookingEdit{From: &ef, Until: &eu, ContactMethod: bookings.ContactSMS})
	require.NoError(t, err)
	require.Equal(t, bookings.BookingActive, bk.State)
	require.Equal(t, bookings.ContactSMS, bk.ContactMethod)
	require.True(t, bk.WindowEdited)
	g, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok)
	require.True(t, g.From.Equal(ef), "the admin's window: from %s", g.From)
	require.True(t, g.Until.Equal(eu))
	got, _ := e.f.Assignment(a.ID)
	pin := field(got, fleetio.FieldAccessCode)
	require.Len(t, pin, 6)
	ns := e.notes.all()
	require.Len(t, ns, 2)
	require.Equal(t, notify.KindPromptReservation, ns[0].kind)
	require.Equal(t, notify.KindBookingCreated, ns[1].kind)
	require.Equal(t, notify.MethodSMS, ns[1].method)
	require.Equal(t, "+15550100", ns[1].to.Phone)
	require.Equal(t, pin, ns[1].data["pin"])
	rs, err = e.b.Reservations()
	require.NoError(t, err)
	require.Empty(t, rs)

	// A retry returns the booking, makes nothing twice.
	again, err := e.b.CreateBooking(ctx, a.ID, bookings.BookingEdit{})
	require.NoError(t, err)
	require.Equal(t, bk.GrantID, again.GrantID)
	e.settle(t)
	require.Len(t, e.notes.all(), 2)

	// Fleetio's window does not move (the driver changes... nothing but
	// updated_at): the admin's window stays.
	_, err = e.f.UpdateAssignment(a.ID, func(x *fleetio.VehicleAssignment) {})
	require.NoError(t, err)
	e.settle(t)
	g, _ = e.grant(t, bookings.GrantID(a.ID))
	require.True(t, g.From.Equal(ef))
	require.True(t, g.Until.Equal(eu))

	// Fleetio's window moves: Fleetio's wins from now on.
	until2 := until.Add(time.Hour)
	_, err = e.f.UpdateAssignment(a.ID, func(x *fleetio.VehicleAssignment) { x.EndedAt = &until2 })
	require.NoError(t, err)
	e.settle(t)
	g, _ = e.grant(t, bookings.GrantID(a.ID))
	require.True(t, g.From.Equal(from), "from %s want %s", g.From, from)
	require.True(t, g.Until.Equal(until2))
	bk, _, err = e.store.Booking(a.ID)
	require.NoError(t, err)
	require.False(t, bk.WindowEdited)
	ns = e.notes.all()
	require.Equal(t, notify.KindBookingUpdated, ns[len(ns)-1].kind)
	require.Equal(t, notify.MethodSMS, ns[len(ns)-1].method, "the chosen method sticks")
}

func TestCreateBookingFinishedByWorker(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	require.NoError(t, e.b.SetLink(ctx, bookings.Link{VehicleID: e.van.ID, BoxID: boxID, KeyID: keyID, Mode: bookings.ModePrompt}))
	a := e.assign(t, e.van, e.bob, time.Now().Add(time.Hour), time.Time{})
	e.settle(t)
	_, err := e.b.CreateBooking(ctx, a.ID, bookings.BookingEdit{ContactMethod: bookings.ContactSMS})
	require.ErrorIs(t, err, bookings.ErrInvalid, "bob has no phone")

	// Fleetio fails the read-back: the approval is stored and queued, and
	// the worker makes the booking once Fleetio answers.
	e.f.FailNext(1, http.StatusBadGateway)
	_, err = e.b.CreateBooking(ctx, a.ID, bookings.BookingEdit{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "worker retries")
	e.settle(t)
	bk, ok, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, bookings.BookingActive, bk.State)
	require.False(t, bk.PendingGrant || bk.PendingWriteBack || bk.PendingNotify != "")
	got, _ := e.f.Assignment(a.ID)
	require.Len(t, field(got, fleetio.FieldAccessCode), 6)
	ns := e.notes.all()
	require.Equal(t, notify.KindBookingCreated, ns[len(ns)-1].kind)
	require.Equal(t, "bob@example.com", ns[len(ns)-1].to.Email)
}
