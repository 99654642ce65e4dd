package cloud

import "bytes"

// The seam between the cloud's rules (records.go, answer.go, events.go,
// status.go, retention.go, cloud.go) and the engine that keeps what they
// decide: bbolt (store_bolt.go, one file, the default) or PostgreSQL
// (store_pg.go, any number of replicas on one database). The rules are
// written once, against boxTx; an engine only stores and finds.
//
// Documents cross the seam as the bytes the rules encoded (JSON), and the
// engines keep them byte for byte: the rules compare a key put with the key
// stored by its bytes, and size snapshot chunks by them.

// boxMeta is a box's own state: what bbolt keeps in the box's "meta"
// bucket and PostgreSQL in its cloud_boxes row.
type boxMeta struct {
	Pub      []byte // X25519 public key the box was last registered with
	Rev      uint64 // records revision
	LogStart uint64 // deltas can be made from any have in [LogStart, Rev]
	HighSeq  uint64 // highest event seq stored with none missing before it
	// SeqBase is added to a box's own seq to make the stored one: 0 until
	// the box is registered again with a new key (a re-flashed card whose
	// outbox restarts at 1), then the highest seq stored before.
	SeqBase uint64
	// SeqBasePending marks a SeqBase not yet confirmed by the box's first
	// batch: a batch starting at seq 1 confirms it (a fresh outbox); one
	// starting later means the box kept its outbox and its numbering, and
	// the base goes back to 0, so such a box is never stuck at a gap.
	SeqBasePending bool
	Status         []byte // last wire.Status JSON; nil if none yet
}

func sameMeta(a, b boxMeta) bool {
	return bytes.Equal(a.Pub, b.Pub) && a.Rev == b.Rev && a.LogStart == b.LogStart && a.HighSeq == b.HighSeq &&
		a.SeqBase == b.SeqBase && a.SeqBasePending == b.SeqBasePending && bytes.Equal(a.Status, b.Status)
}

// store is an engine: the store-wide meta and one transaction per box.
type store interface {
	// meta runs fn on the store-wide meta (schema, code key) in one
	// transaction.
	meta(fn func(metaTx) error) error
	// view runs fn on a consistent read-only view of one box; update runs
	// it in a read-write transaction that no other update of the same box
	// (in this process or any other on the same database) runs beside.
	// Both fail with ErrUnknownBox for a box never registered. fn may run
	// more than once (PostgreSQL retries a transaction it aborted for a
	// conflict): it must have no effect outside the transaction that a
	// second run would repeat wrongly.
	view(boxID string, fn func(boxTx) error) error
	update(boxID string, fn func(boxTx) error) error
	// register is update on a box made first (empty, revision 0) if it
	// does not exist yet.
	register(boxID string, fn func(boxTx) error) error
	// boxes lists the registered box ids in byte order.
	boxes() ([]string, error)
	// where names the store in errors and logs (the file, or the database).
	where() string
	close() error
}

// metaTx is the store-wide meta inside a transaction.
type metaTx interface {
	get(name string) ([]byte, error) // nil: not set
	// putIfAbsent sets name to v unless it is set, and returns what is
	// stored after: v, or the value another Open stored first.
	putIfAbsent(name string, v []byte) ([]byte, error)
}

// boxTx is one box's records inside one transaction of the engine.
//
// A document returned is valid until the transaction ends, and nil when
// there is no such record. The forEach functions visit records in key order
// (byte order of ids, numeric order of revisions and seqs) in one pass over
// the engine (one query on PostgreSQL), and their fn must not call the
// transaction back: collect, then act.
type boxTx interface {
	boxID() string
	meta() boxMeta
	// prefetch says which keys, grants and code MACs the transaction is
	// about to look up, so that an engine with round trips (PostgreSQL)
	// fetches them in a few queries rather than one per record. It
	// changes no answer; bbolt ignores it.
	prefetch(keyIDs, grantIDs []string, codeMACs [][]byte) error
	setMeta(boxMeta) error

	key(id string) ([]byte, error)
	// keysByID returns the documents of the keys among ids that exist.
	keysByID(ids []string) (map[string][]byte, error)
	putKey(id string, doc []byte) error
	deleteKey(id string) error
	forEachKey(fn func(id string, doc []byte) error) error
	fobKey(fob string) (keyID string, err error) // "": no key has the fob
	putFob(fob, keyID string) error
	deleteFob(fob string) error

	grant(id string) ([]byte, error)
	grantsByID(ids []string) (map[string][]byte, error)
	putGrant(id string, doc []byte) error
	deleteGrant(id string) error
	forEachGrant(fn func(id string, doc []byte) error) error
	// The code index: code MAC and grant id, for the uniqueness check.
	putCode(mac []byte, grantID string) error
	deleteCode(mac []byte, grantID string) error
	// forEachCodeGrant visits the grants indexed under mac with their
	// documents (nil if the grant is gone).
	forEachCodeGrant(mac []byte, fn func(grantID string, doc []byte) error) error

	// The revision log: revision -> logEntry JSON.
	putLog(rev uint64, doc []byte) error
	forEachLog(from, to uint64, fn func(rev uint64, doc []byte) error) error // from <= rev <= to
	deleteLog(from, to uint64) error                                         // from <= rev <= to

	// Events by the cloud's seq.
	putEvent(seq uint64, doc []byte) error
	forEachEvent(after uint64, limit int, fn func(seq uint64, doc []byte) error) error
	deleteEventsThrough(seq uint64) (deleted uint64, err error)

	// The received-day index (see retention.go): day -> highest seq.
	hasDays() (bool, error)
	putDay(day, seq uint64) error
	forEachDayBefore(day uint64, fn func(day, seq uint64) error) error
	deleteDaysBefore(day uint64) error

	command(id string) ([]byte, error)
	putCommand(id string, doc []byte) error
}
