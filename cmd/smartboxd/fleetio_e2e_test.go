package main

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// The Fleetio flow end to end: an assignment made in (fake) Fleetio becomes
// a grant in the box's own store through the bridge, the cloud and the MQTT
// link; the driver reads the PIN in the email the bridge sent and types it on
// the box's keypad; the slot opens. Every part is the real one but Fleetio
// and the pins. The scenarios share one rig, each on a key of its own.
func TestFleetioE2E(t *testing.T) {
	rg := startFleetRig(t, rigOptions{})
	t.Run("created", func(t *testing.T) { scenarioCreated(t, rg, rigKeys[0]) })
	t.Run("updated", func(t *testing.T) { scenarioUpdated(t, rg, rigKeys[1]) })
	t.Run("deleted and ended", func(t *testing.T) { scenarioDeleted(t, rg, rigKeys[2], rigKeys[3]) })
	t.Run("duplicate and out of order", func(t *testing.T) { scenarioDuplicates(t, rg, rigKeys[4]) })
	t.Run("prompt", func(t *testing.T) { scenarioPrompt(t, rg, rigKeys[5]) })
	t.Run("overdue", func(t *testing.T) { scenarioOverdue(t, rg, rigKeys[6]) })
	// Last: it changes the account's code mode.
	t.Run("per-driver code", func(t *testing.T) { scenarioDriverCode(t, rg, rigKeys[7], rigKeys[8]) })
}

// TestFleetioE2EMosquitto runs the first scenario through a real mosquitto.
func TestFleetioE2EMosquitto(t *testing.T) {
	brokertest.SkipWithoutMosquitto(t)
	rg := startFleetRig(t, rigOptions{broker: brokertest.Mosquitto})
	scenarioCreated(t, rg, rigKeys[0])
}

// window is an assignment window that holds now, to the millisecond (as
// Fleetio keeps times).
func nowWindow(d time.Duration) (from, until time.Time) {
	from = time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	return from, from.Add(d)
}

func sameWindow(g box.Grant, from, until time.Time) bool {
	return g.From.Equal(from) && g.Until.Equal(until)
}

// scenarioCreated: assignment created -> grant at the box -> the PIN in the
// email (equal to keycafe_access_code) opens the slot -> the key is taken
// -> the box's events reach the cloud, attached to the booking.
func scenarioCreated(t *testing.T, rg *fleetRig, k rigKey) {
	from, until := nowWindow(4 * time.Hour)
	a := rg.assign(t, k.ID, rg.ada, from, until)
	gid := bookings.GrantID(a.ID)

	g := rg.waitBoxGrant(t, gid, "active with the assignment's window", func(g box.Grant) bool {
		return !g.Revoked && sameWindow(g, from, until)
	})
	require.Equal(t, []string{k.ID}, g.KeyIDs)
	require.Equal(t, box.KindBooking, g.Kind)
	require.Equal(t, bookings.GrantSource, g.Source)
	require.Contains(t, g.DriverRef, strconv.FormatInt(rg.ada.ID, 10))

	m := rg.mail.waitMail(t, rg.ada.Email, k.Name, 1)
	require.Contains(t, m.Subject, "is ready")
	pin := m.pin(t)
	rg.settle(t)
	got, _ := rg.f.Assignment(a.ID)
	require.Equal(t, pin, customField(got, fleetio.FieldAccessCode), "the emailed PIN is the one written back to Fleetio")
	require.Contains(t, customField(got, fleetio.FieldAccessInstructions), "Depot North")
	link := customField(got, fleetio.FieldAccessLink)
	require.True(t, strings.HasPrefix(link, rg.svc.PublicURL()+bookings.AccessPath), link)
	require.Contains(t, m.Body, link, "the email carries the access link")

	// The access page works and does not show the PIN.
	resp, err := http.Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// At the box: a wrong code first (refused), then the PIN opens k's
	// slot alone; the driver takes the key.
	rg.refused(t, wrongCode(pin), "a wrong code")
	rg.takeWith(t, pin, k)

	// The box's events reach the cloud with the booking's grant.
	require.Eventually(t, func() bool {
		evs, err := rg.sync.cloud.Events(syncBoxID, 0, 10000)
		require.NoError(t, err)
		return slices.ContainsFunc(evs, func(e box.Event) bool { return e.Type == box.EventCodeAccepted && e.GrantID == gid }) &&
			slices.ContainsFunc(evs, func(e box.Event) bool {
				return e.Type == box.EventKeyTaken && e.GrantID == gid && e.Slot == k.Slot
			})
	}, 15*time.Second, 20*time.Millisecond, "code_accepted and key_taken of %s at the cloud", gid)
	checkBookingEvents(t, rg, a.ID, box.EventKeyTaken)

	rg.returnKey(t, k)
	checkBookingEvents(t, rg, a.ID, box.EventKeyReturned)
}

// scenarioUpdated: the window moves -> the box's grant follows (the PIN
// stops working outside it); the driver changes -> the old PIN is refused,
// the new driver's (emailed to them) works.
func scenarioUpdated(t *testing.T, rg *fleetRig, k rigKey) {
	from, until := nowWindow(2 * time.Hour)
	a := rg.assign(t, k.ID, rg.ada, from, until)
	gid := bookings.GrantID(a.ID)
	rg.waitBoxGrant(t, gid, "active", func(g box.Grant) bool { return !g.Revoked && sameWindow(g, from, until) })
	pin1 := rg.mail.waitMail(t, rg.ada.Email, k.Name, 1).pin(t)
	rg.settle(t)

	// Moved to the future: the box's grant window follows; the PIN is not
	// good yet.
	from2, until2 := from.Add(3*time.Hour), from.Add(5*time.Hour)
	_, err := rg.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.StartedAt, a.EndedAt = from2, &until2 })
	require.NoError(t, err)
	rg.waitBoxGrant(t, gid, "window moved later", func(g box.Grant) bool { return sameWindow(g, from2, until2) })
	rg.mail.waitMail(t, rg.ada.Email, "Booking changed: "+k.Name, 1)
	rg.settle(t)
	rg.refused(t, pin1, "a PIN before its window")

	// Moved back to hold now: the same PIN works again.
	from3, until3 := from, from.Add(6*time.Hour)
	_, err = rg.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.StartedAt, a.EndedAt = from3, &until3 })
	require.NoError(t, err)
	rg.waitBoxGrant(t, gid, "window moved back", func(g box.Grant) bool { return sameWindow(g, from3, until3) })
	rg.settle(t)
	require.Equal(t, pin1, rg.code(t, a.ID), "a new window keeps the PIN")
	rg.takeWith(t, pin1, k)
	rg.returnKey(t, k)

	// Another driver: a new PIN for Bob; Ada's is refused at the box.
	_, err = rg.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.ContactID = rg.bob.ID })
	require.NoError(t, err)
	pin2 := rg.mail.waitMail(t, rg.bob.Email, k.Name, 1).pin(t)
	require.NotEqual(t, pin1, pin2)
	rg.waitBoxGrant(t, gid, "Bob's", func(g box.Grant) bool {
		return strings.Contains(g.DriverRef, strconv.FormatInt(rg.bob.ID, 10))
	})
	rg.settle(t)
	require.Equal(t, pin2, rg.code(t, a.ID))
	rg.refused(t, pin1, "the previous driver's PIN")
	rg.takeWith(t, pin2, k)
	rg.returnKey(t, k)
}

// scenarioDeleted: a deleted assignment's grant is revoked at the box and
// its PIN refused; an ended one's too, and its custom fields are cleared.
func scenarioDeleted(t *testing.T, rg *fleetRig, kd, ke rigKey) {
	from, until := nowWindow(2 * time.Hour)
	del := rg.assign(t, kd.ID, rg.ada, from, until)
	end := rg.assign(t, ke.ID, rg.bob, from, until)
	for _, id := range []int64{del.ID, end.ID} {
		rg.waitBoxGrant(t, bookings.GrantID(id), "active", func(g box.Grant) bool { return !g.Revoked })
	}
	pinDel := rg.mail.waitMail(t, rg.ada.Email, kd.Name, 1).pin(t)
	pinEnd := rg.mail.waitMail(t, rg.bob.Email, ke.Name, 1).pin(t)
	rg.settle(t)

	_, err := rg.f.DeleteAssignment(del.ID)
	require.NoError(t, err)
	past := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	_, err = rg.f.UpdateAssignment(end.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &past })
	require.NoError(t, err)
	for _, id := range []int64{del.ID, end.ID} {
		rg.waitBoxGrant(t, bookings.GrantID(id), "revoked", func(g box.Grant) bool { return g.Revoked })
	}
	rg.mail.waitMail(t, rg.ada.Email, "Booking cancelled: "+kd.Name, 1)
	rg.settle(t)
	rg.refused(t, pinDel, "a deleted assignment's PIN")
	rg.refused(t, pinEnd, "an ended assignment's PIN")

	got, ok := rg.f.Assignment(end.ID)
	require.True(t, ok)
	for _, f := range []string{fleetio.FieldAccessCode, fleetio.FieldAccessLink, fleetio.FieldAccessInstructions} {
		require.Empty(t, customField(got, f), "%s cleared on the ended assignment", f)
	}
	for _, id := range []int64{del.ID, end.ID} {
		bk, ok, err := rg.store.Booking(id)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, bookings.BookingEnded, bk.State)
	}
}

// scenarioDuplicates: every delivery twice, then held and released newest
// first, then an old delivery replayed (same id) and an old payload under a
// new id: one booking, the newest window, one PIN, one "ready" email.
func scenarioDuplicates(t *testing.T, rg *fleetRig, k rigKey) {
	rg.f.DuplicateDeliveries(true)
	defer rg.f.DuplicateDeliveries(false)
	rg.f.PauseDeliveries()
	from, until := nowWindow(time.Hour)
	a := rg.assign(t, k.ID, rg.ada, from, until)
	until2 := from.Add(3 * time.Hour)
	_, err := rg.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &until2 })
	require.NoError(t, err)
	until3 := from.Add(4 * time.Hour)
	_, err = rg.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &until3 })
	require.NoError(t, err)
	rg.f.ResumeDeliveries(fleetiotest.Reversed)
	rg.settle(t)

	gid := bookings.GrantID(a.ID)
	rg.waitBoxGrant(t, gid, "the newest window", func(g box.Grant) bool { return !g.Revoked && sameWindow(g, from, until3) })
	pin := rg.mail.waitMail(t, rg.ada.Email, k.Name, 1).pin(t)
	require.Equal(t, pin, rg.code(t, a.ID))

	// Replays: the created delivery again as sent (same id), and its
	// payload (the oldest window) under a new delivery id, correctly
	// signed. Neither moves the booking back.
	var created fleetiotest.Delivery
	for _, d := range rg.f.Deliveries() {
		if d.Event == fleetio.EventAssignmentCreated && strings.Contains(string(d.Body), `"id":`+strconv.FormatInt(a.ID, 10)+`,`) {
			created = d
		}
	}
	require.NotEmpty(t, created.Body, "the created delivery of %d", a.ID)
	require.Equal(t, http.StatusOK, rg.postWebhook(t, created.Body))
	replay := strings.Replace(string(created.Body), `"id":`+strconv.FormatInt(created.ID, 10), `"id":99000001`, 1)
	require.NotEqual(t, string(created.Body), replay)
	require.Equal(t, http.StatusOK, rg.postWebhook(t, []byte(replay)))
	rg.settle(t)

	g, ok := rg.boxGrant(t, gid)
	require.True(t, ok)
	require.True(t, sameWindow(g, from, until3), "the box keeps the newest window: %s..%s", g.From, g.Until)
	require.False(t, g.Revoked)
	require.Equal(t, pin, rg.code(t, a.ID), "one PIN")
	require.Equal(t, 1, countMailSubject(rg, rg.ada.Email, "is ready", k.Name), "one booking email")
	bks, err := rg.store.Bookings()
	require.NoError(t, err)
	n := 0
	for _, bk := range bks {
		if bk.AssignmentID == a.ID {
			n++
			require.Equal(t, bookings.BookingActive, bk.State)
		}
	}
	require.Equal(t, 1, n, "one booking")
	rg.takeWith(t, pin, k)
	rg.returnKey(t, k)
}

// scenarioPrompt: a vehicle linked in Prompt mode makes no grant, only a
// reservation and an email to the admin.
func scenarioPrompt(t *testing.T, rg *fleetRig, k rigKey) {
	v := rg.vehicles[k.ID]
	require.NoError(t, rg.b.SetLink(t.Context(), bookings.Link{VehicleID: v.ID, BoxID: syncBoxID, KeyID: k.ID, Mode: bookings.ModePrompt}))
	from, until := nowWindow(2 * time.Hour)
	a := rg.assign(t, k.ID, rg.bob, from, until)
	rg.mail.waitMail(t, adminEmail, "Reservation waiting: "+k.Name, 1)
	rg.settle(t)
	_, ok := rg.boxGrant(t, bookings.GrantID(a.ID))
	require.False(t, ok, "no grant before the admin books")
	_, ok, err := rg.store.Reservation(a.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Empty(t, rg.code(t, a.ID))
	require.Zero(t, countMail(rg, rg.bob.Email, k.Name), "the driver hears nothing yet")
	createPromptBooking(t, rg, k, a, from, until)
}

// postWebhook posts a delivery body to the bridge as Fleetio would.
func (rg *fleetRig) postWebhook(t testing.TB, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rg.svc.WebhookURL(), strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(fleetio.SignatureHeader, fleetiotest.Sign(fleetSecret, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func countMail(rg *fleetRig, addr, about string) int {
	return countMailSubject(rg, addr, "", about)
}

func countMailSubject(rg *fleetRig, addr, subj, about string) int {
	n := 0
	for _, m := range rg.mail.To(addr) {
		if strings.Contains(m.Subject, subj) && strings.Contains(m.Subject, about) {
			n++
		}
	}
	return n
}

// wrongCode is a code of pin's length that is not pin.
func wrongCode(pin string) string {
	b := []byte(pin)
	b[0] = '0' + (b[0]-'0'+5)%10
	return string(b)
}

// checkBookingEvents waits for an event of typ among the box events the
// bridge attached to the booking of assignment id.
func checkBookingEvents(t *testing.T, rg *fleetRig, id int64, typ box.EventType) bookings.BookingEvent {
	t.Helper()
	var found bookings.BookingEvent
	require.Eventually(t, func() bool {
		evs, err := rg.b.BookingEvents(id)
		require.NoError(t, err)
		i := slices.IndexFunc(evs, func(e bookings.BookingEvent) bool { return e.Type == typ })
		if i >= 0 {
			found = evs[i]
		}
		return i >= 0
	}, 15*time.Second, 20*time.Millisecond, "%s attached to the booking of assignment %d", typ, id)
	return found
}

// createPromptBooking books a Prompt reservation as the admin would (with
// a window of their own); from then on it is as Automatic: grant at the
// box, the PIN emailed to the driver and written back, the slot opens.
func createPromptBooking(t *testing.T, rg *fleetRig, k rigKey, a fleetio.VehicleAssignment, from, until time.Time) {
	t.Helper()
	until2 := until.Add(time.Hour)
	bk, err := rg.b.CreateBooking(t.Context(), a.ID, bookings.BookingEdit{Until: &until2})
	require.NoError(t, err)
	require.Equal(t, bookings.BookingActive, bk.State)
	gid := bookings.GrantID(a.ID)
	rg.waitBoxGrant(t, gid, "booked with the admin's window", func(g box.Grant) bool {
		return !g.Revoked && sameWindow(g, from, until2)
	})
	pin := rg.mail.waitMail(t, rg.bob.Email, k.Name, 1).pin(t)
	rg.settle(t)
	require.Equal(t, pin, rg.code(t, a.ID))
	_, ok, err := rg.store.Reservation(a.ID)
	require.NoError(t, err)
	require.False(t, ok, "the reservation is booked")
	rg.takeWith(t, pin, k)
	checkBookingEvents(t, rg, a.ID, box.EventKeyTaken)
	rg.returnKey(t, k)
	checkBookingEvents(t, rg, a.ID, box.EventKeyReturned)
}

// scenarioOverdue: the key is taken, the assignment ends, the key is not
// back: CheckOverdue records key_overdue on the booking and emails the
// driver, once.
func scenarioOverdue(t *testing.T, rg *fleetRig, k rigKey) {
	from, until := nowWindow(2 * time.Hour)
	a := rg.assign(t, k.ID, rg.ada, from, until)
	rg.waitBoxGrant(t, bookings.GrantID(a.ID), "active", func(g box.Grant) bool { return !g.Revoked })
	pin := rg.mail.waitMail(t, rg.ada.Email, k.Name, 1).pin(t)
	rg.settle(t)
	rg.takeWith(t, pin, k)
	checkBookingEvents(t, rg, a.ID, box.EventKeyTaken)

	n, err := rg.b.CheckOverdue(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "not overdue during its window")

	past := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	_, err = rg.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &past })
	require.NoError(t, err)
	rg.waitBoxGrant(t, bookings.GrantID(a.ID), "revoked at the end", func(g box.Grant) bool { return g.Revoked })
	rg.settle(t)

	n, err = rg.b.CheckOverdue(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	ev := checkBookingEvents(t, rg, a.ID, bookings.EventKeyOverdue)
	require.Equal(t, k.ID, ev.KeyID)
	m := rg.mail.waitMail(t, rg.ada.Email, "Key overdue: "+k.Name, 1)
	require.Contains(t, m.Body, "has not been returned")
	n, err = rg.b.CheckOverdue(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "raised once")
	require.Equal(t, 1, countMailSubject(rg, rg.ada.Email, "Key overdue", k.Name))

	// Returned late: the fob still opens its home slot; the return is
	// attached to the booking.
	rg.returnKey(t, k)
	checkBookingEvents(t, rg, a.ID, box.EventKeyReturned)
}

// scenarioDriverCode: in per_driver mode one driver's two assignments carry
// the same code (emailed, and in both keycafe_access_code fields); at the
// box it opens each key's slot only in that assignment's window.
func scenarioDriverCode(t *testing.T, rg *fleetRig, k1, k2 rigKey) {
	require.NoError(t, rg.b.SetCodeMode(bookings.CodePerDriver))
	defer func() { require.NoError(t, rg.b.SetCodeMode(bookings.CodePerAssignment)) }()
	from, until := nowWindow(2 * time.Hour)
	later, laterEnd := from.Add(4*time.Hour), from.Add(6*time.Hour)
	a1 := rg.assign(t, k1.ID, rg.bob, from, until)
	a2 := rg.assign(t, k2.ID, rg.bob, later, laterEnd)
	rg.waitBoxGrant(t, bookings.GrantID(a1.ID), "active", func(g box.Grant) bool { return !g.Revoked })
	rg.waitBoxGrant(t, bookings.GrantID(a2.ID), "later", func(g box.Grant) bool { return !g.Revoked && sameWindow(g, later, laterEnd) })
	dc := rg.waitBoxGrant(t, bookings.DriverGrantID(rg.bob.ID), "Bob's driver code", func(g box.Grant) bool { return !g.Revoked })
	require.Equal(t, box.KindDriverCode, dc.Kind)
	require.Equal(t, bookings.DriverRef(rg.bob.ID), dc.DriverRef)
	code := rg.mail.waitMail(t, rg.bob.Email, k1.Name, 1).pin(t)
	require.Equal(t, code, rg.mail.waitMail(t, rg.bob.Email, k2.Name, 1).pin(t), "one code for the driver")
	rg.settle(t)
	require.Equal(t, code, rg.code(t, a1.ID))
	require.Equal(t, code, rg.code(t, a2.ID))

	// Now: the code opens k1's slot, not k2's (its window is later).
	ev := rg.typeCode(t, code)
	require.Equal(t, box.EventCodeAccepted, ev.Type, "%+v", ev)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, rg.d.sim.slots.WaitReleased(ctx, k1.Slot))
	require.False(t, rg.d.sim.slots.Released(k2.Slot), "k2's window has not started")
	require.NoError(t, rg.d.sim.slots.WaitLocked(ctx, k1.Slot), "not taken: relocks")

	// k2's assignment moved to now: the same code opens both slots.
	_, err := rg.f.UpdateAssignment(a2.ID, func(a *fleetio.VehicleAssignment) { a.StartedAt = from })
	require.NoError(t, err)
	rg.waitBoxGrant(t, bookings.GrantID(a2.ID), "moved to now", func(g box.Grant) bool { return sameWindow(g, from, laterEnd) })
	rg.settle(t)
	ev = rg.typeCode(t, code)
	require.Equal(t, box.EventCodeAccepted, ev.Type, "%+v", ev)
	for _, k := range []rigKey{k1, k2} {
		require.NoError(t, rg.d.sim.slots.WaitReleased(ctx, k.Slot), "slot %d", k.Slot)
		require.NoError(t, rg.d.sim.slots.Take(k.Slot))
	}
	for _, k := range []rigKey{k1, k2} {
		require.Eventually(t, func() bool { return rg.boxHas(t, box.EventKeyTaken, k.Slot) }, 10*time.Second, 10*time.Millisecond)
		require.NoError(t, rg.d.sim.slots.WaitLocked(ctx, k.Slot))
	}
	for _, k := range []rigKey{k1, k2} {
		rg.returnKey(t, k)
	}
	checkBookingEvents(t, rg, a1.ID, box.EventKeyTaken)
	checkBookingEvents(t, rg, a2.ID, box.EventKeyTaken)
}
