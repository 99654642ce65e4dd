package box

import (
	"errors"
	"fmt"
)

// ReleaseLocal releases a slot for a person at the box (a technician on the
// daemon's admin socket): who (by, with the socket peer's uid) and why are
// recorded in one slot_released_locally event, committed before the coil
// moves. The same rules as any release hold: one sequence per slot (a slot
// already released is ErrSlotBusy), the release time and the slots' hard
// maximum, and the relock when the key leaves or is seated. A slot that
// relocks with nothing moved is not held back by the cool-down (a person
// the box trusts, as for a command from the cloud).
//
// by and reason are the caller's to check (bounded, printable): the
// controller records them as given.
func (c *Controller) ReleaseLocal(slot int, by string, uid int, reason string) error {
	detail := fmt.Sprintf("by %s (uid %d): %s", by, uid, reason)
	if uid < 0 {
		detail = fmt.Sprintf("by %s (uid unknown): %s", by, reason)
	}
	res := make(chan error, 1)
	c.post(func() {
		res <- c.releaseFor(slot, releasedLocal, Event{Type: EventSlotReleasedLocally, Purpose: PurposeLocal, Detail: detail})
	})
	select {
	case err := <-res:
		return err
	case <-c.done:
		return errors.New("box is stopping")
	}
}
