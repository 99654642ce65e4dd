package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketBoxCerts keeps each box's current client certificate (serial and
// expiry) from the bridge's CA: the broker lets in that serial only, so a
// certificate replaced by a later provisioning stops working.
var bucketBoxCerts = []byte("box_certs")

// boxCert is one box's current certificate, as kept in boxes.db.
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
// password. A current (unexpired)
// certificate for another key is replaced only with replace: the new one
// shuts the old card out, so a wrong box id must not do it silently. The
// check and the write are one transaction.
func (a *boxAccounts) SetCert(id string, c issuedCert, replace bool, now time.Time) error {
	b, err := json.Marshal(boxCert{Serial: c.Serial.Text(16), NotAfter: c.NotAfter.UTC(), KeySHA256: c.KeySHA256})
	if err != nil {
		return err
	}
	err = a.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucketBoxCerts)
		if err != nil {
			return err
		}
		if v := bk.Get([]byte(id)); v != nil && !replace {
			var old boxCert
			if json.Unmarshal(v, &old) != nil || (old.NotAfter.After(now) && old.KeySHA256 != c.KeySHA256) {
				return errOtherCert
			}
		}
		if err := bk.Put([]byte(id), b); err != nil {
			return err
		}
		// The box logs in with this certificate from now on: an old
		// password (an old card) must not (the broker refuses it too).
		return tx.Bucket(bucketBoxPasswords).Delete([]byte(id))
	})
	if errors.Is(err, errOtherCert) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store certificate of box %s in boxes.db: %w", id, err)
	}
	return nil
}

// Cert is the box's current certificate; ok false when none was issued.
func (a *boxAccounts) Cert(id string) (c boxCert, ok bool) {
	_ = a.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketBoxCerts)
		if bk == nil {
			return nil
		}
		if v := bk.Get([]byte(id)); v != nil {
			ok = json.Unmarshal(v, &c) == nil
		}
		return nil
	})
	return c, ok
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
