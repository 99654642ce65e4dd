package bookings

import (
	"crypto/rand"
	"fmt"
	"time"
)

// driverCode is a driver's code (CodePerDriver drawn, or CodeDriverOwn set
// by the admin), sealed like PINs, and the boxes its grant is on.
type driverCode struct {
	ContactID int64           `json:"contact_id"`
	Sealed    []byte          `json:"sealed"`
	Own       bool            `json:"own,omitempty"` // set by the admin (CodeDriverOwn)
	Boxes     map[string]bool `json:"boxes,omitempty"`
	Changed   time.Time       `json:"changed"`
}

func (s *Store) driverCode(contactID int64) (driverCode, bool, error) {
	return get[driverCode](s, tDrivers, contactID)
}

func (s *Store) putDriverCode(dc driverCode) error {
	return putOne(s, tDrivers, idKey(dc.ContactID), dc)
}

func (s *Store) deleteDriverCode(contactID int64) error { return delOne(s, tDrivers, idKey(contactID)) }

func (s *Store) driverCodes() ([]driverCode, error) { return list[driverCode](s, tDrivers) }

// sealDriverCode encrypts a driver's code, bound to the contact (the
// additional data differs from a PIN's, so one can't pass for the other).
func (s *Store) sealDriverCode(contactID int64, code string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, []byte(code), driverAD(contactID))
}

func (s *Store) openDriverCode(contactID int64, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", fmt.Errorf("driver %d: sealed code too short", contactID)
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], driverAD(contactID))
	if err != nil {
		return "", fmt.Errorf("driver %d: open sealed code: %w", contactID, err)
	}
	return string(pt), nil
}

func driverAD(contactID int64) []byte { return append([]byte("driver:"), id64(contactID)...) }
