package link

import (
	"sync"
	"time"
)

// State is what the link last heard from the cloud, for the admin socket's
// status: the worker writes it, anyone reads it. Times are the system
// clock's; zero means not since the link was made.
type State struct {
	// LastSync is when the box last applied the cloud's records, or was
	// told by a verified batch that it had them already.
	LastSync time.Time
	// LastAck is when the cloud last acknowledged events (a verified
	// EventAck whose acknowledgement the store took).
	LastAck time.Time
	// Refused is the last message from the cloud the box refused, as its
	// sync_refused event says it; RefusedAt is when.
	Refused   string
	RefusedAt time.Time
}

// syncState guards State between the worker and readers.
type syncState struct {
	mu sync.Mutex
	s  State
}

// update changes the state under its lock, then tells Options.Changed
// (the daemon's watchers show it).
func (l *Link) updateState(f func(*State)) {
	l.state.mu.Lock()
	f(&l.state.s)
	l.state.mu.Unlock()
	l.changed()
}

// State is a copy of what the link last heard from the cloud.
func (l *Link) State() State {
	l.state.mu.Lock()
	defer l.state.mu.Unlock()
	return l.state.s
}

func (l *Link) noteSynced() {
	now := time.Now()
	l.updateState(func(s *State) { s.LastSync = now })
}

func (l *Link) noteAcked() {
	now := time.Now()
	l.updateState(func(s *State) { s.LastAck = now })
}

func (l *Link) noteRefused(detail string) {
	now := time.Now()
	l.updateState(func(s *State) { s.Refused, s.RefusedAt = detail, now })
}
