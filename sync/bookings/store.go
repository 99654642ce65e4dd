package bookings

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the store file. Ids (vehicle, delivery, assignment, contact)
// are keys of 8 bytes big-endian, so a cursor walks them in id order (the
// queue in arrival order); values are JSON, so a field added to a record
// reads as its zero value from an older file. The buckets of box events tied
// to bookings (watch_*) are laid out in store_watch.go. Which file stores
// what: store_settings.go (settings, boxes, links), store_queue.go
// (deliveries, queue), store_bookings.go (bookings, tokens, prompts),
// store_codes.go (drivers).
var (
	bucketMeta       = []byte("meta")       // "schema", "seal_key"
	bucketSettings   = []byte("settings")   // "connection" -> Settings (JSON)
	bucketBoxes      = []byte("boxes")      // box id -> BoxInfo
	bucketLinks      = []byte("links")      // vehicle id (8 bytes BE) -> Link
	bucketDeliveries = []byte("deliveries") // delivery id -> Delivery
	bucketQueue      = []byte("queue")      // delivery id -> empty: the deliveries still to process
	bucketBookings   = []byte("bookings")   // assignment id -> Booking
	bucketTokens     = []byte("tokens")     // SHA-256 of an access token -> assignment id
	bucketPrompts    = []byte("prompts")    // assignment id -> Reservation
	bucketDrivers    = []byte("drivers")    // contact id -> driverCode (code sealed)
)

const schemaVersion = 1

// Errors of the store, wrapped with what and which.
var (
	ErrNotConnected = errors.New("fleetio integration not connected")
	ErrNotFound     = errors.New("not found")
	ErrInvalid      = errors.New("invalid")
)

// Store is the integration's bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	aead cipher.AEAD
}

// OpenStore opens (or creates, mode 0600) the store file at path.
func OpenStore(path string) (*Store, error) {
	// Timeout: a second bridge on the same file gets an error, not a hang.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("bridge store %s: open: %w", path, err)
	}
	// An existing file keeps its mode; the secrets inside need 0600.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("bridge store %s: chmod 0600: %w", path, err)
	}
	s := &Store{db: db}
	var sealKey []byte
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketSettings, bucketBoxes, bucketLinks, bucketDeliveries,
			bucketQueue, bucketBookings, bucketTokens, bucketPrompts, bucketDrivers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
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
		sealKey = make([]byte, 32)
		if _, err := rand.Read(sealKey); err != nil {
			return err
		}
		return meta.Put([]byte("seal_key"), sealKey)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bridge store %s: init: %w", path, err)
	}
	blk, err := aes.NewCipher(sealKey)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bridge store %s: seal key: %w", path, err)
	}
	s.aead, _ = cipher.NewGCM(blk)
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func id64(v int64) []byte { return u64(uint64(v)) }

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	raw := b.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode record %x: %w", k, err)
	}
	return true, nil
}

// get reads the record of id in bucket; false if there is none.
func get[T any](s *Store, bucket []byte, id int64) (T, bool, error) {
	var v T
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		ok, err = getJSON(tx.Bucket(bucket), id64(id), &v)
		return err
	})
	return v, ok, err
}

// list decodes every record of bucket in key (id) order; what names a
// record in an error.
func list[T any](s *Store, bucket []byte, what string) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("%s %x: %w", what, k, err)
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}

// forgetSecrets wipes every sealed PIN and driver code (disconnect).
func (s *Store) forgetSecrets() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bs := tx.Bucket(bucketBookings)
		var wipe []Booking
		if err := bs.ForEach(func(k, v []byte) error {
			var b Booking
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("booking %x: %w", k, err)
			}
			if b.SealedPIN != nil {
				b.SealedPIN = nil
				wipe = append(wipe, b)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, b := range wipe {
			if err := putJSON(bs, id64(b.AssignmentID), b); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketDrivers); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketDrivers)
		return err
	})
}

// sealPIN encrypts a PIN for the booking record, bound to the assignment.
func (s *Store) sealPIN(assignmentID int64, pin string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce) // crypto/rand.Read never fails (Go >= 1.24)
	return s.aead.Seal(nonce, nonce, []byte(pin), id64(assignmentID))
}

// openPIN decrypts what sealPIN made.
func (s *Store) openPIN(assignmentID int64, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", fmt.Errorf("booking %d: sealed PIN too short", assignmentID)
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], id64(assignmentID))
	if err != nil {
		return "", fmt.Errorf("booking %d: open sealed PIN: %w", assignmentID, err)
	}
	return string(pt), nil
}
