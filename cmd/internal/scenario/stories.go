package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sim/netcut"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// The box every story is told at.
const boxA = "box-1"

// The seeded drivers' addresses (cmd/internal/depot/seed.go).
const (
	adaEmail      = "ada@depot.example"
	alanEmail     = "alan@depot.example"
	linusPhone    = "+15550102"
	managerEmail  = "manager@depot.example"
	seededVehicle = "Van 7"
)

func playAutomatic(ctx context.Context, r *Run) error {
	a, err := r.assignmentOf(seededVehicle)
	if err != nil {
		return err
	}
	pin, err := r.awaitPIN(ctx, "Fleetio assigned Van 7 to Ada: the booking PIN is written into the assignment", a)
	if err != nil {
		return err
	}
	if err := r.Await(ctx, "Ada's email carries the PIN", r.messageTo(adaEmail, pin)); err != nil {
		return err
	}
	if err := r.Await(ctx, "the box has the booking's grant", r.hasGrant(a.ID)); err != nil {
		return err
	}
	mark := r.lastSeq(boxA)
	if err := r.Do("Ada types the PIN and # on the keypad", func() error { return r.D.Press(ctx, boxA, pin+"#") }); err != nil {
		return err
	}
	if err := r.Await(ctx, "slot 1 opens for Van 7's key", r.released(boxA, 1, mark)); err != nil {
		return err
	}
	if err := r.Do("Ada takes the key", func() error { return r.D.Take(ctx, boxA, 1) }); err != nil {
		return err
	}
	if err := r.Await(ctx, "the box records key_taken", r.event(boxA, mark, box.EventKeyTaken, 1)); err != nil {
		return err
	}
	if err := r.Await(ctx, "the bridge's booking shows the key taken", r.bookingEvent(a.ID, box.EventKeyTaken)); err != nil {
		return err
	}
	return r.Await(ctx, "the three Keycafe fields are filled", r.fieldsFilled(a.ID, pin))
}

func playPrompt(ctx context.Context, r *Run) error {
	a, err := r.assignStep("Fleetio assigns Truck 12 (Prompt mode) to Linus for 4 hours", "Truck 12", "Linus", 4*time.Hour)
	if err != nil {
		return err
	}
	if err := r.Await(ctx, "a reservation waits for the fleet manager", func() error {
		rs, err := r.D.Reservations(ctx)
		if err != nil {
			return err
		}
		for _, res := range rs {
			if res.AssignmentID == a.ID {
				return nil
			}
		}
		return fmt.Errorf("reservations: %d, none for assignment %d", len(rs), a.ID)
	}); err != nil {
		return err
	}
	if err := r.Await(ctx, "the fleet manager is asked by email", r.messageTo(managerEmail, "")); err != nil {
		return err
	}
	if err := r.Do("no PIN has reached Linus yet", func() error {
		if r.messageTo(linusPhone, "")() == nil {
			return errors.New("Linus got a message before the booking was made")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := r.Do("the fleet manager creates the booking", func() error {
		return r.D.Book(ctx, a.ID, bridge.BookRequest{})
	}); err != nil {
		return err
	}
	pin, err := r.awaitPIN(ctx, "the PIN is written into the assignment", a)
	if err != nil {
		return err
	}
	if err := r.Await(ctx, "Linus gets the PIN by SMS", r.messageTo(linusPhone, pin)); err != nil {
		return err
	}
	if err := r.Await(ctx, "the box has the booking's grant", r.hasGrant(a.ID)); err != nil {
		return err
	}
	mark := r.lastSeq(boxA)
	if err := r.Do("Linus types the PIN", func() error { return r.D.Press(ctx, boxA, pin+"#") }); err != nil {
		return err
	}
	return r.Await(ctx, "slot 2 opens for Truck 12's key", r.released(boxA, 2, mark))
}

func playChangedDeleted(ctx context.Context, r *Run) error {
	a, err := r.assignStep("Fleetio assigns Car 8 to Margaret for 4 hours", "Car 8", "Margaret", 4*time.Hour)
	if err != nil {
		return err
	}
	pin, err := r.awaitPIN(ctx, "the booking PIN is written into the assignment", a)
	if err != nil {
		return err
	}
	alan, err := r.contact("Alan")
	if err != nil {
		return err
	}
	if err := r.Do("the fleet manager gives the car to Alan, until 2 hours from now", func() error {
		_, err := r.D.Fleetio().UpdateAssignment(a.ID, func(x *fleetio.VehicleAssignment) {
			end := time.Now().Add(2 * time.Hour)
			x.ContactID, x.EndedAt = alan.ID, &end
		})
		return err
	}); err != nil {
		return err
	}
	if err := r.Await(ctx, "Alan is told his PIN by email", func() error {
		p, err := r.pinOf(a)
		if err != nil {
			return err
		}
		pin = p
		return r.messageTo(alanEmail, p)()
	}); err != nil {
		return err
	}
	if err := r.Await(ctx, "the box has the changed grant", r.hasGrant(a.ID)); err != nil {
		return err
	}
	revBefore, err := r.cloudRevision(boxA)
	if err != nil {
		return err
	}
	if err := r.Do("the assignment is deleted in Fleetio", func() error {
		_, err := r.D.Fleetio().DeleteAssignment(a.ID)
		return err
	}); err != nil {
		return err
	}
	if err := r.Await(ctx, "the bridge withdraws the grant and the box has it withdrawn", func() error {
		rev, err := r.cloudRevision(boxA)
		if err != nil {
			return err
		}
		if rev <= revBefore {
			return fmt.Errorf("the cloud's revision is still %d", rev)
		}
		return r.boxCurrent(boxA)()
	}); err != nil {
		return err
	}
	mark := r.lastSeq(boxA)
	if err := r.Do("the old PIN is typed", func() error { return r.D.Press(ctx, boxA, pin+"#") }); err != nil {
		return err
	}
	return r.Await(ctx, "the box refuses it and slot 4 stays locked", r.refused(boxA, mark))
}

func playOffline(ctx context.Context, r *Run) error {
	a, err := r.assignStep("Fleetio assigns Van 9 to Grace for 4 hours", "Van 9", "Grace", 4*time.Hour)
	if err != nil {
		return err
	}
	pin, err := r.awaitPIN(ctx, "the booking PIN is written into the assignment", a)
	if err != nil {
		return err
	}
	if err := r.Await(ctx, "the box has the booking's grant", r.hasGrant(a.ID)); err != nil {
		return err
	}
	if err := r.Do("the box's network is cut", func() error { return r.D.SetNetwork(boxA, netcut.Reset) }); err != nil {
		return err
	}
	if err := r.Await(ctx, "the box knows it is offline", r.boxStatus(boxA, func(s boxsocket.Status) error {
		if s.Cloud == "connected" {
			return errors.New("the box still says connected")
		}
		return nil
	})); err != nil {
		return err
	}
	mark := r.lastSeq(boxA)
	if err := r.Do("Grace types the PIN at the offline box", func() error { return r.D.Press(ctx, boxA, pin+"#") }); err != nil {
		return err
	}
	if err := r.Await(ctx, "slot 5 opens all the same", r.released(boxA, 5, mark)); err != nil {
		return err
	}
	if err := r.Do("Grace takes the key", func() error { return r.D.Take(ctx, boxA, 5) }); err != nil {
		return err
	}
	var taken uint64
	if err := r.Await(ctx, "key_taken waits in the box's outbox", func() error {
		e, ok := r.find(boxA, mark, box.EventKeyTaken, 5)
		if !ok {
			return errors.New("no key_taken yet")
		}
		taken = e.Seq
		return r.boxStatus(boxA, func(s boxsocket.Status) error {
			if s.Outbox == 0 {
				return errors.New("the outbox is empty")
			}
			return nil
		})()
	}); err != nil {
		return err
	}
	if err := r.Do("the network comes back", func() error { return r.D.SetNetwork(boxA, 0) }); err != nil {
		return err
	}
	if err := r.Await(ctx, "the box reconnects and its outbox drains", r.boxStatus(boxA, func(s boxsocket.Status) error {
		if s.Cloud != "connected" || s.Outbox != 0 {
			return fmt.Errorf("cloud %q, outbox %d", s.Cloud, s.Outbox)
		}
		return nil
	})); err != nil {
		return err
	}
	return r.Await(ctx, "the bridge has the key_taken made offline", r.cloudHas(boxA, taken, box.EventKeyTaken))
}

func playPowerCut(ctx context.Context, r *Run) error {
	_, pin, err := r.seededBooking(ctx)
	if err != nil {
		return err
	}
	mark := r.lastSeq(boxA)
	if err := r.Do("Ada types the PIN", func() error { return r.D.Press(ctx, boxA, pin+"#") }); err != nil {
		return err
	}
	if err := r.Await(ctx, "slot 1 is released", r.released(boxA, 1, mark)); err != nil {
		return err
	}
	released, _ := r.find(boxA, mark, box.EventSlotReleased, 1)
	if err := r.Do("the power is pulled while the slot is released", func() error { return r.D.SetPower(ctx, boxA, false) }); err != nil {
		return err
	}
	if err := r.Do("the power comes back", func() error { return r.D.SetPower(ctx, boxA, true) }); err != nil {
		return err
	}
	if err := r.Await(ctx, "slot 1 is locked again, its key still there", func() error {
		v, err := r.view(boxA)
		if err != nil {
			return err
		}
		if v.Process != depot.ProcessRunning || v.State == nil || len(v.State.Slots) < 1 {
			return fmt.Errorf("the box is %s", v.Process)
		}
		s := v.State.Slots[0]
		if s.Released || !s.KeyInSlot || !s.KeyPresent {
			return fmt.Errorf("slot 1: released %v, key in slot %v, sensor %v", s.Released, s.KeyInSlot, s.KeyPresent)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := r.Await(ctx, "the box records its new start", r.event(boxA, released.Seq, box.EventBoxStarted, 0)); err != nil {
		return err
	}
	return r.Await(ctx, "the slot_released from before the cut reaches the bridge", r.cloudHas(boxA, released.Seq, box.EventSlotReleased))
}

func playForgedGrant(ctx context.Context, r *Run) error {
	_, pin, err := r.seededBooking(ctx)
	if err != nil {
		return err
	}
	mark := r.lastSeq(boxA)
	if err := r.Do("an attacker with the broker publishes a forged grant batch to the box", func() error {
		return r.D.ForgeGrant(ctx, boxA)
	}); err != nil {
		return err
	}
	var refusal box.Event
	if err := r.Await(ctx, "the box refuses it (sync_refused)", func() error {
		e, ok := r.find(boxA, mark, box.EventSyncRefused, 0)
		if !ok {
			return errors.New("no sync_refused")
		}
		refusal = e
		return nil
	}); err != nil {
		return err
	}
	if err := r.Await(ctx, "the security event reaches the bridge", func() error {
		return r.cloudHas(boxA, refusal.Seq, box.EventSyncRefused)()
	}); err != nil {
		return err
	}
	mark = r.lastSeq(boxA)
	if err := r.Do("the forged code is typed", func() error { return r.D.Press(ctx, boxA, depot.ForgedCode+"#") }); err != nil {
		return err
	}
	if err := r.Await(ctx, "the forged code opens nothing", r.refused(boxA, mark)); err != nil {
		return err
	}
	mark = r.lastSeq(boxA)
	if err := r.Do("Ada types her PIN", func() error { return r.D.Press(ctx, boxA, pin+"#") }); err != nil {
		return err
	}
	return r.Await(ctx, "her PIN still opens slot 1", r.released(boxA, 1, mark))
}

// ---- what the steps look at

func (r *Run) view(id string) (depot.BoxView, error) {
	for _, v := range r.D.Boxes() {
		if v.ID == id {
			return v, nil
		}
	}
	return depot.BoxView{}, fmt.Errorf("no box %s", id)
}

// boxStatus checks the box's latest status.
func (r *Run) boxStatus(id string, check func(boxsocket.Status) error) func() error {
	return func() error {
		v, err := r.view(id)
		if err != nil {
			return err
		}
		if v.State == nil {
			return errors.New("the box has sent no state yet")
		}
		return check(v.State.Status)
	}
}

// hasGrant: the bridge made the booking's grant for assignment id and the
// box has applied the cloud's revision that holds it.
func (r *Run) hasGrant(id int64) func() error {
	return func() error {
		rows, err := r.D.Bookings(context.Background())
		if err != nil {
			return err
		}
		for _, row := range rows {
			if row.Booking == nil || row.Booking.AssignmentID != id {
				continue
			}
			if row.GrantID == "" || row.Booking.PendingGrant {
				return fmt.Errorf("the booking of assignment %d has no grant in the cloud yet", id)
			}
			return r.boxCurrent(boxA)()
		}
		return fmt.Errorf("no booking for assignment %d", id)
	}
}

// boxCurrent: the box has applied the cloud's latest revision for it.
func (r *Run) boxCurrent(id string) func() error {
	return func() error {
		want, err := r.cloudRevision(id)
		if err != nil {
			return err
		}
		return r.boxStatus(id, func(s boxsocket.Status) error {
			if s.Revision < want {
				return fmt.Errorf("the box is at revision %d, the cloud at %d", s.Revision, want)
			}
			return nil
		})()
	}
}

func (r *Run) cloudRevision(id string) (uint64, error) {
	return r.D.Bridge().Cloud().Revision(id)
}

// lastSeq is the box's latest event seen.
func (r *Run) lastSeq(id string) uint64 {
	evs := r.D.Events(id)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// find is the first event of type t (at slot, if slot > 0) after seq.
func (r *Run) find(id string, after uint64, t box.EventType, slot int) (box.Event, bool) {
	for _, e := range r.D.Events(id) {
		if e.Seq > after && e.Type == t && (slot == 0 || e.Slot == slot) {
			return e, true
		}
	}
	return box.Event{}, false
}

func (r *Run) event(id string, after uint64, t box.EventType, slot int) func() error {
	return func() error {
		if _, ok := r.find(id, after, t, slot); !ok {
			return fmt.Errorf("no %s%s after event %d; last: %s", t, slotText(slot), after, r.lastEvents(id, 3))
		}
		return nil
	}
}

// released: slot_released at slot after seq.
func (r *Run) released(id string, slot int, after uint64) func() error {
	return r.event(id, after, box.EventSlotReleased, slot)
}

// refused: code_refused after seq, and no slot released since.
func (r *Run) refused(id string, after uint64) func() error {
	return func() error {
		if e, ok := r.find(id, after, box.EventSlotReleased, 0); ok {
			return &fatal{fmt.Errorf("slot %d was released", e.Slot)}
		}
		return r.event(id, after, box.EventCodeRefused, 0)()
	}
}

// fatal is a check's failure that waiting cannot mend.
type fatal struct{ error }

func (f *fatal) Unwrap() error { return f.error }

func (r *Run) lastEvents(id string, n int) string {
	evs := r.D.Events(id)
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("%d %s%s", e.Seq, e.Type, slotText(e.Slot)))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func slotText(slot int) string {
	if slot == 0 {
		return ""
	}
	return fmt.Sprintf(" (slot %d)", slot)
}

// cloudHas: the cloud stored the box's event seq, of type t.
func (r *Run) cloudHas(id string, seq uint64, t box.EventType) func() error {
	return func() error {
		evs, err := r.D.Bridge().Cloud().Events(id, seq-1, 1)
		if err != nil {
			return err
		}
		if len(evs) == 0 || evs[0].Seq != seq {
			high, _ := r.D.Bridge().Cloud().HighestSeq(id)
			return fmt.Errorf("the cloud has the box's events up to %d, not %d", high, seq)
		}
		if evs[0].Type != t {
			return &fatal{fmt.Errorf("the cloud's event %d is %s, not %s", seq, evs[0].Type, t)}
		}
		return nil
	}
}

// messageTo: the inbox has a message to addr whose body holds text.
func (r *Run) messageTo(addr, text string) func() error {
	return func() error {
		n := 0
		for _, m := range r.D.Inbox() {
			if strings.Contains(m.To, addr) {
				n++
				if strings.Contains(m.Body, text) {
					return nil
				}
			}
		}
		if text == "" {
			return fmt.Errorf("no message to %s", addr)
		}
		return fmt.Errorf("%d message(s) to %s, none holding %q", n, addr, text)
	}
}

// pinOf is the assignment's Keycafe access code, once written.
func (r *Run) pinOf(a fleetio.VehicleAssignment) (string, error) {
	cur, ok := r.D.Fleetio().Assignment(a.ID)
	if !ok {
		return "", fmt.Errorf("assignment %d is gone", a.ID)
	}
	pin, _ := cur.CustomFields[fleetio.FieldAccessCode].(string)
	if pin == "" {
		return "", errors.New("the access code field is empty")
	}
	return pin, nil
}

func (r *Run) fieldsFilled(id int64, pin string) func() error {
	return func() error {
		a, ok := r.D.Fleetio().Assignment(id)
		if !ok {
			return fmt.Errorf("assignment %d is gone", id)
		}
		for _, f := range []string{fleetio.FieldAccessInstructions, fleetio.FieldAccessLink, fleetio.FieldAccessCode} {
			if v, _ := a.CustomFields[f].(string); v == "" {
				return fmt.Errorf("%s is empty", f)
			}
		}
		if a.CustomFields[fleetio.FieldAccessCode] != pin {
			return fmt.Errorf("the access code is %v, not the PIN typed", a.CustomFields[fleetio.FieldAccessCode])
		}
		return nil
	}
}

// bookingEvent: the bridge's booking of assignment id lists an event of type t.
func (r *Run) bookingEvent(id int64, t box.EventType) func() error {
	return func() error {
		rows, err := r.D.Bookings(context.Background())
		if err != nil {
			return err
		}
		for _, row := range rows {
			if row.Booking == nil || row.Booking.AssignmentID != id {
				continue
			}
			for _, e := range row.Events {
				if e.Type == t {
					return nil
				}
			}
			return fmt.Errorf("the booking has %d event(s), no %s", len(row.Events), t)
		}
		return fmt.Errorf("no booking for assignment %d", id)
	}
}

// seededBooking is the steps to Ada's seeded booking of Van 7: its PIN
// written into the assignment and its grant at the box.
func (r *Run) seededBooking(ctx context.Context) (fleetio.VehicleAssignment, string, error) {
	a, err := r.assignmentOf(seededVehicle)
	if err != nil {
		return a, "", err
	}
	pin, err := r.awaitPIN(ctx, "Ada's booking PIN is written into the assignment", a)
	if err != nil {
		return a, "", err
	}
	return a, pin, r.Await(ctx, "the box has the booking's grant", r.hasGrant(a.ID))
}

// awaitPIN is the step that waits for the assignment's booking PIN in its
// Keycafe access code field.
func (r *Run) awaitPIN(ctx context.Context, what string, a fleetio.VehicleAssignment) (pin string, err error) {
	err = r.Await(ctx, what, func() (err error) {
		pin, err = r.pinOf(a)
		return err
	})
	return pin, err
}

// assignStep is the step where Fleetio assigns the vehicle to the driver
// (by first name) from now for d.
func (r *Run) assignStep(what, vehicle, driver string, d time.Duration) (a fleetio.VehicleAssignment, err error) {
	err = r.Do(what, func() (err error) {
		a, err = r.assign(vehicle, driver, d)
		return err
	})
	return a, err
}

// assignmentOf is the (first) assignment of the vehicle named name.
func (r *Run) assignmentOf(name string) (fleetio.VehicleAssignment, error) {
	v, err := r.vehicle(name)
	if err != nil {
		return fleetio.VehicleAssignment{}, err
	}
	for _, a := range r.D.Fleetio().Assignments() {
		if a.VehicleID == v.ID {
			return a, nil
		}
	}
	return fleetio.VehicleAssignment{}, fmt.Errorf("no assignment of %s", name)
}

// assign assigns the vehicle to the driver (by first name) from now for d.
func (r *Run) assign(vehicle, driver string, d time.Duration) (fleetio.VehicleAssignment, error) {
	v, err := r.vehicle(vehicle)
	if err != nil {
		return fleetio.VehicleAssignment{}, err
	}
	c, err := r.contact(driver)
	if err != nil {
		return fleetio.VehicleAssignment{}, err
	}
	now := time.Now()
	end := now.Add(d)
	return r.D.Fleetio().CreateAssignment(fleetio.VehicleAssignment{VehicleID: v.ID, ContactID: c.ID, StartedAt: now, EndedAt: &end})
}

func (r *Run) vehicle(name string) (fleetio.Vehicle, error) {
	for _, v := range r.D.Fleetio().Vehicles() {
		if v.Name == name {
			return v, nil
		}
	}
	return fleetio.Vehicle{}, fmt.Errorf("no vehicle %q in Fleetio", name)
}

func (r *Run) contact(first string) (fleetio.Contact, error) {
	for _, c := range r.D.Fleetio().Contacts() {
		if c.FirstName == first {
			return c, nil
		}
	}
	return fleetio.Contact{}, fmt.Errorf("no driver %q in Fleetio", first)
}
