package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
)

// Batch is one change of the replicated records, applied all or nothing.
type Batch struct {
	FromRevision uint64 // applied only if the store's revision equals it (unless Snapshot)
	ToRevision   uint64 // the store's revision after the batch; must be > FromRevision (0,0: an import, revision+1)
	Snapshot     bool   // replace every key and grant with the batch's (local Uses kept for grants that stay)
	Keys         []box.Key
	DeleteKeys   []string
	Grants       []box.GrantPut // codes in clear: the store writes their HMACs
	DeleteGrants []string
	Events       []box.Event // committed in the same transaction (e.g. records_applied)
}

// checkBatch validates everything that does not need the stored state and
// returns the batch with fob UIDs normalised and the codes' hashes.
func (s *Store) checkBatch(b Batch) (Batch, [][]byte, error) {
	import0 := b.FromRevision == 0 && b.ToRevision == 0
	if !import0 && b.ToRevision <= b.FromRevision {
		return b, nil, fmt.Errorf("batch revision %d to %d does not go forward", b.FromRevision, b.ToRevision)
	}
	keys := make([]box.Key, len(b.Keys))
	keyAt := make(map[string]int, len(b.Keys))
	fobAt := make(map[string]int, len(b.Keys))
	for i, k := range b.Keys {
		k, err := k.Normalized(s.slots)
		if err != nil {
			return b, nil, fmt.Errorf("keys[%d] (id %q): %w", i, k.ID, err)
		}
		if j, dup := keyAt[k.ID]; dup {
			return b, nil, fmt.Errorf("keys[%d] (id %q): %w: duplicate id, also keys[%d]", i, k.ID, box.ErrInvalidRecord, j)
		}
		if j, dup := fobAt[k.FobUID]; dup {
			return b, nil, fmt.Errorf("keys[%d] (id %q): %w: fob %s is also keys[%d] (id %q)", i, k.ID, box.ErrInvalidRecord, k.FobUID, j, b.Keys[j].ID)
		}
		keyAt[k.ID], fobAt[k.FobUID] = i, i
		keys[i] = k
	}
	for i, id := range b.DeleteKeys {
		if !box.ValidID(id) {
			return b, nil, fmt.Errorf("delete_keys[%d] (id %q): %w: not a key id", i, id, box.ErrInvalidRecord)
		}
		if j, both := keyAt[id]; both {
			return b, nil, fmt.Errorf("delete_keys[%d] (id %q): %w: also put as keys[%d]", i, id, box.ErrInvalidRecord, j)
		}
	}
	hashes := make([][]byte, len(b.Grants))
	grantAt := make(map[string]int, len(b.Grants))
	for i, g := range b.Grants {
		if err := g.Validate(); err != nil {
			return b, nil, fmt.Errorf("grants[%d] (id %q): %w", i, g.ID, err)
		}
		if j, dup := grantAt[g.ID]; dup {
			return b, nil, fmt.Errorf("grants[%d] (id %q): %w: duplicate id, also grants[%d]", i, g.ID, box.ErrInvalidRecord, j)
		}
		grantAt[g.ID] = i
		if g.Code != "" {
			hashes[i] = s.codeHash(g.Code)
		}
	}
	for i, id := range b.DeleteGrants {
		if !box.ValidID(id) {
			return b, nil, fmt.Errorf("delete_grants[%d] (id %q): %w: not a grant id", i, id, box.ErrInvalidRecord)
		}
		if j, both := grantAt[id]; both {
			return b, nil, fmt.Errorf("delete_grants[%d] (id %q): %w: also put as grants[%d]", i, id, box.ErrInvalidRecord, j)
		}
	}
	b.Keys = keys
	return b, hashes, nil
}

// Apply applies a batch of replicated records and its events in one
// transaction: on any error nothing is written. It returns the events with
// their sequence numbers.
func (s *Store) Apply(b Batch) ([]box.Event, error) {
	b, hashes, err := s.checkBatch(b)
	if err != nil {
		return nil, fmt.Errorf("store: apply: %w", err)
	}
	now := s.now()
	var out []box.Event
	err = s.update("apply", func(tx *bolt.Tx) error {
		var err error
		out, err = s.applyChecked(tx, b, hashes, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// applyChecked applies a batch that checkBatch has passed, inside tx. It is
// shared by Apply and by the snapshot stage (see sync.go), which applies its
// chunks in the transaction that stages the last one.
func (s *Store) applyChecked(tx *bolt.Tx, b Batch, hashes [][]byte, now time.Time) ([]box.Event, error) {
	rev, err := getU64(tx, metaRevision)
	if err != nil {
		return nil, err
	}
	next := b.ToRevision
	switch {
	case b.FromRevision == 0 && b.ToRevision == 0:
		next = rev + 1
	case b.Snapshot:
		// A snapshot replaces everything, whatever the store had; only
		// an older one (a late duplicate) would take the box back.
		if b.ToRevision < rev {
			return nil, &RevisionMismatchError{Have: rev, From: b.FromRevision, To: b.ToRevision, Snapshot: true}
		}
	case b.FromRevision != rev:
		return nil, &RevisionMismatchError{Have: rev, From: b.FromRevision, To: b.ToRevision}
	}
	if err := applyKeys(tx, b); err != nil {
		return nil, err
	}
	if err := applyGrants(tx, b, hashes, now); err != nil {
		return nil, err
	}
	if err := tx.Bucket(bucketMeta).Put(metaRevision, u64(next)); err != nil {
		return nil, err
	}
	return s.appendEvents(tx, b.Events, now)
}

func deleteKey(tx *bolt.Tx, id string) error {
	k, ok, err := getKey(tx, id)
	if err != nil || !ok {
		return err
	}
	fobs := tx.Bucket(bucketFobs)
	if owner := fobs.Get([]byte(k.FobUID)); string(owner) == id {
		if err := fobs.Delete([]byte(k.FobUID)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketKeys).Delete([]byte(id))
}

func applyKeys(tx *bolt.Tx, b Batch) error {
	keys, fobs := tx.Bucket(bucketKeys), tx.Bucket(bucketFobs)
	var gone []string
	if b.Snapshot {
		keep := make(map[string]bool, len(b.Keys))
		for _, k := range b.Keys {
			keep[k.ID] = true
		}
		var err error
		if gone, err = idsNotIn(keys, keep); err != nil {
			return err
		}
	} else {
		gone = b.DeleteKeys
	}
	for _, id := range gone {
		if err := deleteKey(tx, id); err != nil {
			return err
		}
	}
	// Drop the old fob entries of every key put before adding any new one,
	// so that a batch may move a fob from one key to another.
	for _, k := range b.Keys {
		old, ok, err := getKey(tx, k.ID)
		if err != nil {
			return err
		}
		if ok && old.FobUID != k.FobUID && string(fobs.Get([]byte(old.FobUID))) == k.ID {
			if err := fobs.Delete([]byte(old.FobUID)); err != nil {
				return err
			}
		}
	}
	for i, k := range b.Keys {
		if owner := fobs.Get([]byte(k.FobUID)); owner != nil && string(owner) != k.ID {
			return fmt.Errorf("keys[%d] (id %q): %w: fob %s is key %q's", i, k.ID, box.ErrInvalidRecord, k.FobUID, owner)
		}
		v, err := json.Marshal(k)
		if err != nil {
			return fmt.Errorf("keys[%d] (id %q): encoding: %w", i, k.ID, err)
		}
		if err := keys.Put([]byte(k.ID), v); err != nil {
			return err
		}
		if err := fobs.Put([]byte(k.FobUID), []byte(k.ID)); err != nil {
			return err
		}
	}
	return nil
}

func deleteGrant(tx *bolt.Tx, id string) error {
	g, ok, err := getGrant(tx, id)
	if err != nil || !ok {
		return err
	}
	if g.CodeHash != nil {
		if err := tx.Bucket(bucketCodes).Delete(codeKey(g.CodeHash, id)); err != nil {
			return err
		}
	}
	if g.DriverRef != "" {
		if err := tx.Bucket(bucketDrivers).Delete(driverKey(g.DriverRef, id)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketGrants).Delete([]byte(id))
}

func applyGrants(tx *bolt.Tx, b Batch, hashes [][]byte, now time.Time) error {
	codes, drivers := tx.Bucket(bucketCodes), tx.Bucket(bucketDrivers)
	var gone []string
	if b.Snapshot {
		keep := make(map[string]bool, len(b.Grants))
		for _, g := range b.Grants {
			keep[g.ID] = true
		}
		var err error
		if gone, err = idsNotIn(tx.Bucket(bucketGrants), keep); err != nil {
			return err
		}
	} else {
		gone = b.DeleteGrants
	}
	for _, id := range gone {
		if err := deleteGrant(tx, id); err != nil {
			return err
		}
	}
	empty := []byte{}
	var codeKeys, driverKeys [][]byte
	for i, g := range b.Grants {
		old, exists, err := getGrant(tx, g.ID)
		if err != nil {
			return err
		}
		rec := grantRecord{Grant: g.Grant, CodeHash: hashes[i]}
		rec.KeyIDs = append([]string(nil), g.KeyIDs...)
		if exists {
			// The box counts uses; the cloud's figure is at best older.
			rec.Uses = old.Uses
			if rec.CodeHash == nil {
				rec.CodeHash = old.CodeHash // no code sent: keep the one it has
			}
			if old.CodeHash != nil && !bytes.Equal(old.CodeHash, rec.CodeHash) {
				if err := codes.Delete(codeKey(old.CodeHash, g.ID)); err != nil {
					return err
				}
			}
			if old.DriverRef != "" && old.DriverRef != rec.DriverRef {
				if err := drivers.Delete(driverKey(old.DriverRef, g.ID)); err != nil {
					return err
				}
			}
		} else if rec.CodeHash == nil && !rec.Revoked {
			return fmt.Errorf("grants[%d] (id %q): %w: a new %s grant needs a code unless revoked", i, g.ID, box.ErrInvalidRecord, g.Kind)
		}
		if err := putGrant(tx, rec); err != nil {
			return fmt.Errorf("grants[%d] (id %q): %w", i, g.ID, err)
		}
		if rec.CodeHash != nil {
			codeKeys = append(codeKeys, codeKey(rec.CodeHash, g.ID))
		}
		if rec.DriverRef != "" {
			driverKeys = append(driverKeys, driverKey(rec.DriverRef, g.ID))
		}
	}
	// Index entries go in in key order. bbolt splits nodes only at commit,
	// so within one big transaction every Put is an insert into one ever
	// larger sorted node: in random order (HMACs are) each one moves half
	// of it, quadratic in the batch; in key order each one appends. A
	// 100,000-grant snapshot went from seconds to a fraction of one.
	for _, idx := range []struct {
		b    *bolt.Bucket
		keys [][]byte
	}{{codes, codeKeys}, {drivers, driverKeys}} {
		slices.SortFunc(idx.keys, bytes.Compare)
		for _, k := range idx.keys {
			if err := idx.b.Put(k, empty); err != nil {
				return err
			}
		}
	}
	// Uniqueness is checked on the state after the whole batch, so that a
	// batch may end one grant and give its code to another.
	for i, g := range b.Grants {
		rec, _, err := getGrant(tx, g.ID)
		if err != nil {
			return err
		}
		if rec.CodeHash == nil || rec.Ended(now) {
			continue
		}
		c := codes.Cursor()
		for k, _ := c.Seek(rec.CodeHash); k != nil && bytes.HasPrefix(k, rec.CodeHash); k, _ = c.Next() {
			other := string(k[len(rec.CodeHash):])
			if other == g.ID {
				continue
			}
			og, ok, err := getGrant(tx, other)
			if err != nil {
				return err
			}
			if ok && !og.Ended(now) {
				return fmt.Errorf("grants[%d] (id %q): %w: grant %q has the same code and has not ended", i, g.ID, box.ErrCodeInUse, other)
			}
		}
	}
	return nil
}

// idsNotIn lists the ids in bucket that keep does not hold: the records a
// snapshot removes.
func idsNotIn(bucket *bolt.Bucket, keep map[string]bool) ([]string, error) {
	var gone []string
	err := bucket.ForEach(func(id, _ []byte) error {
		if !keep[string(id)] {
			gone = append(gone, string(id))
		}
		return nil
	})
	return gone, err
}
