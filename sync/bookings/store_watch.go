package bookings

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
)

// Buckets of the watch side (box events, overdue keys), in the same file as
// the rest of the bridge's store. They are made on first use (the store file
// of an older bridge has none): a read finding none sees nothing.
var (
	// assignment id (8 bytes BE) ++ box id ++ 0x00 ++ box event seq (8 bytes
	// BE) -> BookingEvent. The bridge's own events have box id "" (box ids
	// are never empty), so the key of an event is stable and attaching it
	// twice stores it once.
	bucketWatchEvents = []byte("watch_events")
	// box id ++ 0x00 ++ key id -> assignment id: the booking whose driver
	// took that key out and has not returned it (the per-box index that
	// finds the booking of a key_returned, which carries only the key).
	bucketWatchHolders = []byte("watch_holders")
	// assignment id -> overdueFlag: raised once per booking.
	bucketWatchOverdue = []byte("watch_overdue")
	// box id -> highest box event seq handled, with none missing before it.
	bucketWatchSeen = []byte("watch_seen")
	// kind ++ 0x00 ++ subject (a box id, or an assignment id in decimal) ->
	// adminAlert: messages to the admin HandleEvents queued (see alerts.go).
	bucketWatchAlerts = []byte("watch_alerts")
	// box id ++ 0x00 ++ key id -> watchedReturn: the last proven return of
	// a key a booking held, until the key is taken again or a removal from
	// its locked slot undoes it (see removedAfterReturn).
	bucketWatchReturns = []byte("watch_returns")
)

var watchBuckets = [][]byte{bucketWatchEvents, bucketWatchHolders, bucketWatchOverdue, bucketWatchSeen, bucketWatchAlerts,
	bucketWatchReturns}

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

// watchTx is a write transaction over the watch buckets.
type watchTx struct {
	tx       *bolt.Tx
	events   *bolt.Bucket
	holders  *bolt.Bucket
	overdue  *bolt.Bucket
	seen     *bolt.Bucket
	alerts   *bolt.Bucket
	returns  *bolt.Bucket
	bookings *bolt.Bucket // A's bucket, read only here

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

// watchUpdate runs fn in a write transaction, making the watch buckets first.
func (s *Store) watchUpdate(fn func(w *watchTx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		var bs [6]*bolt.Bucket
		for i, name := range watchBuckets {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
			bs[i] = b
		}
		return fn(&watchTx{tx: tx, events: bs[0], holders: bs[1], overdue: bs[2], seen: bs[3], alerts: bs[4],
			returns: bs[5], bookings: tx.Bucket(bucketBookings)})
	})
}

func eventKey(assignmentID int64, boxID string, seq uint64) []byte {
	k := make([]byte, 0, 8+len(boxID)+1+8)
	k = binary.BigEndian.AppendUint64(k, uint64(assignmentID))
	k = append(k, boxID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func holderKey(boxID, keyID string) []byte {
	return append(append([]byte(boxID), 0), keyID...)
}

// attach stores ev as an event of its booking; an event already stored
// (same booking, box and seq) is kept as it is.
func (w *watchTx) attach(ev BookingEvent) error {
	k := eventKey(ev.AssignmentID, ev.BoxID, ev.Seq)
	if w.events.Get(k) != nil {
		return nil
	}
	return putJSON(w.events, k, ev)
}

func (w *watchTx) lastSeen(boxID string) uint64 {
	if v := w.seen.Get([]byte(boxID)); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (w *watchTx) setSeen(boxID string, seq uint64) error {
	return w.seen.Put([]byte(boxID), u64(seq))
}

func (w *watchTx) holder(boxID, keyID string) (int64, bool) {
	v := w.holders.Get(holderKey(boxID, keyID))
	if len(v) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), true
}

func (w *watchTx) setHolder(boxID, keyID string, assignmentID int64) error {
	return w.holders.Put(holderKey(boxID, keyID), id64(assignmentID))
}

func (w *watchTx) clearHolder(boxID, keyID string) error {
	return w.holders.Delete(holderKey(boxID, keyID))
}

// booking reads one booking of A's bucket.
func (w *watchTx) booking(assignmentID int64) (Booking, bool, error) {
	var bk Booking
	if w.bookings == nil {
		return bk, false, nil
	}
	ok, err := getJSON(w.bookings, id64(assignmentID), &bk)
	return bk, ok, err
}

// bookingsOf lists the bookings that had a grant on boxID (active or ended;
// an unlinked one never had a box). It scans the bookings once per
// transaction: only events that carry no booking grant need it.
func (w *watchTx) bookingsOf(boxID string) ([]Booking, error) {
	if w.boxBookings == nil {
		w.boxBookings = map[string][]Booking{}
		if w.bookings != nil {
			err := w.bookings.ForEach(func(k, v []byte) error {
				var bk Booking
				if err := json.Unmarshal(v, &bk); err != nil {
					return fmt.Errorf("booking %x: %w", k, err)
				}
				if bk.BoxID != "" && (bk.State == BookingActive || bk.State == BookingEnded) {
					w.boxBookings[bk.BoxID] = append(w.boxBookings[bk.BoxID], bk)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return w.boxBookings[boxID], nil
}

// bookingEvents lists the events of a booking, oldest first.
func (s *Store) bookingEvents(assignmentID int64) ([]BookingEvent, error) {
	var out []BookingEvent
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWatchEvents)
		if b == nil {
			return nil
		}
		prefix := id64(assignmentID)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var ev BookingEvent
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("booking event %x: %w", k, err)
			}
			out = append(out, ev)
		}
		return nil
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
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWatchHolders)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			boxID, keyID, ok := bytes.Cut(k, []byte{0})
			if !ok || len(v) != 8 {
				return fmt.Errorf("holder record %q is malformed", k)
			}
			out = append(out, heldKey{BoxID: string(boxID), KeyID: string(keyID), AssignmentID: int64(binary.BigEndian.Uint64(v))})
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
	var f overdueFlag
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		b := tx.Bucket(bucketWatchOverdue)
		if b == nil {
			return nil
		}
		ok, err = getJSON(b, id64(assignmentID), &f)
		return err
	})
	return f, ok, err
}

// raiseOverdue flags a booking overdue and records its key_overdue event, in
// one transaction; raised is false when it already was (by another check).
func (s *Store) raiseOverdue(assignmentID int64, f overdueFlag, ev BookingEvent) (raised bool, err error) {
	err = s.watchUpdate(func(w *watchTx) error {
		k := id64(assignmentID)
		if w.overdue.Get(k) != nil {
			return nil
		}
		raised = true
		if err := putJSON(w.overdue, k, f); err != nil {
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
	return s.watchUpdate(func(w *watchTx) error { return putJSON(w.overdue, id64(assignmentID), f) })
}

// seenOf is the highest event seq of a box handled (0: none).
func (s *Store) seenOf(boxID string) (seq uint64) {
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketWatchSeen); b != nil {
			if v := b.Get([]byte(boxID)); len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return seq
}
