package link

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// onCommand runs a signed command once and answers it.
func (l *Link) onCommand(payload []byte) {
	var c wire.Command
	if err := l.verifier.Open(payload, wire.KindCommand, l.opts.BoxID, &c); err != nil {
		l.refuse("command", err)
		return
	}
	if !box.ValidID(c.ID) {
		l.refuse("command", fmt.Errorf("%w: command id %q", wire.ErrMalformed, c.ID))
		return
	}
	// Remember the id before running: a box that loses power mid-command
	// does not run it again when the broker redelivers it. For a slot
	// release, not opening is the safe side of that choice; for a keypad
	// restore, not giving a guesser a second budget is.
	seen, prev, err := l.st.BeginCommand(c.ID)
	if err != nil {
		l.log.Error("sync: recording command", "id", c.ID, "err", err)
		return
	}
	if seen {
		l.log.Info("sync: command already run", "id", c.ID, "kind", c.Kind)
		if prev != nil {
			l.publish(wire.LeafCommandResult, false, prev) // the answer may have been lost
		}
		return
	}
	res := wire.CommandResult{V: wire.Version, Box: l.opts.BoxID, ID: c.ID, OK: true}
	if err := l.runCommand(c); err != nil {
		res.OK, res.Error = false, err.Error()
		l.log.Warn("sync: command refused", "id", c.ID, "kind", c.Kind, "err", err)
	} else {
		l.log.Info("sync: command run", "id", c.ID, "kind", c.Kind, "slot", c.Slot, "by", c.By)
	}
	res.At = l.opts.Now().UTC()
	msg, err := json.Marshal(res)
	if err != nil {
		return
	}
	if err := l.st.FinishCommand(c.ID, msg); err != nil {
		l.log.Error("sync: recording command result", "id", c.ID, "err", err)
	}
	l.publish(wire.LeafCommandResult, false, msg)
}

// errRefused marks a command refused by the box's rules (not a failure to
// run it); those are recorded as sync_refused events.
var errRefused = errors.New("refused")

func (l *Link) runCommand(c wire.Command) error {
	now, trusted := l.opts.Now(), l.opts.ClockTrusted()
	expired := trusted && !c.Expires.IsZero() && !now.Before(c.Expires)
	var err error
	switch c.Kind {
	case wire.CommandReleaseSlot, wire.CommandRestoreKeypad:
		// The cloud checks by and reason too; the box does not take a
		// signer's word for what goes into its events.
		textErr := wire.CheckCommandText(c.Kind, c.By, c.Reason)
		switch {
		case !trusted:
			// Without a trusted clock the box cannot tell a fresh command
			// from one captured last year and replayed.
			err = fmt.Errorf("%w: the box clock is not trusted, so the command's expiry cannot be checked", errRefused)
		case c.Expires.IsZero():
			err = fmt.Errorf("%w: %s without an expiry", errRefused, c.Kind)
		case expired:
			err = fmt.Errorf("%w: expired at %s", errRefused, c.Expires.UTC().Format("2006-01-02T15:04:05Z"))
		case textErr != nil:
			err = fmt.Errorf("%w: %v", errRefused, textErr)
		case l.opts.Box == nil:
			return errors.New("this box takes no remote command (no controller)")
		case c.Kind == wire.CommandRestoreKeypad:
			return l.opts.Box.RestoreKeypad(c.By, c.Reason, c.ID)
		default:
			return l.opts.Box.RemoteRelease(c.Slot, c.By, c.Reason, c.ID)
		}
	case wire.CommandResync:
		if expired {
			err = fmt.Errorf("%w: expired at %s", errRefused, c.Expires.UTC().Format("2006-01-02T15:04:05Z"))
			break
		}
		// Harmless whatever the clock says: at worst a snapshot more. The
		// snapshot is taken even at the revision the box holds: a resync is
		// for a box whose records are in doubt.
		l.w.resync = true
		l.sendSync("command", true, true)
		return nil
	default:
		err = fmt.Errorf("%w: unknown command kind %q", errRefused, c.Kind)
	}
	detail := fmt.Sprintf("command %s (%s, by %s): %v", c.ID, c.Kind, c.By, err)
	l.noteRefused(detail)
	if ok, _ := l.refusals.allow(time.Now()); ok {
		l.record(box.Event{Type: box.EventSyncRefused, Detail: detail})
	}
	return err
}
