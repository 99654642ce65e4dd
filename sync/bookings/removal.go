package bookings

import (
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// A proven fob return says the slot's sensor saw something seated for the
// settle time, not that it was the key: a copied fob and any object pressed
// on the sensor for two seconds pass. Pulling the object out afterwards is
// seen by the box only as slot_unexpected ("key removed from a locked
// slot", no key id). So the bridge remembers each proven return of a key a
// booking held (watch_returns) and, when the key's slot reports such
// a removal before the key was taken again, undoes the return: the
// booking holds the key again, an overdue alert the return cleared is
// raised again (the same alert), and the admin is told (return_unconfirmed,
// with the reason).

// removalWatch is how long after a proven return a removal from the
// locked slot undoes it. A fake return is pulled out within minutes (the
// object is the thief's); the next booking's take normally ends the watch
// well within a day. Past a day, a removal is a break-in to look into (the
// box reports it either way), not evidence against the driver who returned
// the key yesterday.
const removalWatch = 24 * time.Hour

// detailKeyAppeared is the Detail of a slot_unexpected that says a key was
// seated in a locked slot (box/controller.go); every other one is a
// removal. A slot_unexpected of a firmware with other words counts as a
// removal: fail secure, it costs the admin a message.
const detailKeyAppeared = "key appeared in a locked slot"

// watchedReturn is a proven return of a key a booking held.
type watchedReturn struct {
	AssignmentID int64     `json:"assignment_id"`
	Slot         int       `json:"slot"`
	Seq          uint64    `json:"seq"`
	At           time.Time `json:"at"` // box time of the return
	// ClearedOverdue: the return cleared the booking's overdue alert.
	ClearedOverdue bool `json:"cleared_overdue,omitempty"`
}

// watchReturn remembers the proven return e of a key booking id held.
func (w *watchTx) watchReturn(boxID string, e box.Event, id int64, clearedOverdue bool) error {
	return w.put(tReturns, returnKey(boxID, e.KeyID), watchedReturn{AssignmentID: id, Slot: e.Slot, Seq: e.Seq,
		At: e.Time, ClearedOverdue: clearedOverdue})
}

// unwatchReturn forgets the return of a key: it was taken from its slot.
func (w *watchTx) unwatchReturn(boxID, keyID string) error {
	return w.del(tReturns, returnKey(boxID, keyID))
}

// removedAfterReturn undoes the watched return of the key of e's slot when
// e (a slot_unexpected, its key found from the slot) is a removal within
// removalWatch of it. A removal on a box whose clock is not trusted counts
// (its time says nothing; the order of seqs says it came after).
func (w *watchTx) removedAfterReturn(boxID string, e box.Event) (int, error) {
	if e.KeyID == "" || e.Detail == detailKeyAppeared {
		return 0, nil
	}
	k := returnKey(boxID, e.KeyID)
	var r watchedReturn
	ok, err := w.get(tReturns, k, &r)
	if err != nil || !ok {
		return 0, err
	}
	if err := w.del(tReturns, k); err != nil {
		return 0, err
	}
	after := e.Time.Sub(r.At)
	if r.Slot != e.Slot || (!e.ClockUntrusted && after > removalWatch) {
		return 0, nil
	}
	if _, held, err := w.holder(boxID, e.KeyID); err != nil {
		return 0, err
	} else if !held {
		if err := w.setHolder(boxID, e.KeyID, r.AssignmentID); err != nil {
			return 0, err
		}
	}
	if r.ClearedOverdue {
		if err := w.reopenOverdue(r.AssignmentID); err != nil {
			return 0, err
		}
	}
	why := "removed from its locked slot after the return: what the sensor saw may not have been the key"
	if !e.ClockUntrusted && after >= 0 {
		why = fmt.Sprintf("removed from its locked slot %s after the return: what the sensor saw may not have been the key",
			after.Round(time.Second))
	}
	// The return, as attached to the booking, is no longer proof.
	var ret BookingEvent
	rk := eventKey(r.AssignmentID, boxID, r.Seq)
	if ok, err := w.get(tEvents, rk, &ret); err != nil {
		return 0, err
	} else if ok && !ret.Unconfirmed {
		ret.Unconfirmed, ret.Detail = true, joinDetail(why, ret.Detail)
		if err := w.put(tEvents, rk, ret); err != nil {
			return 0, err
		}
	}
	w.did.unconfirmed++
	// The admin's message is about the return (its time), now doubted.
	told := e
	told.Time = r.At
	if err := w.queueAlert(unconfirmedReturnAlert(boxID, r.AssignmentID, told, why)); err != nil {
		return 0, err
	}
	be := bookingEvent(boxID, e, r.AssignmentID, viaKey)
	be.Detail = joinDetail(why, e.Detail)
	return 1, w.attach(be)
}
