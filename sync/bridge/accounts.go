package bridge

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"

	"github.com/smartbox-oss/smartbox/sync/broker"
)

var (
	bucketBoxPasswords = []byte("box_passwords")
	// bucketBoxSlots keeps each box's slot count (register-box --slots):
	// put-key refuses a home slot the box does not have. The cloud's
	// records have no place for it, and the box enforces its own anyway.
	bucketBoxSlots = []byte("box_slots")
)

// boxAccounts keeps the boxes' MQTT password hashes (bcrypt) for the embedded
// broker's user lookup, and their slot counts. It is a bbolt file of its own
// (DATA/boxes.db) beside the cloud's (DATA/cloud.db):
// sync/cloud keeps records and events and has no accounts, and a password
// check must not wait behind a big snapshot transaction.
type boxAccounts struct {
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
	return &boxAccounts{db: db}, nil
}

func (a *boxAccounts) Close() error { return a.db.Close() }

// SetPassword stores a bcrypt hash of pw as box id's MQTT password.
func (a *boxAccounts) SetPassword(id, pw string) error {
	hash, err := broker.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("hash password of box %s: %w", id, err)
	}
	return a.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBoxPasswords).Put([]byte(id), []byte(hash))
	})
}

// PasswordHash is the broker's user lookup (broker.Config.Users).
func (a *boxAccounts) PasswordHash(id string) (hash string, ok bool) {
	_ = a.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBoxPasswords).Get([]byte(id)); v != nil {
			hash, ok = string(v), true // string() copies: v dies with tx
		}
		return nil
	})
	return hash, ok
}

// HasPassword says whether the box has a password set.
func (a *boxAccounts) HasPassword(id string) bool {
	_, ok := a.PasswordHash(id)
	return ok
}

// SetSlots records how many slots box id has.
func (a *boxAccounts) SetSlots(id string, n int) error {
	return a.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBoxSlots).Put([]byte(id), []byte(strconv.Itoa(n)))
	})
}

// Slots is box id's slot count, 0 when never given.
func (a *boxAccounts) Slots(id string) (n int) {
	_ = a.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBoxSlots).Get([]byte(id)); v != nil {
			n, _ = strconv.Atoi(string(v))
		}
		return nil
	})
	return n
}
