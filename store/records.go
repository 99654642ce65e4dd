package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
)

// grantRecord is a grant as stored: the replicated fields, the local use
// count and the code's HMAC (never the code).
type grantRecord struct {
	box.Grant
	CodeHash []byte `json:"code_hash,omitempty"`
}

func getKey(tx *bolt.Tx, id string) (box.Key, bool, error) {
	v := tx.Bucket(bucketKeys).Get([]byte(id))
	if v == nil {
		return box.Key{}, false, nil
	}
	var k box.Key
	if err := json.Unmarshal(v, &k); err != nil {
		return box.Key{}, false, fmt.Errorf("%w: key %q does not decode: %v", ErrCorrupt, id, err)
	}
	return k, true, nil
}

func getGrant(tx *bolt.Tx, id string) (grantRecord, bool, error) {
	v := tx.Bucket(bucketGrants).Get([]byte(id))
	if v == nil {
		return grantRecord{}, false, nil
	}
	var g grantRecord
	if err := json.Unmarshal(v, &g); err != nil {
		return grantRecord{}, false, fmt.Errorf("%w: grant %q does not decode: %v", ErrCorrupt, id, err)
	}
	return g, true, nil
}

func putGrant(tx *bolt.Tx, g grantRecord) error {
	v, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("encoding grant %q: %w", g.ID, err)
	}
	return tx.Bucket(bucketGrants).Put([]byte(g.ID), v)
}

// codeKey is the codes index key of a grant: its code's HMAC, then its id.
func codeKey(hash []byte, id string) []byte {
	return append(bytes.Clone(hash), id...)
}

// driverKey is the drivers index key: the ref, 0x00 (refs never hold it),
// then the grant id. The separator keeps ref "1" from matching ref "12".
func driverKey(ref, id string) []byte {
	k := make([]byte, 0, len(ref)+1+len(id))
	k = append(k, ref...)
	k = append(k, 0)
	return append(k, id...)
}

// grantsWithPrefix loads the grants named by the index entries under prefix
// (ids follow the prefix in the index key).
func grantsWithPrefix(tx *bolt.Tx, index []byte, prefix []byte) ([]box.Grant, error) {
	var out []box.Grant
	c := tx.Bucket(index).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := string(k[len(prefix):])
		g, ok, err := getGrant(tx, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s index names grant %q, which does not exist", ErrCorrupt, index, id)
		}
		out = append(out, g.Grant)
	}
	return out, nil
}

// KeyByID returns the key with id.
func (s *Store) KeyByID(id string) (k box.Key, ok bool, err error) {
	err = s.view("key by id", func(tx *bolt.Tx) error {
		k, ok, err = getKey(tx, id)
		return err
	})
	return k, ok, err
}

// KeyByFob returns the key hanging on the fob uid (normalised first). A uid
// that is not a fob UID names no key.
func (s *Store) KeyByFob(uid string) (k box.Key, ok bool, err error) {
	norm, valid := box.NormalizeFobUID(uid)
	if !valid {
		return box.Key{}, false, nil
	}
	err = s.view("key by fob", func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketFobs).Get([]byte(norm))
		if id == nil {
			return nil
		}
		k, ok, err = getKey(tx, string(id))
		if err == nil && !ok {
			err = fmt.Errorf("%w: fob %s names key %q, which does not exist", ErrCorrupt, norm, id)
		}
		return err
	})
	return k, ok, err
}

// GrantsByCode returns every grant whose code is code, whatever its state,
// in id order. It is one index seek on the code's HMAC. A string that cannot
// be a code has no grants.
func (s *Store) GrantsByCode(code string) (gs []box.Grant, err error) {
	if box.ValidCode(code) != nil {
		return nil, nil
	}
	h := s.codeHash(code)
	err = s.view("grants by code", func(tx *bolt.Tx) error {
		gs, err = grantsWithPrefix(tx, bucketCodes, h)
		return err
	})
	return gs, err
}

// GrantsByDriver returns every grant whose DriverRef is ref, in id order.
func (s *Store) GrantsByDriver(ref string) (gs []box.Grant, err error) {
	if ref == "" || bytes.IndexByte([]byte(ref), 0) >= 0 {
		return nil, nil
	}
	err = s.view("grants by driver", func(tx *bolt.Tx) error {
		gs, err = grantsWithPrefix(tx, bucketDrivers, driverKey(ref, ""))
		return err
	})
	return gs, err
}

// Keys returns every key, ordered by slot (then id).
func (s *Store) Keys() ([]box.Key, error) {
	var out []box.Key
	err := s.view("keys", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(id, v []byte) error {
			var k box.Key
			if err := json.Unmarshal(v, &k); err != nil {
				return fmt.Errorf("%w: key %q does not decode: %v", ErrCorrupt, id, err)
			}
			out = append(out, k)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out, err
}

// Grants returns every grant, ordered by id. Grants never carry a code.
func (s *Store) Grants() ([]box.Grant, error) {
	var out []box.Grant
	err := s.view("grants", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketGrants).ForEach(func(id, v []byte) error {
			var g grantRecord
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("%w: grant %q does not decode: %v", ErrCorrupt, id, err)
			}
			out = append(out, g.Grant)
			return nil
		})
	})
	return out, err
}

// Revision is the revision of the replicated records the store holds.
func (s *Store) Revision() (rev uint64, err error) {
	err = s.view("revision", func(tx *bolt.Tx) error {
		rev, err = getU64(tx, metaRevision)
		return err
	})
	return rev, err
}

// Lockout returns the wrong-code state (zero if never set).
func (s *Store) Lockout() (l box.Lockout, err error) {
	err = s.view("lockout", func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLockout).Get(lockoutState)
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("%w: lockout does not decode: %v", ErrCorrupt, err)
		}
		return nil
	})
	return l, err
}
