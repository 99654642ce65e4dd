// Package broadcast is the one change signal the commands' parts share
// (smartboxd's socket watchers, the simulator's depot): a channel closed and
// replaced at each Notify, so that any number of waiters wake at once and a
// notifier never blocks. Waiters read the state itself after waking: the
// signal carries nothing, and several Notify calls between two looks are
// one wake-up.
package broadcast

import "sync"

// Signal is a broadcast. The zero value is ready.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns a channel closed at the next Notify.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes every current waiter.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
