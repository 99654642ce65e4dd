package bookings

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors of the store, wrapped with what and which.
var (
	ErrNotConnected = errors.New("fleetio integration not connected")
	ErrNotFound     = errors.New("not found")
	ErrInvalid      = errors.New("invalid")
)

// Store is the integration's store: a bbolt file (OpenStore) or PostgreSQL
// tables (OpenPostgresStore), behind the same methods (store_engine.go). It
// is safe for concurrent use. Which file stores what: store_settings.go
// (settings, boxes, links), store_queue.go (deliveries, queue),
// store_bookings.go (bookings, tokens, prompts), store_codes.go (drivers),
// store_watch.go (box events tied to bookings).
type Store struct {
	eng  engine
	aead cipher.AEAD
}

// newStore is a Store on eng, sealing with sealKey (32 bytes, AES-256).
func newStore(eng engine, sealKey []byte) (*Store, error) {
	blk, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return &Store{eng: eng, aead: aead}, nil
}

// newSealKey draws the key that seals PINs and driver codes.
func newSealKey() []byte {
	k := make([]byte, 32)
	rand.Read(k) // crypto/rand.Read never fails (Go >= 1.24)
	return k
}

// Close closes the store (a PostgreSQL store leaves its pool open: it is
// the caller's).
func (s *Store) Close() error { return s.eng.close() }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// id64 is an id as 8 bytes big-endian: a bbolt key (in id order), and what
// binds a sealed PIN to its assignment.
func id64(v int64) []byte { return u64(uint64(v)) }

// forgetSecrets wipes every sealed PIN and driver code (disconnect).
func (s *Store) forgetSecrets() error {
	return s.eng.update(func(tx storeTx) error {
		var wipe []Booking
		if err := scanRecs(tx, tBookings, false, 0, func(_ recKey, b Booking) error {
			if b.SealedPIN != nil {
				b.SealedPIN = nil
				wipe = append(wipe, b)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, b := range wipe {
			if err := putRec(tx, tBookings, idKey(b.AssignmentID), b); err != nil {
				return err
			}
		}
		_, err := tx.clear(tDrivers)
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
