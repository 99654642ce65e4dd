package bookings

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// The watch side (box events tied to bookings, overdue keys) keeps, beside
// the rest of the store: the events (tEvents, by booking), the holders
// index (box and key -> the booking whose driver took that key out and has
// not returned it: it finds the booking of a key_returned, which carries
// only the key), the overdue flags (tOverdue: raised once per booking), the
// highest event seq handled per box with none missing before it, the admin
// alerts HandleEvents queued (tAlerts, see alerts.go) and the last proven
// return of each key a booking held (tReturns, see removal.go).

// EventKeyOverdue is the booking event the bridge records itself when a
// booking's window ended with its key still out.
const EventKeyOverdue box.EventType = "key_overdue"

// BookingEvent is a box event tied to a booking (or the bridge's own
// key_overdue).
type BookingEvent struct {
	AssignmentID int64 `json:"assignment_id"`
	// BoxID and Seq name the box event; BoxID is "" for the bridge's own.
	BoxID          string        `json:"box_id,omitempty"`
	Seq            uint64        `json:"seq,omitempty"`
	Time           time.Time     `json:"time"`
	Type           box.EventType `json:"type"`
	Slot           int           `json:"slot,omitempty"`
	KeyID          string        `json:"key_id,omitempty"`
	GrantID        string        `json:"grant_id,omitempty"`
	Reason         box.Reason    `json:"reason,omitempty"`
	Purpose        box.Purpose   `json:"purpose,omitempty"`
	Failures       int           `json:"failures,omitempty"`
	ClockUntrusted bool          `json:"clock_untrusted,omitempty"`
	Detail         string        `json:"detail,omitempty"`
	// ReturnBy and SeatedMS are a key_returned's (box.Event): what let the
	// key back in, and how long the slot's sensor saw it seated.
	ReturnBy box.ReturnBy `json:"return_by,omitempty"`
	SeatedMS int64        `json:"seated_ms,omitempty"`
	// Unconfirmed marks a key_returned the bridge does not take as proof
	// that the key is back (a fob return the slot's sensor did not see
	// seated for Options.ReturnSettle); Detail says why. The key still
	// counts as out with its booking.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
	// Count is a keypad_attack's number of wrong codes, a keypad_closed's
	// wrong codes that spent the budget.
	Count int `json:"count,omitempty"`
	// Via says how the event was tied to the booking: "grant" (its booking
	// grant), "driver_code" (the driver's code, during the window), "key"
	// (the booking's key: taken during the window, or returned after the
	// booking took it) or "window" (a refused code at the box during the
	// window).
	Via string `json:"via,omitempty"`
}

// Ways an event is tied to a booking (BookingEvent.Via).
const (
	viaGrant      = "grant"
	viaDriverCode = "driver_code"
	viaKey        = "key"
	viaWindow     = "window"
	viaBridge     = "bridge"
)

// overdueFlag records that a booking's key was found overdue, and who has
// been told: a failed notification is tried again on the next check, the
// flag itself is never raised twice.
type overdueFlag struct {
	RaisedAt       time.Time `json:"raised_at"`
	KeyID          string    `json:"key_id"`
	BoxID          string    `json:"box_id"`
	DriverNotified bool      `json:"driver_notified,omitempty"`
	AdminNotified  bool      `json:"admin_notified,omitempty"`
	// ClearedAt is the box time of the return that proved the key back
	// (zero: still overdue); ClearedBy says what it was.
	ClearedAt time.Time `json:"cleared_at,omitzero"`
	ClearedBy string    `json:"cleared_by,omitempty"`
}

// heldKey is one entry of the holders index.
type heldKey struct {
	BoxID        string
	KeyID        string
	AssignmentID int64
}

// watchTx is a write transaction over the watch side.
type watchTx struct {
	tx storeTx

	boxBookings map[string][]Booking // bookings of a box, read once per transaction

	// settle is Options.ReturnSettle, for the events handled in this
	// transaction; did counts what they did, for the caller to act on once
	// it commits.
	settle time.Duration
	did    watchCounts
}

// watchCounts are what one watch transaction did.
type watchCounts struct {
	queued      int // admin alerts queued
	attacks     int // keypad_attack events
	closures    int // keypad_closed events
	unconfirmed int // key_returned not taken as proof
}

// watchUpdate runs fn in a write transaction. fn gets a new watchTx on
// each run (an engine may run it again after a conflict).
func (s *Store) watchUpdate(fn func(w *watchTx) error) error {
	return s.eng.update(func(tx storeTx) error { return fn(&watchTx{tx: tx}) })
}

// watchUpdateBox is watchUpdate for the events of one box: one at a time
// per box across replicas, since each reads and moves the box's seen seq.
func (s *Store) watchUpdateBox(boxID string, fn func(w *watchTx) error) error {
	return s.eng.updateOneAtATime("watch:"+boxID, func(tx storeTx) error { return fn(&watchTx{tx: tx}) })
}

// get, put and del are the transaction's records.
func (w *watchTx) get(t table, k recKey, v any) (bool, error) {
	raw, ok, err := w.tx.get(t, k)
	if err != nil || !ok {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode %s record %s: %w", t, k, err)
	}
	return true, nil
}

func (w *watchTx) put(t table, k recKey, v any) error { return putRec(w.tx, t, k, v) }

func (w *watchTx) del(t table, k recKey) error { return w.tx.del(t, k) }

// attach stores ev as an event of its booking; an event already stored
// (same booking, box and seq) is kept as it is.
func (w *watchTx) attach(ev BookingEvent) error {
	k := eventKey(ev.AssignmentID, ev.BoxID, ev.Seq)
	if _, ok, err := w.tx.get(tEvents, k); err != nil || ok {
		return err
	}
	return w.put(tEvents, k, ev)
}

func (w *watchTx) lastSeen(boxID string) (uint64, error) { return w.tx.seen(boxID) }

func (w *watchTx) setSeen(boxID string, seq uint64) error { return w.tx.putSeen(boxID, seq) }

func (w *watchTx) holder(boxID, keyID string) (int64, bool, error) { return w.tx.holder(boxID, keyID) }

func (w *watchTx) setHolder(boxID, keyID string, assignmentID int64) error {
	return w.tx.putHolder(boxID, keyID, assignmentID)
}

func (w *watchTx) clearHolder(boxID, keyID string) error { return w.tx.deleteHolder(boxID, keyID) }

// booking reads one booking.
func (w *watchTx) booking(assignmentID int64) (Booking, bool, error) {
	return getRec[Booking](w.tx, tBookings, idKey(assignmentID))
}

// bookingsOf lists the bookings that had a grant on boxID (active or ended;
// an unlinked one never had a box). It scans the bookings once per
// transaction: only events that carry no booking grant need it.
func (w *watchTx) bookingsOf(boxID string) ([]Booking, error) {
	if w.boxBookings == nil {
		w.boxBookings = map[string][]Booking{}
		err := scanRecs(w.tx, tBookings, false, 0, func(_ recKey, bk Booking) error {
			if bk.BoxID != "" && (bk.State == BookingActive || bk.State == BookingEnded) {
				w.boxBookings[bk.BoxID] = append(w.boxBookings[bk.BoxID], bk)
			}
			return nil
		})
		if err != nil {
			w.boxBookings = nil
			return nil, err
		}
	}
	return w.boxBookings[boxID], nil
}

// bookingEvents lists the events of a booking, oldest first.
func (s *Store) bookingEvents(assignmentID int64) ([]BookingEvent, error) {
	var out []BookingEvent
	err := s.eng.view(func(tx storeTx) error {
		out = nil
		return scanRecs(tx, tEvents, true, assignmentID, func(_ recKey, ev BookingEvent) error {
			out = append(out, ev)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bridge store: events of booking %d: %w", assignmentID, err)
	}
	slices.SortStableFunc(out, func(a, b BookingEvent) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.BoxID, b.BoxID); c != 0 {
			return c
		}
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	return out, nil
}

// heldKeys lists the keys out with a booking.
func (s *Store) heldKeys() ([]heldKey, error) {
	var out []heldKey
	err := s.eng.view(func(tx storeTx) error {
		out = nil
		return tx.holders(func(h heldKey) error {
			out = append(out, h)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bridge store: keys out: %w", err)
	}
	return out, nil
}

// overdueFlagOf returns the overdue flag of a booking, false if none.
func (s *Store) overdueFlagOf(assignmentID int64) (overdueFlag, bool, error) {
	return get[overdueFlag](s, tOverdue, assignmentID)
}

// raiseOverdue flags a booking overdue and records its key_overdue event, in
// one transaction; raised is false when it already was (by another check).
func (s *Store) raiseOverdue(assignmentID int64, f overdueFlag, ev BookingEvent) (raised bool, err error) {
	err = s.watchUpdate(func(w *watchTx) error {
		raised = false
		k := idKey(assignmentID)
		if _, ok, err := w.tx.get(tOverdue, k); err != nil || ok {
			return err
		}
		raised = true
		if err := w.put(tOverdue, k, f); err != nil {
			return err
		}
		return w.attach(ev)
	})
	if err != nil {
		return false, fmt.Errorf("bridge store: raise overdue of booking %d: %w", assignmentID, err)
	}
	return raised, nil
}

// putOverdueFlag updates who has been told.
func (s *Store) putOverdueFlag(assignmentID int64, f overdueFlag) error {
	return putOne(s, tOverdue, idKey(assignmentID), f)
}

// seenOf is the highest event seq of a box handled (0: none, or the store
// could not be read: the watch transaction reads it again before it acts).
func (s *Store) seenOf(boxID string) (seq uint64) {
	s.eng.view(func(tx storeTx) (err error) {
		seq, err = tx.seen(boxID)
		return err
	})
	return seq
}
