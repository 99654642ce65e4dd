package fleetiotest

import "sync"

// Changed returns a channel closed at the next change of the fake's records
// (a vehicle, contact or user added, a custom field defined, an assignment
// created, updated, deleted or PATCHed through the API) or of its delivery
// log (a delivery made, an attempt made, a delivery given up). Call it again
// for the change after that. The simulator's page re-renders on it instead of
// polling; a change between two calls is not lost as long as the caller reads
// the state after taking the channel.
func (s *Server) Changed() <-chan struct{} { return s.changes.wait() }

// changes hands out one channel per round of waiters and closes it at the
// next change. It has its own lock because changes are signalled from under
// both the record lock (Server.mu) and the delivery lock (deliverer.mu).
type changes struct {
	mu sync.Mutex
	ch chan struct{} // nil while nobody waits
}

func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changes) signal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}
