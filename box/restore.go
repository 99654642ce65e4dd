package box

import (
	"errors"
	"fmt"
	"time"
)

// RestoreKeypad gives the keypad its whole guess budget back, on a signed
// restore_keypad command from the cloud (an admin who knows the guessing
// has stopped, or a site whose drivers mistype a lot): a keypad closed by
// a spent budget checks codes again at once. The tarpit's count is kept,
// so a guesser still waits out its waits. Who (by) and why (reason) are
// recorded with the command id in one keypad_restored event. Each restore
// gives a guesser a fresh budget too: the budget's bound is per restore.
func (c *Controller) RestoreKeypad(by, reason, commandID string) error {
	res := make(chan error, 1)
	c.post(func() { res <- c.restoreKeypad(by, reason, commandID) })
	select {
	case err := <-res:
		return err
	case <-c.done:
		return errors.New("box is stopping")
	}
}

func (c *Controller) restoreKeypad(by, reason, commandID string) error {
	now := c.clock.Now()
	lo := c.lockoutNow(now)
	spent := lo.Spent
	lo.Spent, lo.Refilled = 0, time.Time{}
	c.lockout, c.lockoutPending = lo, true
	c.log.Info("keypad restored", "by", by, "command", commandID, "spent", spent)
	ev := c.event(now, Event{Type: EventKeypadRestored, Count: spent, Failures: lo.Failures,
		Detail: fmt.Sprintf("command %s by %s: %s", commandID, by, reason)})
	if err := c.commit(Change{Events: []Event{ev}}); err != nil {
		// The budget is back in memory all the same (a restore is the
		// admin's call), and written with the next commit that works.
		return fmt.Errorf("recording the restore: %w", err)
	}
	return nil
}
