package bookings

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// driverGrantPrefix names the driver-code grants the bridge makes: the id
// DriverGrantID gives, without the contact id.
var driverGrantPrefix = strings.TrimSuffix(DriverGrantID(0), "0")

// maxGapFill bounds how many events HandleEvents reads back from the cloud
// to fill a gap (events stored while the hook was not registered, or
// ingested while the bridge was down). It runs on the cloud's ingest
// goroutine, so a big gap is left to CatchUpEvents on the maintenance loop.
const maxGapFill = 1000

// HandleEvents ties the events a box sent to the bridge's bookings. Pass it
// to cloud.OnEvents: it runs on the goroutine that ingested the events, so it
// only reads and writes the local store (no Fleetio call, no notification).
// Events of grants the bridge did not make are ignored. A failure is logged:
// the events stay in the cloud and CatchUpEvents picks them up later.
func (b *Integration) HandleEvents(boxID string, evs []box.Event) {
	n, err := b.handleEvents(boxID, evs)
	if err != nil {
		b.log.Error("box events not tied to bookings (will catch up)", "box", boxID, "err", err)
		return
	}
	if n > 0 {
		b.log.Debug("box events tied to bookings", "box", boxID, "attached", n)
	}
}

// BookingEvents lists what happened at the box for a booking, oldest first:
// codes accepted or refused, the slot released, the key taken and returned,
// refused codes at that box during its window, and the bridge's own
// key_overdue. A booking the bridge never made is ErrNotFound.
func (b *Integration) BookingEvents(assignmentID int64) ([]BookingEvent, error) {
	evs, err := b.o.Store.bookingEvents(assignmentID)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		if _, ok, err := b.o.Store.Booking(assignmentID); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("events of booking %d: %w", assignmentID, ErrNotFound)
		}
	}
	return evs, nil
}

// CatchUpEvents ties the events the cloud holds that HandleEvents has not
// seen (the bridge was down, or the hook was registered late) to bookings.
// It returns how many were attached.
func (b *Integration) CatchUpEvents() (int, error) {
	boxes, err := b.o.Cloud.Boxes()
	if err != nil {
		return 0, fmt.Errorf("catch up box events: %w", err)
	}
	total := 0
	for _, id := range boxes {
		for {
			before := b.o.Store.seenOf(id)
			n, err := b.handleEvents(id, nil)
			total += n
			if err != nil {
				return total, fmt.Errorf("catch up events of box %s: %w", id, err)
			}
			if b.o.Store.seenOf(id) == before {
				break
			}
		}
	}
	return total, nil
}

// handleEvents attaches the events of boxID that continue what was handled
// without a gap. A gap (or evs nil) is filled from the cloud's copy.
func (b *Integration) handleEvents(boxID string, evs []box.Event) (int, error) {
	seen := b.o.Store.seenOf(boxID)
	evs = slices.DeleteFunc(slices.Clone(evs), func(e box.Event) bool { return e.Seq <= seen })
	slices.SortStableFunc(evs, func(a, b box.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(evs) == 0 || evs[0].Seq != seen+1 {
		// The cloud stores a batch before it calls the hook, so its copy
		// holds everything up to what we were handed.
		got, err := b.o.Cloud.Events(boxID, seen, maxGapFill)
		if err != nil {
			return 0, fmt.Errorf("read events after %d: %w", seen, err)
		}
		evs = got
	}
	if len(evs) == 0 {
		return 0, nil
	}
	// A remote release's key_taken/key_returned, and a slot_unexpected,
	// name only the slot: find the key that lives there.
	var slotKeys map[int]string
	for _, e := range evs {
		if e.KeyID == "" && e.Slot > 0 && slotOnly(e.Type) {
			keys, _, err := b.o.Cloud.Records(boxID)
			if err != nil {
				b.log.Warn("slot of an event not matched to a key", "box", boxID, "err", err)
				break
			}
			slotKeys = map[int]string{}
			for _, k := range keys {
				slotKeys[k.Slot] = k.ID
			}
			break
		}
	}
	var attached int
	var did watchCounts
	err := b.o.Store.watchUpdateBox(boxID, func(w *watchTx) error {
		attached = 0 // the store's engine may run the function again
		w.settle = b.o.ReturnSettle
		defer func() { did = w.did }()
		seen, err := w.lastSeen(boxID)
		if err != nil {
			return err
		}
		last := seen
		for _, e := range evs {
			if e.Seq <= last {
				continue
			}
			if e.Seq != last+1 {
				break // a gap: wait for the cloud to have it
			}
			if e.KeyID == "" && slotKeys != nil && slotOnly(e.Type) {
				e.KeyID = slotKeys[e.Slot]
			}
			n, err := w.handle(boxID, e)
			if err != nil {
				return fmt.Errorf("event %d (%s): %w", e.Seq, e.Type, err)
			}
			attached += n
			last = e.Seq
		}
		if last == seen {
			return nil
		}
		return w.setSeen(boxID, last)
	})
	if err != nil {
		return 0, fmt.Errorf("bridge store: events of box %s: %w", boxID, err)
	}
	b.stats.keypadAttacks.Add(uint64(did.attacks))
	b.stats.keypadClosures.Add(uint64(did.closures))
	b.stats.returnsUnconfirmed.Add(uint64(did.unconfirmed))
	if did.queued > 0 {
		b.wakeAlerts()
	}
	return attached, nil
}

// slotOnly says whether an event of type t may name its slot and not its
// key, the key being the one that lives in the slot.
func slotOnly(t box.EventType) bool {
	return t == box.EventKeyTaken || t == box.EventKeyReturned || t == box.EventSlotUnexpected
}

// bookingGrant returns the assignment id of a booking grant id.
func bookingGrant(grantID string) (int64, bool) {
	rest, ok := strings.CutPrefix(grantID, GrantSource+"-")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil && id > 0
}

// driverCodeContact returns the contact id of a driver-code grant id.
func driverCodeContact(grantID string) (int64, bool) {
	rest, ok := strings.CutPrefix(grantID, driverGrantPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil && id > 0
}

// bookingEnd is when a booking's window ended or ends: its Until, or the
// moment it was ended if that came first (deleted or ended early). Zero:
// open-ended and still active.
func bookingEnd(bk Booking) time.Time {
	end := bk.Until
	if bk.State != BookingActive && !bk.Changed.IsZero() && (end.IsZero() || bk.Changed.Before(end)) {
		end = bk.Changed
	}
	return end
}

func inWindow(bk Booking, t time.Time) bool {
	end := bookingEnd(bk)
	return !t.Before(bk.From) && (end.IsZero() || t.Before(end))
}

// grantEvent says whether an event carrying a booking's grant is worth
// keeping with the booking: what the driver did, not the box's bookkeeping.
func grantEvent(e box.Event) bool {
	switch e.Type {
	case box.EventCodeAccepted, box.EventCodeRefused, box.EventSlotReleased, box.EventKeyTaken,
		box.EventKeyAbsent, box.EventHardwareFault, box.EventRefusalsMerged:
		// refusals_merged: the box counted repeated refusals of this grant
		// (its Count) instead of sending each.
		return true
	case box.EventSlotRelocked:
		// Relocked after a take is the key_taken again; relocked on a
		// timeout is news: the slot opened and nothing was taken.
		return e.Reason == box.ReasonTimeout || e.Reason == box.ReasonStop
	}
	return false
}

func bookingEvent(boxID string, e box.Event, assignmentID int64, via string) BookingEvent {
	return BookingEvent{AssignmentID: assignmentID, BoxID: boxID, Seq: e.Seq, Time: e.Time, Type: e.Type,
		Slot: e.Slot, KeyID: e.KeyID, GrantID: e.GrantID, Reason: e.Reason, Purpose: e.Purpose,
		Failures: e.Failures, ClockUntrusted: e.ClockUntrusted, Detail: e.Detail, ReturnBy: e.ReturnBy, SeatedMS: e.SeatedMS,
		Count: e.Count, Via: via}
}

// handle ties one event to the bookings it belongs to.
func (w *watchTx) handle(boxID string, e box.Event) (int, error) {
	// A box's bytes: a key or grant id the box could not hold names nothing
	// of ours, and must not reach a store key (an over-long one would fail
	// the transaction and stall the box's events behind it).
	if e.KeyID != "" && !box.ValidID(e.KeyID) {
		e.KeyID = ""
	}
	if e.GrantID != "" && !box.ValidID(e.GrantID) {
		return 0, nil
	}
	if e.GrantID != "" {
		return w.handleGrantEvent(boxID, e)
	}
	switch e.Type {
	case box.EventKeyTaken:
		if e.KeyID == "" {
			return 0, nil
		}
		bk, ok, err := w.keyBooking(boxID, e)
		if err != nil || !ok {
			// Taken outside any booking (a remote release for a
			// technician): whoever had it before does not hold it now.
			return 0, firstErr(err, w.takenBy(boxID, e, 0))
		}
		if err := w.takenBy(boxID, e, bk.AssignmentID); err != nil {
			return 0, err
		}
		return 1, w.attach(bookingEvent(boxID, e, bk.AssignmentID, viaKey))
	case box.EventKeyReturned, box.EventReturnRefused:
		if e.KeyID == "" {
			return 0, nil
		}
		// The key goes back to the booking that took it, even after its
		// window (an overdue key returned late).
		id, held, err := w.holder(boxID, e.KeyID)
		if err != nil {
			return 0, err
		}
		if !held {
			bk, ok, err := w.keyBooking(boxID, e)
			if err != nil || !ok {
				return 0, err
			}
			id = bk.AssignmentID
		}
		be := bookingEvent(boxID, e, id, viaKey)
		if e.Type == box.EventKeyReturned {
			proof, why := returnProof(e, w.settle)
			switch {
			case !proof:
				// A fob alone is weak evidence: the key stays out with
				// its booking (overdue once the window ends), and the
				// admin is told.
				be.Unconfirmed, be.Detail = true, joinDetail(why, e.Detail)
				w.did.unconfirmed++
				if held {
					if err := w.queueAlert(unconfirmedReturnAlert(boxID, id, e, why)); err != nil {
						return 0, err
					}
				}
			case held:
				if err := w.clearHolder(boxID, e.KeyID); err != nil {
					return 0, err
				}
				cleared, err := w.clearOverdue(id, e.Time, returnedBy(e))
				if err != nil {
					return 0, err
				}
				// What the sensor saw may not be the key: a removal
				// from the locked slot soon after undoes the return.
				if err := w.watchReturn(boxID, e, id, cleared); err != nil {
					return 0, err
				}
			}
		}
		return 1, w.attach(be)
	case box.EventSlotUnexpected:
		return w.removedAfterReturn(boxID, e)
	case box.EventKeypadAttack:
		// Someone may be guessing codes: the admin is told (alerts.go),
		// whatever the box's clock, and the bookings in whose window it
		// happened see it.
		w.did.attacks++
		if err := w.queueAlert(keypadAttackAlert(boxID, e)); err != nil {
			return 0, err
		}
		return w.attachInWindow(boxID, e, viaWindow, nil)
	case box.EventKeypadClosed:
		// The keypad checks no code, a driver's neither: the admin is
		// told at once how long and how to reopen it (alerts.go), and the
		// bookings in whose window it closed see it.
		w.did.closures++
		if err := w.queueAlert(keypadClosedAlert(boxID, e)); err != nil {
			return 0, err
		}
		return w.attachInWindow(boxID, e, viaWindow, nil)
	case box.EventCodeRefused, box.EventLockout, box.EventRefusalsMerged:
		// A wrong code at the box during a booking: maybe the driver
		// mistyping, maybe someone guessing. Every booking of the box
		// whose window holds it sees it (refusals_merged: Count of them,
		// merged by the box).
		return w.attachInWindow(boxID, e, viaWindow, nil)
	}
	return 0, nil
}

// attachInWindow ties e to every booking of the box whose window holds its
// time and that match accepts (nil: all), none when the box's clock is not
// trusted.
func (w *watchTx) attachInWindow(boxID string, e box.Event, via string, match func(Booking) bool) (int, error) {
	if e.ClockUntrusted {
		return 0, nil // its time says nothing about any window
	}
	bks, err := w.bookingsOf(boxID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, bk := range bks {
		if inWindow(bk, e.Time) && (match == nil || match(bk)) {
			if err := w.attach(bookingEvent(boxID, e, bk.AssignmentID, via)); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// takenBy records that e's key was taken for booking id (0: outside any
// booking). The booking that held it before no longer does: the key was in
// its slot to be taken, so an overdue alert of that booking (left raised
// by a return the slot did not confirm) is cleared.
func (w *watchTx) takenBy(boxID string, e box.Event, id int64) error {
	prev, ok, err := w.holder(boxID, e.KeyID)
	if err != nil {
		return err
	}
	if ok && prev != id {
		if _, err := w.clearOverdue(prev, e.Time, "key taken again from its slot"); err != nil {
			return err
		}
	}
	if err := w.unwatchReturn(boxID, e.KeyID); err != nil { // taken: what was returned was there
		return err
	}
	if id == 0 {
		return w.clearHolder(boxID, e.KeyID)
	}
	return w.setHolder(boxID, e.KeyID, id)
}

func joinDetail(a, b string) string {
	if b == "" {
		return a
	}
	return a + "; " + b
}

// handleGrantEvent ties an event that names a grant: the booking's own, or
// the driver's code (to that driver's bookings on the box during their
// window). Grants the bridge did not make are not its business, except that
// a key taken with one is no longer held by a booking.
func (w *watchTx) handleGrantEvent(boxID string, e box.Event) (int, error) {
	if contact, ok := driverCodeContact(e.GrantID); ok {
		if e.Type != box.EventCodeAccepted && e.Type != box.EventCodeRefused && e.Type != box.EventRefusalsMerged {
			return 0, nil
		}
		return w.attachInWindow(boxID, e, viaDriverCode, func(bk Booking) bool { return bk.ContactID == contact })
	}
	id, ok := bookingGrant(e.GrantID)
	var bk Booking
	if ok {
		var have bool
		var err error
		if bk, have, err = w.booking(id); err != nil {
			return 0, err
		}
		ok = have && bk.GrantID == e.GrantID
	}
	if !ok {
		if e.Type == box.EventKeyTaken && e.KeyID != "" {
			return 0, w.takenBy(boxID, e, 0)
		}
		return 0, nil
	}
	if !grantEvent(e) {
		return 0, nil
	}
	if e.Type == box.EventKeyTaken && e.KeyID != "" {
		if err := w.takenBy(boxID, e, id); err != nil {
			return 0, err
		}
	}
	return 1, w.attach(bookingEvent(boxID, e, id, viaGrant))
}

// keyBooking finds the booking of the box for e's key whose window holds
// e's time (the latest to start, should windows overlap).
func (w *watchTx) keyBooking(boxID string, e box.Event) (Booking, bool, error) {
	if e.ClockUntrusted {
		return Booking{}, false, nil
	}
	bks, err := w.bookingsOf(boxID)
	if err != nil {
		return Booking{}, false, err
	}
	var best Booking
	found := false
	for _, bk := range bks {
		if bk.KeyID == e.KeyID && inWindow(bk, e.Time) && (!found || bk.From.After(best.From)) {
			best, found = bk, true
		}
	}
	return best, found, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
