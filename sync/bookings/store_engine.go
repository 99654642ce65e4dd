package bookings

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The seam between the Store and where it keeps things. The Store's methods
// (store_*.go) hold every rule: what is validated, what is sealed, what a
// transaction decides. An engine only keeps records: store_bolt.go in one
// bbolt file (the default, one process), store_pg.go in PostgreSQL tables
// (any number of replicas on one database). Records are the same JSON
// documents on both, so a field added to a Go struct reads as its zero value
// from an older record on either, with no migration.

// engine is a storage engine of the Store.
type engine interface {
	// view runs fn in a read-only transaction (a consistent snapshot).
	view(fn func(tx storeTx) error) error
	// update runs fn in a read-write transaction and commits it if fn
	// returns nil. An engine may run fn again after a conflict with another
	// process (PostgreSQL), so fn must set what it returns from scratch on
	// each run and have no effect outside the transaction.
	update(fn func(tx storeTx) error) error
	// updateOneAtATime runs fn as update does, and one at a time with
	// every other updateOneAtATime of the same key, in any process: the
	// writers of a hot record (a box's watch state) wait their turn
	// instead of all aborting but one.
	updateOneAtATime(key string, fn func(tx storeTx) error) error
	close() error
	// claimDue claims for owner, until until, up to max queued deliveries
	// due at now that nobody holds a claim on (or whose claim ran out by
	// now), oldest id first, and returns their documents. A claim ends
	// when the delivery is written (putDelivery) or at its until.
	claimDue(owner string, now, until time.Time, max int) ([][]byte, error)
	// claim claims delivery id of assignment a for owner until until, if
	// it is queued and due at now, nobody holds a claim on it or on
	// another delivery of a that lasts past now, and no delivery of a
	// with a lower id is queued and due (an assignment's deliveries run
	// one at a time, in id order, across replicas).
	claim(owner string, id, a int64, now, until time.Time) (bool, error)
	// renewClaims moves the end of owner's claims on ids to until.
	renewClaims(owner string, ids []int64, until time.Time) error
	// releaseClaims ends owner's claims on ids (nil: all of owner's) and
	// returns how many it ended.
	releaseClaims(owner string, ids []int64) (int, error)
	// shared reports whether other processes may use the same records
	// (PostgreSQL): only then do the queue's workers claim in the store.
	shared() bool
}

// table names a kind of record kept as a JSON document under a recKey.
type table int

const (
	tBoxes      table = iota // key: BoxID -> BoxInfo
	tLinks                   // key: ID (vehicle) -> Link
	tDeliveries              // key: ID (delivery) -> Delivery; written with putDelivery
	tBookings                // key: ID (assignment) -> Booking
	tPrompts                 // key: ID (assignment) -> Reservation
	tDrivers                 // key: ID (contact) -> driverCode
	tEvents                  // key: ID (assignment), BoxID, Seq -> BookingEvent
	tOverdue                 // key: ID (assignment) -> overdueFlag
	tAlerts                  // key: Kind, Subject -> adminAlert
	tReturns                 // key: BoxID, KeyID -> watchedReturn
	numTables
)

var tableNames = [numTables]string{"boxes", "links", "deliveries", "bookings", "prompts", "drivers",
	"watch_events", "watch_overdue", "watch_alerts", "watch_returns"}

func (t table) String() string { return tableNames[t] }

// recKey is the key of a record; each table uses the fields its comment
// names, the others are zero.
type recKey struct {
	ID      int64  // vehicle, delivery, assignment or contact id
	BoxID   string // box id
	KeyID   string // key id (returns)
	Seq     uint64 // box event seq (events; 0 for the bridge's own)
	Kind    string // alert kind
	Subject string // alert subject: a box id, or an assignment id in decimal
}

func (k recKey) String() string {
	switch {
	case k.Kind != "":
		return k.Kind + "/" + k.Subject
	case k.BoxID != "" && k.ID == 0:
		if k.KeyID != "" {
			return k.BoxID + "/" + k.KeyID
		}
		return k.BoxID
	case k.BoxID != "" || k.Seq != 0:
		return fmt.Sprintf("%d/%s/%d", k.ID, k.BoxID, k.Seq)
	}
	return strconv.FormatInt(k.ID, 10)
}

func idKey(id int64) recKey                { return recKey{ID: id} }
func boxKey(boxID string) recKey           { return recKey{BoxID: boxID} }
func returnKey(boxID, keyID string) recKey { return recKey{BoxID: boxID, KeyID: keyID} }

// eventKey is the key of a booking event: the bridge's own events have box
// id "" (box ids are never empty), so the key of an event is stable and
// attaching it twice stores it once.
func eventKey(assignmentID int64, boxID string, seq uint64) recKey {
	return recKey{ID: assignmentID, BoxID: boxID, Seq: seq}
}

// storeTx is one transaction of an engine.
type storeTx interface {
	// get returns the document of k in t, false if there is none.
	get(t table, k recKey) ([]byte, bool, error)
	// put stores doc under k in t (not tDeliveries: putDelivery; not
	// tBookings: putBooking).
	put(t table, k recKey, doc []byte) error
	// del deletes the record of k in t (a booking's entry in the waiting
	// index with it).
	del(t table, k recKey) error
	// scan hands every record of t to fn in key order; with byID, only
	// those whose key's ID is id (tEvents: one booking's). fn must not
	// write in the same transaction while it runs (collect, then write).
	scan(t table, byID bool, id int64, fn func(k recKey, doc []byte) error) error
	// clear deletes every record of t and returns how many there were
	// (tBookings: the waiting index with them).
	clear(t table) (int, error)

	// The waiting index: the bookings waiting for their box to be heard
	// holding their grant, by box, so that a box's status reads its own
	// few and not every booking kept (store_live.go). The Store decides
	// which box a booking waits for (waitingFor) and hands it over with
	// the document; the engine writes both in one statement or bucket
	// pair, so no write of a booking can leave its entry behind. Not a
	// table of recKeys of its own: that would be a second record every
	// writer of a booking must keep in step, and one more kind for the
	// copy, the dumps and the counts to walk. bbolt keeps two buckets;
	// PostgreSQL a column beside the document (migration 00003), as it
	// keeps a delivery's queue state (putDelivery).
	//
	// putBooking stores the document of booking id, waiting for box
	// waitingBox ("": for none).
	putBooking(id int64, waitingBox string, doc []byte) error
	// waiting hands fn, in assignment id order, the documents of the
	// bookings waiting for box boxID ("": for any box).
	waiting(boxID string, fn func(doc []byte) error) error

	// The connection settings (a JSON document, absent when not
	// connected) and the code mode (a plain string, kept across a
	// disconnect).
	connection() ([]byte, bool, error)
	putConnection(doc []byte) error
	deleteConnection() error
	codeMode() (string, error)
	putCodeMode(m string) error

	// putDelivery stores a delivery's document, queued (to process) or
	// not; d is the document's value, for the columns an engine keeps
	// beside it.
	putDelivery(d Delivery, doc []byte) error
	// addDelivery stores d queued unless a delivery of its id is stored;
	// added says whether it did. It holds across processes (PostgreSQL:
	// the primary key, ON CONFLICT DO NOTHING).
	addDelivery(d Delivery, doc []byte) (added bool, err error)
	// queued hands the queued deliveries to fn, oldest id first.
	queued(fn func(doc []byte) error) error
	// claimable hands fn every queued delivery, oldest id first, each
	// with held: its own claim or its assignment's is another owner's and
	// live at now (Store.Claimable; doc is nil then: not needed). On an
	// engine without claims (bbolt), none is held.
	claimable(owner string, now time.Time, fn func(doc []byte, held bool) error) error
	queueDepth() (int, error)
	// nextInternalSeq is the next number of the deliveries the bridge
	// queues itself (1, 2, ...), never handed out twice.
	nextInternalSeq() (uint64, error)

	// Access tokens, by their SHA-256.
	tokenBooking(hash []byte) (int64, bool, error)
	putToken(hash []byte, assignmentID int64) error
	deleteToken(hash []byte) error

	// The holders index: box and key -> the booking that holds the key.
	holder(boxID, keyID string) (int64, bool, error)
	putHolder(boxID, keyID string, assignmentID int64) error
	deleteHolder(boxID, keyID string) error
	holders(fn func(h heldKey) error) error

	// The highest event seq of a box handled (0: none).
	seen(boxID string) (uint64, error)
	putSeen(boxID string, seq uint64) error
}

// getRec decodes the record of k in t; false if there is none.
func getRec[T any](tx storeTx, t table, k recKey) (T, bool, error) {
	var v T
	raw, ok, err := tx.get(t, k)
	if err != nil || !ok {
		return v, false, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, true, fmt.Errorf("decode %s record %s: %w", t, k, err)
	}
	return v, true, nil
}

// putRec encodes v and stores it under k in t; a booking (a Booking)
// with its entry in the waiting index.
func putRec(tx storeTx, t table, k recKey, v any) error {
	if t == tDeliveries {
		return fmt.Errorf("%s record %s: store a delivery with putDelivery (its queue state)", t, k)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record %s: %w", t, k, err)
	}
	if t == tBookings {
		b, ok := v.(Booking)
		if !ok {
			return fmt.Errorf("%s record %s: a %T, not a Booking", t, k, v)
		}
		return tx.putBooking(k.ID, waitingFor(b), raw)
	}
	return tx.put(t, k, raw)
}

// scanRecs decodes every record of t (byID: those of id) in key order.
func scanRecs[T any](tx storeTx, t table, byID bool, id int64, fn func(k recKey, v T) error) error {
	return tx.scan(t, byID, id, func(k recKey, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode %s record %s: %w", t, k, err)
		}
		return fn(k, v)
	})
}

// get reads the record of id in t; false if there is none.
func get[T any](s *Store, t table, id int64) (v T, ok bool, err error) {
	err = s.eng.view(func(tx storeTx) (err error) {
		v, ok, err = getRec[T](tx, t, idKey(id))
		return err
	})
	return v, ok, err
}

// list decodes every record of t in key order.
func list[T any](s *Store, t table) ([]T, error) {
	var out []T
	err := s.eng.view(func(tx storeTx) error {
		out = nil
		return scanRecs(tx, t, false, 0, func(_ recKey, v T) error {
			out = append(out, v)
			return nil
		})
	})
	return out, err
}

// putOne stores one record in its own transaction.
func putOne(s *Store, t table, k recKey, v any) error {
	return s.eng.update(func(tx storeTx) error { return putRec(tx, t, k, v) })
}

// delOne deletes one record in its own transaction.
func delOne(s *Store, t table, k recKey) error {
	return s.eng.update(func(tx storeTx) error { return tx.del(t, k) })
}
