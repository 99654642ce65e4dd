package cloud

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// MaxCommandTTL bounds how long a command stays good. A remote release
// captured off the wire must be worthless soon; a technician who needs a
// slot open tomorrow sends a new one tomorrow.
const MaxCommandTTL = 24 * time.Hour

// SetStatus keeps the box's last status (the retained message or its will).
func (c *Cloud) SetStatus(boxID string, st wire.Status) error {
	if st.Box != boxID {
		c.stats.wrongBox.Add(1)
		return fmt.Errorf("cloud: status of box %s: %w: it says box %q", boxID, wire.ErrWrongBox, st.Box)
	}
	v, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("cloud: status of box %s: encoding: %w", boxID, err)
	}
	return c.update("status", boxID, func(bt boxTx) error {
		m := bt.meta()
		m.Status = v
		return bt.setMeta(m)
	})
}

// Status returns the box's last status, and false if it never sent one.
func (c *Cloud) Status(boxID string) (st wire.Status, ok bool, err error) {
	err = c.view("status", boxID, func(bt boxTx) error {
		v := bt.meta().Status
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &st)
	})
	return st, ok, err
}

// commandRecord is a command sent and, once the box answered, its result.
type commandRecord struct {
	Command wire.Command        `json:"command"`
	Result  *wire.CommandResult `json:"result,omitempty"`
}

// Command makes a signed command for a box: kind wire.CommandReleaseSlot
// (slot >= 1), wire.CommandRestoreKeypad (no slot: the keypad's guess
// budget back) or wire.CommandResync. For the first two by and reason say
// who and why, for the audit trail (each at most wire.MaxCommandText
// bytes). It is good for ttl (at most MaxCommandTTL). The command is kept
// so its result can be matched (CommandResult), and, while Serve runs,
// published to the box.
func (c *Cloud) Command(boxID, kind string, slot int, by, reason string, ttl time.Duration) ([]byte, wire.Command, error) {
	fail := func(format string, args ...any) ([]byte, wire.Command, error) {
		return nil, wire.Command{}, fmt.Errorf("cloud: command for box %s: "+format, append([]any{boxID}, args...)...)
	}
	switch kind {
	case wire.CommandReleaseSlot:
		if slot < 1 {
			return fail("release_slot needs a slot >= 1, got %d", slot)
		}
	case wire.CommandRestoreKeypad:
		if slot != 0 {
			return fail("restore_keypad takes no slot, got %d", slot)
		}
	case wire.CommandResync:
	default:
		return fail("kind %q is not %q, %q or %q", kind, wire.CommandReleaseSlot, wire.CommandRestoreKeypad, wire.CommandResync)
	}
	if err := wire.CheckCommandText(kind, by, reason); err != nil {
		return fail("%w", err)
	}
	if ttl <= 0 || ttl > MaxCommandTTL {
		return fail("ttl %s is not in (0, %s]", ttl, MaxCommandTTL)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, wire.Command{}, err
	}
	now := c.opts.Now().UTC()
	cmd := wire.Command{V: wire.Version, Box: boxID, ID: hex.EncodeToString(id[:]), Kind: kind, Slot: slot,
		By: by, Reason: reason, IssuedAt: now, Expires: now.Add(ttl)}
	pub, err := c.boxKey(boxID)
	if err != nil {
		return nil, cmd, fmt.Errorf("cloud: command for box %s: %w", boxID, err)
	}
	msg, err := c.opts.Signer.Sign(wire.KindCommand, boxID, pub, cmd)
	if err != nil {
		return nil, cmd, fmt.Errorf("cloud: command for box %s: %w", boxID, err)
	}
	v, err := json.Marshal(commandRecord{Command: cmd})
	if err != nil {
		return nil, cmd, err
	}
	if err := c.update("command", boxID, func(bt boxTx) error { return bt.putCommand(cmd.ID, v) }); err != nil {
		return nil, cmd, err
	}
	c.log.Info("command issued", "box", boxID, "id", cmd.ID, "kind", kind, "slot", slot, "by", by,
		"reason", reason, "expires", cmd.Expires)
	c.publishCommand(boxID, msg)
	return msg, cmd, nil
}

// SetCommandResult records a box's answer to a command it was sent.
func (c *Cloud) SetCommandResult(boxID string, res wire.CommandResult) error {
	if res.Box != boxID {
		c.stats.wrongBox.Add(1)
		return fmt.Errorf("cloud: command result of box %s: %w: it says box %q", boxID, wire.ErrWrongBox, res.Box)
	}
	return c.update("command result", boxID, func(bt boxTx) error {
		v, err := bt.command(res.ID)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("%w: box %s answers command %q, which the cloud never sent it", ErrNotFound, boxID, res.ID)
		}
		var rec commandRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("command %s: stored record: %w", res.ID, err)
		}
		rec.Result = &res
		nv, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return bt.putCommand(res.ID, nv)
	})
}

// CommandResult returns the box's answer to command id, false if none yet.
func (c *Cloud) CommandResult(boxID, id string) (res wire.CommandResult, ok bool, err error) {
	err = c.view("command result", boxID, func(bt boxTx) error {
		v, err := bt.command(id)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("%w: command %q of box %s", ErrNotFound, id, boxID)
		}
		var rec commandRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("command %s: stored record: %w", id, err)
		}
		if rec.Result != nil {
			res, ok = *rec.Result, true
		}
		return nil
	})
	return res, ok, err
}
