package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"
)

// The buckets of DATA/boxes.db.
var (
	bucketBoxPasswords = []byte("box_passwords")
	// bucketBoxSlots keeps each box's slot count (register-box --slots):
	// put-key refuses a home slot the box does not have. The cloud's
	// records have no place for it, and the box enforces its own anyway.
	bucketBoxSlots = []byte("box_slots")
	// bucketBoxCerts keeps each box's current client certificate (serial
	// and expiry) from the bridge's CA: the broker lets in that serial
	// only, so a certificate replaced by a later provisioning stops working.
	bucketBoxCerts = []byte("box_certs")
)

// boltAccounts is the accounts' bbolt engine (DATA/boxes.db).
type boltAccounts struct {
	db *bolt.DB
}

func openBoxAccounts(path string) (*boxAccounts, error) {
	// A second bridge on the same data dir would fight over the broker's
	// port anyway; fail fast instead of blocking on the file lock.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterr.ErrTimeout) {
			return nil, fmt.Errorf("open %s: in use by another process (is smartbox-bridge already running?)", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketBoxPasswords, bucketBoxSlots, bucketBoxCerts} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return &boxAccounts{e: &boltAccounts{db: db}}, nil
}

func (a *boltAccounts) close() error { return a.db.Close() }

func (a *boltAccounts) get(bucket []byte, id string) (v []byte, ok bool, err error) {
	err = a.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket).Get([]byte(id)); b != nil {
			v, ok = bytes.Clone(b), true // b dies with tx
		}
		return nil
	})
	return v, ok, err
}

func (a *boltAccounts) put(bucket []byte, id string, v []byte) error {
	return a.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(id), v) })
}

func (a *boltAccounts) putPassword(id, hash string) error {
	return a.put(bucketBoxPasswords, id, []byte(hash))
}

func (a *boltAccounts) password(id string) (string, bool, error) {
	v, ok, err := a.get(bucketBoxPasswords, id)
	return string(v), ok, err
}

func (a *boltAccounts) putSlots(id string, n int) error {
	return a.put(bucketBoxSlots, id, []byte(strconv.Itoa(n)))
}

func (a *boltAccounts) slots(id string) (int, bool, error) {
	v, ok, err := a.get(bucketBoxSlots, id)
	if !ok || err != nil {
		return 0, false, err
	}
	n, err := strconv.Atoi(string(v))
	return n, err == nil, err
}

func (a *boltAccounts) cert(id string) ([]byte, bool, error) { return a.get(bucketBoxCerts, id) }

func (a *boltAccounts) swapCert(id string, decide func(old []byte) ([]byte, error)) error {
	return a.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketBoxCerts)
		v, err := decide(bk.Get([]byte(id)))
		if err != nil {
			return err
		}
		if err := bk.Put([]byte(id), v); err != nil {
			return err
		}
		return tx.Bucket(bucketBoxPasswords).Delete([]byte(id))
	})
}

// accountRow is one box's account, as moved between engines.
type accountRow struct {
	id           string
	passwordHash *string
	slots        *int
	cert         []byte // JSON; nil: none
}

// rows lists every box's account, in box id order.
func (a *boltAccounts) rows() ([]accountRow, error) {
	byID := map[string]*accountRow{}
	var ids []string
	row := func(id []byte) *accountRow {
		r := byID[string(id)]
		if r == nil {
			r = &accountRow{id: string(id)}
			byID[r.id] = r
			ids = append(ids, r.id)
		}
		return r
	}
	err := a.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketBoxPasswords).ForEach(func(k, v []byte) error {
			h := string(v)
			row(k).passwordHash = &h
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketBoxSlots).ForEach(func(k, v []byte) error {
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return fmt.Errorf("slot count of box %s: %q", k, v)
			}
			row(k).slots = &n
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketBoxCerts).ForEach(func(k, v []byte) error {
			row(k).cert = bytes.Clone(v)
			return nil
		})
	})
	rows := make([]accountRow, 0, len(ids))
	for _, id := range ids {
		rows = append(rows, *byID[id])
	}
	return rows, err
}
