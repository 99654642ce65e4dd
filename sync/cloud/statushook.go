package cloud

import (
	"time"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// OnStatus adds a hook called with each status a box sends, after it is
// stored (ReceiveStatus), with when the cloud received it. It runs on the
// goroutine that handled the message (any replica's, with several): keep
// it short, and keep what it writes in a store every replica shares.
func (c *Cloud) OnStatus(fn func(boxID string, st wire.Status, at time.Time)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statusHooks = append(c.statusHooks, fn)
}

// ReceiveStatus keeps a status a box sent (SetStatus) and then hands it to
// the OnStatus hooks: what Serve does with each status message.
func (c *Cloud) ReceiveStatus(boxID string, st wire.Status) error {
	if err := c.SetStatus(boxID, st); err != nil {
		return err
	}
	at := c.opts.Now()
	c.mu.Lock()
	hooks := c.statusHooks
	c.mu.Unlock()
	for _, fn := range hooks {
		fn(boxID, st, at)
	}
	return nil
}
