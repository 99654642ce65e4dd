package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/smartbox-oss/smartbox/sync/broker"
)

// boxAccounts keeps the boxes' MQTT password hashes (bcrypt) for the embedded
// broker's user lookup, their slot counts, and their current client
// certificates. Where they are kept is its engine: a bbolt file of its own
// (DATA/boxes.db, accounts_bolt.go) beside the cloud's, since sync/cloud
// keeps records and events and has no accounts and a password check must
// not wait behind a big snapshot transaction; or PostgreSQL
// (accounts_pg.go), shared by every replica. The rules are here, once.
type boxAccounts struct {
	e accountsEngine
}

// accountsEngine is how an engine keeps the accounts. Lookups that fail
// report the error; the callers below refuse (fail secure).
type accountsEngine interface {
	putPassword(id, hash string) error
	password(id string) (hash string, ok bool, err error)
	putSlots(id string, n int) error
	slots(id string) (n int, ok bool, err error)
	cert(id string) (record []byte, ok bool, err error)
	// swapCert, in one transaction: calls decide with the box's current
	// certificate record (nil if none), stores what it returns, and
	// clears the box's password. An error from decide aborts it.
	swapCert(id string, decide func(old []byte) ([]byte, error)) error
	close() error
}

func (a *boxAccounts) Close() error { return a.e.close() }

// SetPassword stores a bcrypt hash of pw as box id's MQTT password.
func (a *boxAccounts) SetPassword(id, pw string) error {
	hash, err := broker.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("hash password of box %s: %w", id, err)
	}
	if err := a.e.putPassword(id, hash); err != nil {
		return fmt.Errorf("store password of box %s: %w", id, err)
	}
	return nil
}

// PasswordHash is the broker's user lookup (broker.Config.Users). A store
// that cannot answer refuses the login.
func (a *boxAccounts) PasswordHash(id string) (hash string, ok bool) {
	hash, ok, err := a.e.password(id)
	return hash, ok && err == nil
}

// HasPassword says whether the box has a password set.
func (a *boxAccounts) HasPassword(id string) bool {
	_, ok := a.PasswordHash(id)
	return ok
}

// SetSlots records how many slots box id has.
func (a *boxAccounts) SetSlots(id string, n int) error {
	if err := a.e.putSlots(id, n); err != nil {
		return fmt.Errorf("store slot count of box %s: %w", id, err)
	}
	return nil
}

// Slots is box id's slot count, 0 when never given (or unreadable: put-key
// then does not check the home slot, and the box refuses a slot it lacks).
func (a *boxAccounts) Slots(id string) int {
	n, _, _ := a.e.slots(id)
	return n
}

// boxCert is one box's current certificate, as kept by the accounts.
type boxCert struct {
	Serial   string    `json:"serial"` // hex
	NotAfter time.Time `json:"not_after"`
	// KeySHA256 is issuedCert.KeySHA256; "" in a record made before it
	// was kept, which counts as another key.
	KeySHA256 string `json:"key_sha256,omitempty"`
}

// errOtherCert: SetCert without replace found the box holding a current
// certificate for another key.
var errOtherCert = errors.New("box has a current certificate for another key")

// SetCert makes c the box's current certificate, and clears the box's
// password. A current (unexpired) certificate for another key is replaced
// only with replace: the new one shuts the old card out, so a wrong box id
// must not do it silently. The check and the write are one transaction.
func (a *boxAccounts) SetCert(id string, c issuedCert, replace bool, now time.Time) error {
	b, err := json.Marshal(boxCert{Serial: c.Serial.Text(16), NotAfter: c.NotAfter.UTC(), KeySHA256: c.KeySHA256})
	if err != nil {
		return err
	}
	// The box logs in with this certificate from now on: an old password
	// (an old card) must not (the broker refuses it too); swapCert clears it.
	err = a.e.swapCert(id, func(v []byte) ([]byte, error) {
		if v != nil && !replace {
			var old boxCert
			if json.Unmarshal(v, &old) != nil || (old.NotAfter.After(now) && old.KeySHA256 != c.KeySHA256) {
				return nil, errOtherCert
			}
		}
		return b, nil
	})
	if errors.Is(err, errOtherCert) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store certificate of box %s: %w", id, err)
	}
	return nil
}

// Cert is the box's current certificate; ok false when none was issued.
func (a *boxAccounts) Cert(id string) (c boxCert, ok bool) {
	v, ok, err := a.e.cert(id)
	if err != nil || !ok {
		return boxCert{}, false
	}
	return c, json.Unmarshal(v, &c) == nil
}

// CertSerial is the broker's serial lookup (broker.Config.BoxCertSerial).
// A record that does not parse refuses the box (fail secure).
func (a *boxAccounts) CertSerial(id string) (*big.Int, bool) {
	c, ok := a.Cert(id)
	if !ok {
		return nil, false
	}
	return new(big.Int).SetString(c.Serial, 16)
}
