package cloud

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// storedGrant is a grant as the cloud keeps it: the code encrypted
// (nonce || AES-GCM, bound to box and grant id) and its MAC for the index.
type storedGrant struct {
	box.Grant
	CodeEnc []byte `json:"code_enc,omitempty"`
	CodeMAC []byte `json:"code_mac,omitempty"`
}

// logEntry is what one revision touched. The record's value is read from
// the current state when a delta is made: a record still there is put, a
// record gone is deleted. That makes merging revisions trivial.
type logEntry struct {
	Keys   []string `json:"k,omitempty"`
	Grants []string `json:"g,omitempty"`
}

func (e logEntry) size() int { return len(e.Keys) + len(e.Grants) }

func codeAD(boxID, grantID string) []byte { return []byte(boxID + "\n" + grantID) }

func (c *Cloud) encryptCode(boxID, grantID, code string) []byte {
	n := c.codeAEAD.NonceSize()
	nonce := make([]byte, n, n+len(code)+c.codeAEAD.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on Linux >= 3.17
	}
	return c.codeAEAD.Seal(nonce, nonce, []byte(code), codeAD(boxID, grantID))
}

func (c *Cloud) decryptCode(boxID, grantID string, enc []byte) (string, error) {
	n := c.codeAEAD.NonceSize()
	if len(enc) < n+c.codeAEAD.Overhead() {
		return "", fmt.Errorf("box %s grant %s: stored code is damaged", boxID, grantID)
	}
	code, err := c.codeAEAD.Open(nil, enc[:n], enc[n:], codeAD(boxID, grantID))
	if err != nil {
		return "", fmt.Errorf("box %s grant %s: stored code does not decrypt (damaged, or another code key)", boxID, grantID)
	}
	return string(code), nil
}

func (c *Cloud) codeMACOf(boxID, code string) []byte {
	m := hmac.New(sha256.New, c.codeMAC)
	m.Write([]byte(boxID))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// ended is the cloud's view of a grant that can no longer be used: the box
// counts uses, so a used-up grant still counts as active here.
func ended(g box.Grant, now time.Time) bool {
	return g.Revoked || (!g.Until.IsZero() && !now.Before(g.Until))
}

// change is one revision in the making.
type change struct {
	c     *Cloud
	bt    boxTx
	now   time.Time
	entry logEntry
	keys  map[string]bool
	grs   map[string]bool
}

func (ch *change) touchKey(id string) {
	if !ch.keys[id] {
		ch.keys[id] = true
		ch.entry.Keys = append(ch.entry.Keys, id)
	}
}

func (ch *change) touchGrant(id string) {
	if !ch.grs[id] {
		ch.grs[id] = true
		ch.entry.Grants = append(ch.entry.Grants, id)
	}
}

// mutate runs fn in one transaction and, if fn changed anything, bumps the
// box's revision, logs what changed and trims the log. It returns the
// revision after the change (unchanged if nothing changed) and pushes the
// change to the box when Serve runs.
func (c *Cloud) mutate(what, boxID string, fn func(*change) error) (uint64, error) {
	var rev, from uint64
	err := c.update(what, boxID, func(bt boxTx) error {
		ch := &change{c: c, bt: bt, now: c.opts.Now(), keys: map[string]bool{}, grs: map[string]bool{}}
		if err := fn(ch); err != nil {
			return err
		}
		m := bt.meta()
		from = m.Rev
		rev = from
		if ch.entry.size() == 0 {
			return nil
		}
		rev = from + 1
		v, err := json.Marshal(ch.entry)
		if err != nil {
			return err
		}
		if err := bt.putLog(rev, v); err != nil {
			return err
		}
		m.Rev = rev
		if err := trimLog(bt, &m, c.opts.LogLimit); err != nil {
			return err
		}
		return bt.setMeta(m)
	})
	if err != nil {
		return 0, err
	}
	if rev != from {
		c.pushChange(boxID, from)
	}
	return rev, nil
}

// trimLog keeps the last limit revisions: it deletes the older ones and
// moves m.LogStart. The log always holds every revision in (logstart, rev],
// so its length is rev - logstart.
func trimLog(bt boxTx, m *boxMeta, limit int) error {
	if m.Rev-m.LogStart <= uint64(limit) {
		return nil
	}
	newStart := m.Rev - uint64(limit)
	if err := bt.deleteLog(m.LogStart+1, newStart); err != nil {
		return err
	}
	m.LogStart = newStart
	return nil
}

func (ch *change) putKey(k box.Key) error {
	k, err := k.Normalized(0)
	if err != nil {
		return err
	}
	v, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("key %s: encoding: %w", k.ID, err)
	}
	if len(v) > MaxRecordSize {
		return fmt.Errorf("%w: key %s is %d bytes as JSON, at most %d", box.ErrInvalidRecord, k.ID, len(v), MaxRecordSize)
	}
	bt := ch.bt
	owner, err := bt.fobKey(k.FobUID)
	if err != nil {
		return err
	}
	if owner != "" && owner != k.ID {
		return fmt.Errorf("%w: key %s: fob %s is key %s's", box.ErrInvalidRecord, k.ID, k.FobUID, owner)
	}
	old, err := bt.key(k.ID)
	if err != nil {
		return err
	}
	if bytes.Equal(old, v) {
		return nil
	}
	if old != nil {
		var ok box.Key
		if err := json.Unmarshal(old, &ok); err != nil {
			return fmt.Errorf("key %s: stored record: %w", k.ID, err)
		}
		if ok.FobUID != k.FobUID {
			if err := bt.deleteFob(ok.FobUID); err != nil {
				return err
			}
		}
	}
	if err := bt.putKey(k.ID, v); err != nil {
		return err
	}
	if err := bt.putFob(k.FobUID, k.ID); err != nil {
		return err
	}
	ch.touchKey(k.ID)
	return nil
}

func (ch *change) deleteKey(id string) error {
	bt := ch.bt
	old, err := bt.key(id)
	if err != nil || old == nil {
		return err
	}
	var k box.Key
	if err := json.Unmarshal(old, &k); err != nil {
		return fmt.Errorf("key %s: stored record: %w", id, err)
	}
	if err := bt.deleteFob(k.FobUID); err != nil {
		return err
	}
	if err := bt.deleteKey(id); err != nil {
		return err
	}
	ch.touchKey(id)
	return nil
}

func getGrant(bt boxTx, id string) (storedGrant, bool, error) {
	v, err := bt.grant(id)
	if err != nil {
		return storedGrant{}, false, err
	}
	return decodeGrant(id, v)
}

// decodeGrant is a stored grant document, false if there is none.
func decodeGrant(id string, v []byte) (storedGrant, bool, error) {
	if v == nil {
		return storedGrant{}, false, nil
	}
	var g storedGrant
	if err := json.Unmarshal(v, &g); err != nil {
		return g, false, fmt.Errorf("grant %s: stored record: %w", id, err)
	}
	return g, true, nil
}

func (ch *change) putGrant(gp box.GrantPut) error {
	gp.Uses = 0 // the box counts uses
	// The box's own rules: anything the box would refuse must be refused
	// here, or a batch the cloud signed would never apply and the box would
	// be stuck at its revision.
	if err := gp.Validate(); err != nil {
		return err
	}
	g := gp.Grant
	bt, c := ch.bt, ch.c
	// A grant naming a key the box lacks is a bridge mistake worth
	// catching here; a revoked grant opens nothing, so it may keep the ids
	// of keys deleted since.
	if !g.Revoked && len(g.KeyIDs) > 0 {
		have, err := bt.keysByID(g.KeyIDs)
		if err != nil {
			return err
		}
		for _, kid := range g.KeyIDs {
			if have[kid] == nil {
				return fmt.Errorf("%w: grant %s names key %s, which box %s does not have", ErrNotFound, g.ID, kid, bt.boxID())
			}
		}
	}
	old, had, err := getGrant(bt, g.ID)
	if err != nil {
		return err
	}
	ng := storedGrant{Grant: g}
	codeChanged := false
	switch {
	case gp.Code != "":
		ng.CodeMAC = c.codeMACOf(bt.boxID(), gp.Code)
		codeChanged = !had || !hmac.Equal(old.CodeMAC, ng.CodeMAC)
		if codeChanged {
			ng.CodeEnc = c.encryptCode(bt.boxID(), g.ID, gp.Code)
		} else {
			ng.CodeEnc = old.CodeEnc
		}
	case had:
		ng.CodeEnc, ng.CodeMAC = old.CodeEnc, old.CodeMAC
	}
	if ng.CodeEnc == nil && !g.Revoked {
		return fmt.Errorf("%w: grant %s: a new %s grant needs a code unless revoked", ErrNoCode, g.ID, g.Kind)
	}
	// The size the record will have on the wire: its JSON plus a sealed
	// code (nonce, code, tag) in base64.
	wv, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("grant %s: encoding: %w", g.ID, err)
	}
	if len(wv)+128 > MaxRecordSize {
		return fmt.Errorf("%w: grant %s is %d bytes as JSON, at most %d", box.ErrInvalidRecord, g.ID, len(wv), MaxRecordSize-128)
	}
	if had && !codeChanged {
		ov, err := json.Marshal(old.Grant)
		if err == nil && bytes.Equal(ov, wv) {
			return nil // nothing changed: no new revision
		}
	}
	if ng.CodeMAC != nil && !ended(g, ch.now) {
		if err := checkCodeFree(bt, ng.CodeMAC, g.ID, ch.now); err != nil {
			return err
		}
	}
	if had && old.CodeMAC != nil && codeChanged {
		if err := bt.deleteCode(old.CodeMAC, g.ID); err != nil {
			return err
		}
	}
	if ng.CodeMAC != nil {
		if err := bt.putCode(ng.CodeMAC, g.ID); err != nil {
			return err
		}
	}
	v, err := json.Marshal(ng)
	if err != nil {
		return fmt.Errorf("grant %s: encoding: %w", g.ID, err)
	}
	if err := bt.putGrant(g.ID, v); err != nil {
		return err
	}
	ch.touchGrant(g.ID)
	return nil
}

// checkCodeFree refuses a code that an active or future grant other than
// id already has: at the keypad, one code must mean one grant.
func checkCodeFree(bt boxTx, mac []byte, id string, now time.Time) error {
	var holder string
	err := bt.forEachCodeGrant(mac, func(other string, doc []byte) error {
		if other == id || holder != "" {
			return nil
		}
		og, ok, err := decodeGrant(other, doc)
		if err != nil {
			return err
		}
		if ok && !ended(og.Grant, now) {
			holder = other
		}
		return nil
	})
	if err != nil {
		return err
	}
	if holder != "" {
		return fmt.Errorf("%w: grant %s would have the same code as grant %s of box %s, which is active or future",
			box.ErrCodeInUse, id, holder, bt.boxID())
	}
	return nil
}

func (ch *change) deleteGrant(id string) error {
	bt := ch.bt
	old, had, err := getGrant(bt, id)
	if err != nil || !had {
		return err
	}
	if old.CodeMAC != nil {
		if err := bt.deleteCode(old.CodeMAC, id); err != nil {
			return err
		}
	}
	if err := bt.deleteGrant(id); err != nil {
		return err
	}
	ch.touchGrant(id)
	return nil
}

// PutKey adds or changes a key. Putting a key as it is makes no revision.
func (c *Cloud) PutKey(boxID string, k box.Key) (uint64, error) {
	return c.mutate("put key "+k.ID, boxID, func(ch *change) error { return ch.putKey(k) })
}

// DeleteKey removes a key; deleting a key the box does not have is no
// change. Grants naming it keep their other keys.
func (c *Cloud) DeleteKey(boxID, keyID string) (uint64, error) {
	return c.mutate("delete key "+keyID, boxID, func(ch *change) error { return ch.deleteKey(keyID) })
}

// PutGrant adds or changes a grant. code "" keeps the grant's code (a new
// grant needs one unless revoked). A code that another active or future
// grant of the box has is refused with box.ErrCodeInUse naming both grants.
func (c *Cloud) PutGrant(boxID string, g box.Grant, code string) (uint64, error) {
	return c.mutate("put grant "+g.ID, boxID, func(ch *change) error {
		return ch.putGrant(box.GrantPut{Grant: g, Code: code})
	})
}

// RevokeGrant marks a grant revoked: the box refuses its code from the
// batch that carries this on, and says why (revoked, not unknown).
func (c *Cloud) RevokeGrant(boxID, grantID string) (uint64, error) {
	return c.mutate("revoke grant "+grantID, boxID, func(ch *change) error {
		g, ok, err := getGrant(ch.bt, grantID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: grant %s of box %s", ErrNotFound, grantID, boxID)
		}
		if g.Revoked {
			return nil
		}
		g.Revoked = true
		return ch.putGrant(box.GrantPut{Grant: g.Grant})
	})
}

// DeleteGrant removes a grant; deleting one the box does not have is no
// change.
func (c *Cloud) DeleteGrant(boxID, grantID string) (uint64, error) {
	return c.mutate("delete grant "+grantID, boxID, func(ch *change) error { return ch.deleteGrant(grantID) })
}

// PutBatch puts many keys then many grants as one revision, all or nothing.
func (c *Cloud) PutBatch(boxID string, keys []box.Key, grants []box.GrantPut) (uint64, error) {
	return c.mutate("put batch", boxID, func(ch *change) error {
		var keyIDs, grantIDs []string
		var macs [][]byte
		for _, k := range keys {
			keyIDs = append(keyIDs, k.ID)
		}
		for _, g := range grants {
			keyIDs = append(keyIDs, g.KeyIDs...)
			grantIDs = append(grantIDs, g.ID)
			if g.Code != "" {
				macs = append(macs, c.codeMACOf(boxID, g.Code))
			}
		}
		if err := ch.bt.prefetch(keyIDs, grantIDs, macs); err != nil {
			return err
		}
		for i, k := range keys {
			if err := ch.putKey(k); err != nil {
				return fmt.Errorf("keys[%d]: %w", i, err)
			}
		}
		for i, g := range grants {
			if err := ch.putGrant(g); err != nil {
				return fmt.Errorf("grants[%d]: %w", i, err)
			}
		}
		return nil
	})
}

// Revision is the box's current records revision.
func (c *Cloud) Revision(boxID string) (rev uint64, err error) {
	err = c.view("revision", boxID, func(bt boxTx) error {
		rev = bt.meta().Rev
		return nil
	})
	return rev, err
}

// Records returns the box's current keys and grants (without codes), by id.
func (c *Cloud) Records(boxID string) (keys []box.Key, grants []box.Grant, err error) {
	err = c.view("records", boxID, func(bt boxTx) error {
		if err := bt.forEachKey(func(_ string, v []byte) error {
			var k box.Key
			if err := json.Unmarshal(v, &k); err != nil {
				return err
			}
			keys = append(keys, k)
			return nil
		}); err != nil {
			return err
		}
		return bt.forEachGrant(func(_ string, v []byte) error {
			var g storedGrant
			if err := json.Unmarshal(v, &g); err != nil {
				return err
			}
			grants = append(grants, g.Grant)
			return nil
		})
	})
	return keys, grants, err
}

// sortedIDs returns ids sorted, for deterministic batches.
func sortedIDs(m []string) []string {
	out := append([]string(nil), m...)
	sort.Strings(out)
	return out
}
