package bookings_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// linkTruck puts a second key in the box and links the truck to it.
func linkTruck(t *testing.T, e *env) {
	t.Helper()
	_, err := e.cloud.PutKey(boxID, box.Key{ID: truckKey, Name: "Truck 2", FobUID: "0100073500", Slot: 4})
	require.NoError(t, err)
	require.NoError(t, e.b.SetLink(context.Background(), bookings.Link{VehicleID: e.truck.ID, BoxID: boxID, KeyID: truckKey, Mode: bookings.ModeAutomatic}))
}

func TestPerDriverCode(t *testing.T) {
	e := newEnv(t, envOpts{})
	linkTruck(t, e)
	require.NoError(t, e.b.SetCodeMode(bookings.CodePerDriver))
	from := time.Now().Add(time.Hour)
	a1 := e.assign(t, e.van, e.ada, from, from.Add(time.Hour))
	a2 := e.assign(t, e.truck, e.ada, from.Add(2*time.Hour), from.Add(3*time.Hour))
	e.settle(t)

	// One driver code grant, the same code written back to both.
	g1, _ := e.f.Assignment(a1.ID)
	g2, _ := e.f.Assignment(a2.ID)
	code := field(g1, fleetio.FieldAccessCode)
	require.Len(t, code, bookings.PINLength)
	require.Equal(t, code, field(g2, fleetio.FieldAccessCode))
	_, grants, err := e.cloud.Records(boxID)
	require.NoError(t, err)
	var driverGrants int
	for _, g := range grants {
		require.Equal(t, bookings.DriverRef(e.ada.ID), g.DriverRef, g.ID)
		if g.Kind == box.KindDriverCode {
			driverGrants++
			require.Equal(t, bookings.DriverGrantID(e.ada.ID), g.ID)
			require.Empty(t, g.KeyIDs, "it opens the driver's bookings, no key of its own")
		}
	}
	require.Equal(t, 1, driverGrants)
	// The cloud holds the code on the driver's grant: no other grant may take it.
	_, err = e.cloud.PutGrant(boxID, box.Grant{ID: "other", Kind: box.KindBooking, KeyIDs: []string{keyID}}, code)
	require.ErrorIs(t, err, box.ErrCodeInUse)
	for _, id := range []int64{a1.ID, a2.ID} {
		bk, _, err := e.store.Booking(id)
		require.NoError(t, err)
		require.True(t, bk.DriverCode)
		require.Equal(t, bookings.DriverRef(e.ada.ID), bk.DriverRef)
	}
	ns := e.notes.all()
	require.Len(t, ns, 2)
	for _, n := range ns {
		require.Equal(t, code, n.data["pin"])
	}

	// One booking ends: the driver's code stays for the other.
	_, err = e.f.DeleteAssignment(a1.ID)
	require.NoError(t, err)
	e.settle(t)
	g, _ := e.grant(t, bookings.DriverGrantID(e.ada.ID))
	require.False(t, g.Revoked)
	// The last one ends: no booking left on the box, the code grant goes.
	_, err = e.f.DeleteAssignment(a2.ID)
	require.NoError(t, err)
	e.settle(t)
	g, _ = e.grant(t, bookings.DriverGrantID(e.ada.ID))
	require.True(t, g.Revoked)

	// A new assignment later: the same code again.
	a3 := e.assign(t, e.van, e.ada, from.Add(5*time.Hour), time.Time{})
	e.settle(t)
	g3, _ := e.f.Assignment(a3.ID)
	require.Equal(t, code, field(g3, fleetio.FieldAccessCode))
	g, _ = e.grant(t, bookings.DriverGrantID(e.ada.ID))
	require.False(t, g.Revoked)
}

func TestDriverOwnCode(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	linkTruck(t, e)
	require.NoError(t, e.b.SetCodeMode(bookings.CodeDriverOwn))

	for _, bad := range []string{"123", "12345678901234567", "12a456", "123456", "111111", "121212"} {
		require.ErrorIs(t, e.b.SetDriverCode(ctx, e.ada.ID, bad), bookings.ErrInvalid, bad)
	}
	require.NoError(t, e.b.SetDriverCode(ctx, e.ada.ID, "482913"))

	from := time.Now().Add(time.Hour)
	a := e.assign(t, e.van, e.ada, from, from.Add(time.Hour))
	b := e.assign(t, e.truck, e.bob, from, from.Add(time.Hour)) // bob has no code: a PIN of his booking
	e.settle(t)
	ga, _ := e.f.Assignment(a.ID)
	require.Equal(t, "482913", field(ga, fleetio.FieldAccessCode))
	gb, _ := e.f.Assignment(b.ID)
	require.Len(t, field(gb, fleetio.FieldAccessCode), bookings.PINLength)
	bk, _, err := e.store.Booking(b.ID)
	require.NoError(t, err)
	require.False(t, bk.DriverCode)
	_, ok := e.grant(t, bookings.DriverGrantID(e.bob.ID))
	require.False(t, ok)

	// Another grant of the box holds the code the admin picks next: a clear
	// error, nothing changes.
	_, err = e.cloud.PutGrant(boxID, box.Grant{ID: "manual-1", Kind: box.KindBooking, KeyIDs: []string{keyID}}, "739184")
	require.NoError(t, err)
	err = e.b.SetDriverCode(ctx, e.ada.ID, "739184")
	require.ErrorIs(t, err, bookings.ErrDriverCodeInUse)
	require.Contains(t, err.Error(), "choose another")
	require.NotContains(t, err.Error(), "739184", "no code in errors")
	_, err = e.cloud.PutGrant(boxID, box.Grant{ID: "probe", Kind: box.KindBooking, KeyIDs: []string{keyID}}, "482913")
	require.ErrorIs(t, err, box.ErrCodeInUse, "the old code still holds")

	// A free code: pushed to the box, written back to the assignment.
	require.NoError(t, e.b.SetDriverCode(ctx, e.ada.ID, "560271"))
	e.settle(t)
	ga, _ = e.f.Assignment(a.ID)
	require.Equal(t, "560271", field(ga, fleetio.FieldAccessCode))
	_, err = e.cloud.PutGrant(boxID, box.Grant{ID: "probe", Kind: box.KindBooking, KeyIDs: []string{keyID}}, "482913")
	require.NoError(t, err, "the old code is free again")

	// Cleared: ada's booking gets a PIN of its own, sent to her.
	require.NoError(t, e.b.ClearDriverCode(ctx, e.ada.ID))
	e.settle(t)
	ga, _ = e.f.Assignment(a.ID)
	pin := field(ga, fleetio.FieldAccessCode)
	require.Len(t, pin, bookings.PINLength)
	require.NotEqual(t, "560271", pin)
	g, _ := e.grant(t, bookings.DriverGrantID(e.ada.ID))
	require.True(t, g.Revoked)
	ns := e.notes.all()
	require.Equal(t, pin, ns[len(ns)-1].data["pin"])
}

func TestPerDriverCodeClashDrawsAgain(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	require.NoError(t, e.b.SetCodeMode(bookings.CodePerDriver))
	from := time.Now().Add(time.Hour)
	a1 := e.assign(t, e.van, e.ada, from, from.Add(time.Hour))
	e.settle(t)
	g1, _ := e.f.Assignment(a1.ID)
	old := field(g1, fleetio.FieldAccessCode)
	require.Len(t, old, bookings.PINLength)

	// A second box where another grant already holds ada's code.
	const boxB = "box-b"
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, e.cloud.RegisterBox(boxB, boxKey.PublicKey().Bytes()))
	_, err = e.cloud.PutKey(boxB, box.Key{ID: truckKey, Name: "Truck 2", FobUID: "0100073500", Slot: 1})
	require.NoError(t, err)
	_, err = e.cloud.PutGrant(boxB, box.Grant{ID: "manual-b", Kind: box.KindBooking, KeyIDs: []string{truckKey}}, old)
	require.NoError(t, err)
	require.NoError(t, e.b.SetLink(ctx, bookings.Link{VehicleID: e.truck.ID, BoxID: boxB, KeyID: truckKey, Mode: bookings.ModeAutomatic}))

	a2 := e.assign(t, e.truck, e.ada, from, from.Add(time.Hour))
	e.settle(t)
	g1, _ = e.f.Assignment(a1.ID)
	g2, _ := e.f.Assignment(a2.ID)
	code := field(g2, fleetio.FieldAccessCode)
	require.Len(t, code, bookings.PINLength)
	require.NotEqual(t, old, code, "drawn again")
	require.Equal(t, code, field(g1, fleetio.FieldAccessCode), "the first assignment shows the new code too")
	// Both boxes hold the new code on the driver's grant.
	for _, id := range []string{boxID, boxB} {
		_, err := e.cloud.PutGrant(id, box.Grant{ID: "probe", Kind: box.KindDriverCode, DriverRef: "x"}, code)
		require.ErrorIs(t, err, box.ErrCodeInUse, id)
	}
	// The driver was told the new code for the first booking.
	var told bool
	for _, n := range e.notes.all() {
		told = told || (n.kind == notify.KindBookingUpdated && n.data["pin"] == code)
	}
	require.True(t, told)
}
