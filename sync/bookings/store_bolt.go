package bookings

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The bbolt engine: one file, one process. Ids (vehicle, delivery,
// assignment, contact) are keys of 8 bytes big-endian, so a cursor walks
// them in id order (the queue in arrival order); values are JSON, so a
// field added to a record reads as its zero value from an older file.
var (
	bucketMeta       = []byte("meta")       // "schema", "seal_key"
	bucketSettings   = []byte("settings")   // "connection" -> Settings (JSON), "code_mode" -> CodeMode
	bucketBoxes      = []byte("boxes")      // box id -> BoxInfo
	bucketLinks      = []byte("links")      // vehicle id (8 bytes BE) -> Link
	bucketDeliveries = []byte("deliveries") // delivery id -> Delivery; its sequence numbers the internal ones
	bucketQueue      = []byte("queue")      // delivery id -> empty: the deliveries still to process
	bucketBookings   = []byte("bookings")   // assignment id -> Booking
	bucketTokens     = []byte("tokens")     // SHA-256 of an access token -> assignment id
	bucketPrompts    = []byte("prompts")    // assignment id -> Reservation
	bucketDrivers    = []byte("drivers")    // contact id -> driverCode (code sealed)

	// The waiting index (storeTx.putBooking): the bookings waiting for
	// their box, as two buckets kept together, so that a box's status
	// seeks its own entries and a write of a booking finds the entry it
	// replaces without decoding the document it overwrites. A file older
	// than them has them made and filled from its bookings on open.
	//
	// box id ++ 0x00 ++ assignment id (8 bytes BE) -> empty.
	bucketWaiting = []byte("bookings_waiting")
	// assignment id -> box id: the entry of each booking in bookings_waiting.
	bucketWaitingBox = []byte("bookings_waiting_box")

	// The watch side (box events tied to bookings). A bridge older than
	// them made them on first use; OpenStore makes them if missing.
	//
	// assignment id (8 bytes BE) ++ box id ++ 0x00 ++ box event seq (8
	// bytes BE) -> BookingEvent.
	bucketWatchEvents = []byte("watch_events")
	// box id ++ 0x00 ++ key id -> assignment id: the booking whose driver
	// took that key out and has not returned it.
	bucketWatchHolders = []byte("watch_holders")
	// assignment id -> overdueFlag: raised once per booking.
	bucketWatchOverdue = []byte("watch_overdue")
	// box id -> highest box event seq handled, with none missing before it.
	bucketWatchSeen = []byte("watch_seen")
	// kind ++ 0x00 ++ subject -> adminAlert (see alerts.go).
	bucketWatchAlerts = []byte("watch_alerts")
	// box id ++ 0x00 ++ key id -> watchedReturn (see removal.go).
	bucketWatchReturns = []byte("watch_returns")
)

// tableBuckets is the bucket of each table.
var tableBuckets = [numTables][]byte{
	tBoxes: bucketBoxes, tLinks: bucketLinks, tDeliveries: bucketDeliveries, tBookings: bucketBookings,
	tPrompts: bucketPrompts, tDrivers: bucketDrivers, tEvents: bucketWatchEvents, tOverdue: bucketWatchOverdue,
	tAlerts: bucketWatchAlerts, tReturns: bucketWatchReturns,
}

const schemaVersion = 1

// boltLockTimeout: a second bridge on the same file gets an error, not a
// hang.
const boltLockTimeout = 2 * time.Second

// OpenStore opens (or creates, mode 0600) the store file at path.
func OpenStore(path string) (*Store, error) {
	eng, sealKey, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	s, err := newStore(eng, sealKey)
	if err != nil {
		eng.close()
		return nil, fmt.Errorf("bridge store %s: %w", path, err)
	}
	return s, nil
}

type boltEngine struct {
	db *bolt.DB

	// claims are the deliveries claimed (ClaimDue) and until when: a
	// bbolt file is one process's, so they live in memory.
	mu     sync.Mutex
	claims map[int64]time.Time
}

// openBolt opens the file at path, makes its buckets and its seal key if
// missing, and returns the seal key.
func openBolt(path string) (*boltEngine, []byte, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: boltLockTimeout})
	if err != nil {
		return nil, nil, fmt.Errorf("bridge store %s: open: %w", path, err)
	}
	// An existing file keeps its mode; the secrets inside need 0600.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("bridge store %s: chmod 0600: %w", path, err)
	}
	var sealKey []byte
	err = db.Update(func(tx *bolt.Tx) error {
		fill := tx.Bucket(bucketWaiting) == nil
		for _, b := range [][]byte{bucketMeta, bucketSettings, bucketBoxes, bucketLinks, bucketDeliveries,
			bucketQueue, bucketBookings, bucketTokens, bucketPrompts, bucketDrivers, bucketWatchEvents,
			bucketWatchHolders, bucketWatchOverdue, bucketWatchSeen, bucketWatchAlerts, bucketWatchReturns,
			bucketWaiting, bucketWaitingBox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if fill {
			if err := fillWaiting(boltTx{tx: tx}); err != nil {
				return fmt.Errorf("waiting index: %w", err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("schema")); v == nil {
			if err := meta.Put([]byte("schema"), u64(schemaVersion)); err != nil {
				return err
			}
		} else if binary.BigEndian.Uint64(v) != schemaVersion {
			return fmt.Errorf("schema %d, this code knows %d", binary.BigEndian.Uint64(v), schemaVersion)
		}
		if v := meta.Get([]byte("seal_key")); v != nil {
			sealKey = bytes.Clone(v)
			return nil
		}
		sealKey = newSealKey()
		return meta.Put([]byte("seal_key"), sealKey)
	})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("bridge store %s: init: %w", path, err)
	}
	return &boltEngine{db: db, claims: map[int64]time.Time{}}, sealKey, nil
}

func (e *boltEngine) view(fn func(storeTx) error) error {
	return e.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx: tx}) })
}

// update is bbolt's Update: one writer at a time, fn run once. The claims
// of the deliveries it wrote end once it has committed.
func (e *boltEngine) update(fn func(storeTx) error) error {
	var written []int64
	err := e.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx: tx, written: &written}) })
	if err == nil && len(written) > 0 {
		e.mu.Lock()
		for _, id := range written {
			delete(e.claims, id)
		}
		e.mu.Unlock()
	}
	return err
}

// updateOneAtATime: bbolt's writers are one at a time already.
func (e *boltEngine) updateOneAtATime(_ string, fn func(storeTx) error) error { return e.update(fn) }

func (e *boltEngine) claimDue(owner string, now, until time.Time, max int) ([][]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var docs [][]byte
	var ids []int64
	err := e.db.View(func(tx *bolt.Tx) error {
		return boltTx{tx: tx}.queued(func(raw []byte) error {
			if len(docs) == max {
				return nil
			}
			var d struct {
				ID          int64     `json:"id"`
				NextAttempt time.Time `json:"next_attempt"`
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("decode queued delivery: %w", err)
			}
			if held, ok := e.claims[d.ID]; d.NextAttempt.After(now) || (ok && held.After(now)) {
				return nil
			}
			docs, ids = append(docs, bytes.Clone(raw)), append(ids, d.ID)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		e.claims[id] = until
	}
	return docs, nil
}

// shared: a bbolt file is one process's.
func (e *boltEngine) shared() bool { return false }

// claim keeps the rule of the PostgreSQL engine's in memory (the queue's
// workers on bbolt do not claim in the store: their inflight is the claim
// of one process); it reads the queue, so it is for a few claims, not a
// burst's.
func (e *boltEngine) claim(owner string, id, a int64, now, until time.Time) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ok := false
	err := e.db.View(func(tx *bolt.Tx) error {
		return boltTx{tx: tx}.queued(func(raw []byte) error {
			var d Delivery
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("decode queued delivery: %w", err)
			}
			held := e.claims[d.ID].After(now)
			due := !d.NextAttempt.After(now)
			switch {
			case d.ID == id:
				ok = due && !held
			case deliveryAssignment(d) == a && (held || (d.ID < id && due)):
				ok = false
				return errStopScan
			}
			return nil
		})
	})
	if err != nil && err != errStopScan {
		return false, err
	}
	if ok {
		e.claims[id] = until
	}
	return ok, nil
}

var errStopScan = fmt.Errorf("stop")

// renewClaims and releaseClaims: bbolt's claims have no owner (one
// process holds them all).
func (e *boltEngine) renewClaims(_ string, ids []int64, until time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		if _, ok := e.claims[id]; ok {
			e.claims[id] = until
		}
	}
	return nil
}

func (e *boltEngine) releaseClaims(_ string, ids []int64) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for id := range e.claims {
		if ids == nil || slices.Contains(ids, id) {
			delete(e.claims, id)
			n++
		}
	}
	return n, nil
}

func (e *boltEngine) close() error { return e.db.Close() }

var (
	_ engine  = (*boltEngine)(nil)
	_ storeTx = boltTx{}
)

type boltTx struct {
	tx      *bolt.Tx
	written *[]int64 // the deliveries written (update only)
}

// boltKey is k as a key of t's bucket.
func boltKey(t table, k recKey) []byte {
	switch t {
	case tBoxes:
		return []byte(k.BoxID)
	case tEvents:
		b := make([]byte, 0, 8+len(k.BoxID)+1+8)
		b = binary.BigEndian.AppendUint64(b, uint64(k.ID))
		b = append(b, k.BoxID...)
		b = append(b, 0)
		return binary.BigEndian.AppendUint64(b, k.Seq)
	case tAlerts:
		return append(append([]byte(k.Kind), 0), k.Subject...)
	case tReturns:
		return holderKey(k.BoxID, k.KeyID)
	}
	return id64(k.ID)
}

// boltRecKey reads a key of t's bucket back.
func boltRecKey(t table, b []byte) (recKey, error) {
	switch t {
	case tBoxes:
		return boxKey(string(b)), nil
	case tEvents:
		if len(b) < 17 || b[len(b)-9] != 0 {
			return recKey{}, fmt.Errorf("%s key %x is malformed", t, b)
		}
		return eventKey(int64(binary.BigEndian.Uint64(b)), string(b[8:len(b)-9]), binary.BigEndian.Uint64(b[len(b)-8:])), nil
	case tAlerts, tReturns:
		a, c, ok := bytes.Cut(b, []byte{0})
		if !ok {
			return recKey{}, fmt.Errorf("%s key %q is malformed", t, b)
		}
		if t == tAlerts {
			return recKey{Kind: string(a), Subject: string(c)}, nil
		}
		return returnKey(string(a), string(c)), nil
	}
	if len(b) != 8 {
		return recKey{}, fmt.Errorf("%s key %x is malformed", t, b)
	}
	return idKey(int64(binary.BigEndian.Uint64(b))), nil
}

func holderKey(boxID, keyID string) []byte {
	return append(append([]byte(boxID), 0), keyID...)
}

func (b boltTx) bucket(t table) *bolt.Bucket { return b.tx.Bucket(tableBuckets[t]) }

func (b boltTx) get(t table, k recKey) ([]byte, bool, error) {
	v := b.bucket(t).Get(boltKey(t, k))
	return bytes.Clone(v), v != nil, nil
}

func (b boltTx) put(t table, k recKey, doc []byte) error {
	if t == tBookings {
		return fmt.Errorf("%s record %s: store a booking with putBooking (its waiting index)", t, k)
	}
	return b.bucket(t).Put(boltKey(t, k), doc)
}

func (b boltTx) del(t table, k recKey) error {
	if t == tBookings {
		if err := b.setWaiting(id64(k.ID), ""); err != nil {
			return err
		}
	}
	return b.bucket(t).Delete(boltKey(t, k))
}

func (b boltTx) putBooking(id int64, waitingBox string, doc []byte) error {
	k := id64(id)
	if err := b.tx.Bucket(bucketBookings).Put(k, doc); err != nil {
		return err
	}
	return b.setWaiting(k, waitingBox)
}

// waitingKey is the key of booking id (8 bytes) in bookings_waiting.
func waitingKey(boxID string, id []byte) []byte {
	return append(append([]byte(boxID), 0), id...)
}

// setWaiting files booking id (8 bytes) under box boxID in the waiting
// index ("": under none), dropping the entry it had.
func (b boltTx) setWaiting(id []byte, boxID string) error {
	byBox, byID := b.tx.Bucket(bucketWaiting), b.tx.Bucket(bucketWaitingBox)
	if old := byID.Get(id); old != nil {
		if string(old) == boxID {
			return nil
		}
		if err := byBox.Delete(waitingKey(string(old), id)); err != nil {
			return err
		}
		if err := byID.Delete(id); err != nil {
			return err
		}
	}
	if boxID == "" {
		return nil
	}
	if err := byBox.Put(waitingKey(boxID, id), nil); err != nil {
		return err
	}
	return byID.Put(id, []byte(boxID))
}

// waiting: one box's entries are the keys of bookings_waiting under its
// prefix, in id order; every box's are bookings_waiting_box's, in id
// order too.
func (b boltTx) waiting(boxID string, fn func([]byte) error) error {
	bookings := b.tx.Bucket(bucketBookings)
	each := func(id []byte) error {
		if v := bookings.Get(id); v != nil {
			return fn(v)
		}
		return nil
	}
	if boxID == "" {
		return b.tx.Bucket(bucketWaitingBox).ForEach(func(id, _ []byte) error { return each(id) })
	}
	prefix := waitingKey(boxID, nil)
	c := b.tx.Bucket(bucketWaiting).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != len(prefix)+8 {
			return fmt.Errorf("waiting index key %q is malformed", k)
		}
		if err := each(k[len(prefix):]); err != nil {
			return err
		}
	}
	return nil
}

// fillWaiting files every booking of a file older than the waiting index
// in it.
func fillWaiting(b boltTx) error {
	return b.tx.Bucket(bucketBookings).ForEach(func(k, v []byte) error {
		var bk Booking
		if err := json.Unmarshal(v, &bk); err != nil {
			return fmt.Errorf("decode booking %x: %w", k, err)
		}
		return b.setWaiting(k, waitingFor(bk))
	})
}

func (b boltTx) scan(t table, byID bool, id int64, fn func(recKey, []byte) error) error {
	var prefix []byte
	if byID {
		switch t {
		case tBoxes, tAlerts, tReturns:
			return fmt.Errorf("%s: no records by id", t)
		}
		prefix = id64(id)
	}
	c := b.bucket(t).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		rk, err := boltRecKey(t, k)
		if err != nil {
			return err
		}
		if err := fn(rk, v); err != nil {
			return err
		}
	}
	return nil
}

func (b boltTx) clear(t table) (int, error) {
	n := 0 // counted, not Stats().KeyN: that reads the pages, not this transaction's writes
	b.bucket(t).ForEach(func(_, _ []byte) error { n++; return nil })
	names := [][]byte{tableBuckets[t]}
	if t == tBookings {
		names = append(names, bucketWaiting, bucketWaitingBox)
	}
	for _, name := range names {
		if err := b.tx.DeleteBucket(name); err != nil {
			return 0, err
		}
		if _, err := b.tx.CreateBucket(name); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (b boltTx) connection() ([]byte, bool, error) {
	v := b.tx.Bucket(bucketSettings).Get([]byte("connection"))
	return bytes.Clone(v), v != nil, nil
}

func (b boltTx) putConnection(doc []byte) error {
	return b.tx.Bucket(bucketSettings).Put([]byte("connection"), doc)
}

func (b boltTx) deleteConnection() error {
	return b.tx.Bucket(bucketSettings).Delete([]byte("connection"))
}

func (b boltTx) codeMode() (string, error) {
	return string(b.tx.Bucket(bucketSettings).Get([]byte("code_mode"))), nil
}

func (b boltTx) putCodeMode(m string) error {
	return b.tx.Bucket(bucketSettings).Put([]byte("code_mode"), []byte(m))
}

func (b boltTx) putDelivery(d Delivery, doc []byte) error {
	k := id64(d.ID)
	if err := b.tx.Bucket(bucketDeliveries).Put(k, doc); err != nil {
		return err
	}
	*b.written = append(*b.written, d.ID)
	if d.State == DeliveryQueued {
		return b.tx.Bucket(bucketQueue).Put(k, nil)
	}
	return b.tx.Bucket(bucketQueue).Delete(k)
}

func (b boltTx) addDelivery(d Delivery, doc []byte) (bool, error) {
	if b.tx.Bucket(bucketDeliveries).Get(id64(d.ID)) != nil {
		return false, nil
	}
	return true, b.putDelivery(d, doc)
}

// claimable: one process, no claims in the file (the in-process inflight
// set keeps workers apart).
func (b boltTx) claimable(_ string, _ time.Time, fn func([]byte, bool) error) error {
	return b.queued(func(doc []byte) error { return fn(doc, false) })
}

func (b boltTx) queued(fn func([]byte) error) error {
	ds := b.tx.Bucket(bucketDeliveries)
	return b.tx.Bucket(bucketQueue).ForEach(func(k, _ []byte) error {
		if v := ds.Get(k); v != nil {
			return fn(v)
		}
		return nil
	})
}

func (b boltTx) queueDepth() (int, error) { return b.tx.Bucket(bucketQueue).Stats().KeyN, nil }

func (b boltTx) nextInternalSeq() (uint64, error) {
	return b.tx.Bucket(bucketDeliveries).NextSequence()
}

func (b boltTx) tokenBooking(hash []byte) (int64, bool, error) {
	v := b.tx.Bucket(bucketTokens).Get(hash)
	if v == nil {
		return 0, false, nil
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("token record %x is malformed", hash[:4])
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

func (b boltTx) putToken(hash []byte, assignmentID int64) error {
	return b.tx.Bucket(bucketTokens).Put(hash, id64(assignmentID))
}

func (b boltTx) deleteToken(hash []byte) error { return b.tx.Bucket(bucketTokens).Delete(hash) }

func (b boltTx) holder(boxID, keyID string) (int64, bool, error) {
	v := b.tx.Bucket(bucketWatchHolders).Get(holderKey(boxID, keyID))
	if len(v) != 8 {
		return 0, false, nil
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

func (b boltTx) putHolder(boxID, keyID string, assignmentID int64) error {
	return b.tx.Bucket(bucketWatchHolders).Put(holderKey(boxID, keyID), id64(assignmentID))
}

func (b boltTx) deleteHolder(boxID, keyID string) error {
	return b.tx.Bucket(bucketWatchHolders).Delete(holderKey(boxID, keyID))
}

func (b boltTx) holders(fn func(heldKey) error) error {
	return b.tx.Bucket(bucketWatchHolders).ForEach(func(k, v []byte) error {
		boxID, keyID, ok := bytes.Cut(k, []byte{0})
		if !ok || len(v) != 8 {
			return fmt.Errorf("holder record %q is malformed", k)
		}
		return fn(heldKey{BoxID: string(boxID), KeyID: string(keyID), AssignmentID: int64(binary.BigEndian.Uint64(v))})
	})
}

func (b boltTx) seen(boxID string) (uint64, error) {
	if v := b.tx.Bucket(bucketWatchSeen).Get([]byte(boxID)); len(v) == 8 {
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, nil
}

func (b boltTx) putSeen(boxID string, seq uint64) error {
	return b.tx.Bucket(bucketWatchSeen).Put([]byte(boxID), u64(seq))
}
