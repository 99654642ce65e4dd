package cloud

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The bbolt engine: one file, the layout the package doc describes. It is
// the layout of every cloud.db made before the seam, kept as it was.

// Bucket names. Top level: meta (schema, code key check) and boxes, which
// has one nested bucket per box id holding the buckets below.
var (
	bucketMeta  = []byte("meta")
	bucketBoxes = []byte("boxes")

	bMeta     = []byte("meta")     // pub, rev, logstart, highseq, status
	bKeys     = []byte("keys")     // key id -> box.Key JSON
	bFobs     = []byte("fobs")     // fob uid -> key id
	bGrants   = []byte("grants")   // grant id -> storedGrant JSON
	bCodes    = []byte("codes")    // code MAC (32) ++ grant id -> empty
	bLog      = []byte("log")      // revision (u64 BE) -> logEntry JSON
	bEvents   = []byte("events")   // seq (u64 BE) -> box.Event JSON
	bCommands = []byte("commands") // command id -> commandRecord JSON
	// bDays indexes events by the day the cloud received them, for the
	// retention sweep: day (u64 BE, days since 1970 UTC) -> the highest
	// seq stored that day. Made on first use in stores made before it.
	bDays = []byte("days")

	// The box meta bucket's keys (see boxMeta).
	kPub            = []byte("pub")
	kRev            = []byte("rev")
	kLogStart       = []byte("logstart")
	kHighSeq        = []byte("highseq")
	kSeqBase        = []byte("seqbase")
	kSeqBasePending = []byte("seqbase-pending") // present (1) while pending
	kStatus         = []byte("status")
)

type boltStore struct {
	db   *bolt.DB
	path string
}

var _ store = (*boltStore)(nil)

func openBolt(path string) (*boltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w (waited %s for its lock)", ErrInUse, openTimeout)
		}
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketMeta); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketBoxes)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &boltStore{db: db, path: path}, nil
}

func (s *boltStore) where() string { return s.path }
func (s *boltStore) close() error  { return s.db.Close() }

type boltMeta struct{ b *bolt.Bucket }

func (m boltMeta) get(name string) ([]byte, error) { return bytes.Clone(m.b.Get([]byte(name))), nil }

func (m boltMeta) putIfAbsent(name string, v []byte) ([]byte, error) {
	if old := m.b.Get([]byte(name)); old != nil {
		return bytes.Clone(old), nil
	}
	return v, m.b.Put([]byte(name), v)
}

func (s *boltStore) meta(fn func(metaTx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(boltMeta{tx.Bucket(bucketMeta)}) })
}

func (s *boltStore) view(boxID string, fn func(boxTx) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		bt, err := openBoltBox(tx, boxID)
		if err != nil {
			return err
		}
		return fn(bt)
	})
}

func (s *boltStore) update(boxID string, fn func(boxTx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bt, err := openBoltBox(tx, boxID)
		if err != nil {
			return err
		}
		return fn(bt)
	})
}

func (s *boltStore) register(boxID string, fn func(boxTx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketBoxes).CreateBucketIfNotExists([]byte(boxID))
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bMeta, bKeys, bFobs, bGrants, bCodes, bLog, bEvents, bCommands, bDays} {
			if _, err := b.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		bt, err := openBoltBox(tx, boxID)
		if err != nil {
			return err
		}
		return fn(bt)
	})
}

func (s *boltStore) boxes() ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBoxes).ForEachBucket(func(k []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, err
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// boltBox is one box's buckets inside a bbolt transaction.
type boltBox struct {
	id                                           string
	b                                            *bolt.Bucket // the box's own
	mb, keys, fobs, grants, codes, log, ev, cmds *bolt.Bucket
	days                                         *bolt.Bucket // nil in a store made before it (see putDay)
	m                                            boxMeta      // as stored: setMeta writes what differs
}

var _ boxTx = (*boltBox)(nil)

func openBoltBox(tx *bolt.Tx, id string) (*boltBox, error) {
	b := tx.Bucket(bucketBoxes).Bucket([]byte(id))
	if b == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownBox, id)
	}
	bt := &boltBox{id: id, b: b, days: b.Bucket(bDays), mb: b.Bucket(bMeta), keys: b.Bucket(bKeys), fobs: b.Bucket(bFobs),
		grants: b.Bucket(bGrants), codes: b.Bucket(bCodes), log: b.Bucket(bLog), ev: b.Bucket(bEvents),
		cmds: b.Bucket(bCommands)}
	if bt.mb == nil || bt.keys == nil || bt.fobs == nil || bt.grants == nil || bt.codes == nil ||
		bt.log == nil || bt.ev == nil || bt.cmds == nil {
		return nil, fmt.Errorf("box %q: store damaged: a bucket is missing", id)
	}
	bt.m = boxMeta{Pub: bytes.Clone(bt.mb.Get(kPub)), Rev: getU64(bt.mb, kRev), LogStart: getU64(bt.mb, kLogStart),
		HighSeq: getU64(bt.mb, kHighSeq), SeqBase: getU64(bt.mb, kSeqBase),
		SeqBasePending: bt.mb.Get(kSeqBasePending) != nil, Status: bytes.Clone(bt.mb.Get(kStatus))}
	return bt, nil
}

func (bt *boltBox) boxID() string                            { return bt.id }
func (bt *boltBox) prefetch(_, _ []string, _ [][]byte) error { return nil } // reads are memory reads
func (bt *boltBox) meta() boxMeta                            { return bt.m }

func (bt *boltBox) setMeta(m boxMeta) error {
	old := bt.m
	put := func(k []byte, was, is uint64) error {
		if was == is {
			return nil
		}
		return bt.mb.Put(k, u64(is))
	}
	if !bytes.Equal(old.Pub, m.Pub) {
		if err := bt.mb.Put(kPub, bytes.Clone(m.Pub)); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		k       []byte
		was, is uint64
	}{{kRev, old.Rev, m.Rev}, {kLogStart, old.LogStart, m.LogStart}, {kHighSeq, old.HighSeq, m.HighSeq},
		{kSeqBase, old.SeqBase, m.SeqBase}} {
		if err := put(f.k, f.was, f.is); err != nil {
			return err
		}
	}
	if old.SeqBasePending != m.SeqBasePending {
		var err error
		if m.SeqBasePending {
			err = bt.mb.Put(kSeqBasePending, []byte{1})
		} else {
			err = bt.mb.Delete(kSeqBasePending)
		}
		if err != nil {
			return err
		}
	}
	if !bytes.Equal(old.Status, m.Status) {
		if err := bt.mb.Put(kStatus, bytes.Clone(m.Status)); err != nil {
			return err
		}
	}
	m.Pub, m.Status = bytes.Clone(m.Pub), bytes.Clone(m.Status)
	bt.m = m
	return nil
}

func (bt *boltBox) key(id string) ([]byte, error) { return bt.keys.Get([]byte(id)), nil }

func byIDs(b *bolt.Bucket, ids []string) map[string][]byte {
	out := make(map[string][]byte, len(ids))
	for _, id := range ids {
		if v := b.Get([]byte(id)); v != nil {
			out[id] = v
		}
	}
	return out
}

func forEachID(b *bolt.Bucket, fn func(id string, doc []byte) error) error {
	return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

func (bt *boltBox) keysByID(ids []string) (map[string][]byte, error) { return byIDs(bt.keys, ids), nil }
func (bt *boltBox) putKey(id string, doc []byte) error               { return bt.keys.Put([]byte(id), doc) }
func (bt *boltBox) deleteKey(id string) error                        { return bt.keys.Delete([]byte(id)) }
func (bt *boltBox) forEachKey(fn func(string, []byte) error) error   { return forEachID(bt.keys, fn) }
func (bt *boltBox) fobKey(fob string) (string, error)                { return string(bt.fobs.Get([]byte(fob))), nil }
func (bt *boltBox) putFob(fob, keyID string) error                   { return bt.fobs.Put([]byte(fob), []byte(keyID)) }
func (bt *boltBox) deleteFob(fob string) error                       { return bt.fobs.Delete([]byte(fob)) }

func (bt *boltBox) grant(id string) ([]byte, error) { return bt.grants.Get([]byte(id)), nil }
func (bt *boltBox) grantsByID(ids []string) (map[string][]byte, error) {
	return byIDs(bt.grants, ids), nil
}
func (bt *boltBox) putGrant(id string, doc []byte) error             { return bt.grants.Put([]byte(id), doc) }
func (bt *boltBox) deleteGrant(id string) error                      { return bt.grants.Delete([]byte(id)) }
func (bt *boltBox) forEachGrant(fn func(string, []byte) error) error { return forEachID(bt.grants, fn) }

func indexKey(mac []byte, grantID string) []byte {
	return append(append(make([]byte, 0, len(mac)+len(grantID)), mac...), grantID...)
}

func (bt *boltBox) putCode(mac []byte, grantID string) error {
	return bt.codes.Put(indexKey(mac, grantID), nil)
}

func (bt *boltBox) deleteCode(mac []byte, grantID string) error {
	return bt.codes.Delete(indexKey(mac, grantID))
}

func (bt *boltBox) forEachCodeGrant(mac []byte, fn func(string, []byte) error) error {
	cur := bt.codes.Cursor()
	for k, _ := cur.Seek(mac); k != nil && bytes.HasPrefix(k, mac); k, _ = cur.Next() {
		id := string(k[len(mac):])
		if err := fn(id, bt.grants.Get([]byte(id))); err != nil {
			return err
		}
	}
	return nil
}

func (bt *boltBox) putLog(rev uint64, doc []byte) error { return bt.log.Put(u64(rev), doc) }

func (bt *boltBox) forEachLog(from, to uint64, fn func(uint64, []byte) error) error {
	cur := bt.log.Cursor()
	for k, v := cur.Seek(u64(from)); k != nil; k, v = cur.Next() {
		r := binary.BigEndian.Uint64(k)
		if r > to {
			break
		}
		if err := fn(r, v); err != nil {
			return err
		}
	}
	return nil
}

func (bt *boltBox) deleteLog(from, to uint64) error {
	for r := from; r <= to && r >= from; r++ { // r >= from: stop at wrap-around
		if err := bt.log.Delete(u64(r)); err != nil {
			return err
		}
	}
	return nil
}

func (bt *boltBox) putEvent(seq uint64, doc []byte) error { return bt.ev.Put(u64(seq), doc) }

func (bt *boltBox) forEachEvent(after uint64, limit int, fn func(uint64, []byte) error) error {
	if after == ^uint64(0) {
		return nil
	}
	cur := bt.ev.Cursor()
	n := 0
	for k, v := cur.Seek(u64(after + 1)); k != nil && n < limit; k, v = cur.Next() {
		if err := fn(binary.BigEndian.Uint64(k), v); err != nil {
			return err
		}
		n++
	}
	return nil
}

func (bt *boltBox) deleteEventsThrough(seq uint64) (uint64, error) {
	var seqs [][]byte
	cur := bt.ev.Cursor()
	for k, _ := cur.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = cur.Next() {
		seqs = append(seqs, k)
	}
	for _, k := range seqs {
		if err := bt.ev.Delete(k); err != nil {
			return 0, err
		}
	}
	return uint64(len(seqs)), nil
}

func (bt *boltBox) hasDays() (bool, error) {
	if bt.days == nil {
		return false, nil
	}
	k, _ := bt.days.Cursor().First()
	return k != nil, nil
}

// putDay makes the index in a store made before retention existed (only
// an update writes, so the bucket can be made here).
func (bt *boltBox) putDay(day, seq uint64) error {
	if bt.days == nil {
		days, err := bt.b.CreateBucketIfNotExists(bDays)
		if err != nil {
			return err
		}
		bt.days = days
	}
	return bt.days.Put(u64(day), u64(seq))
}

func (bt *boltBox) forEachDayBefore(day uint64, fn func(uint64, uint64) error) error {
	if bt.days == nil {
		return nil
	}
	cur := bt.days.Cursor()
	for k, v := cur.First(); k != nil && binary.BigEndian.Uint64(k) < day; k, v = cur.Next() {
		if len(v) != 8 {
			return fmt.Errorf("box %s: received-day index: day %x holds %d bytes, want 8", bt.id, k, len(v))
		}
		if err := fn(binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(v)); err != nil {
			return err
		}
	}
	return nil
}

func (bt *boltBox) deleteDaysBefore(day uint64) error {
	if bt.days == nil {
		return nil
	}
	var old [][]byte
	cur := bt.days.Cursor()
	for k, _ := cur.First(); k != nil && binary.BigEndian.Uint64(k) < day; k, _ = cur.Next() {
		old = append(old, k)
	}
	for _, k := range old {
		if err := bt.days.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (bt *boltBox) command(id string) ([]byte, error)      { return bt.cmds.Get([]byte(id)), nil }
func (bt *boltBox) putCommand(id string, doc []byte) error { return bt.cmds.Put([]byte(id), doc) }
