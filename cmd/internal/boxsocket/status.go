package boxsocket

import (
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/store"
)

// FillFromStore sets the Status fields the store keeps (revision, outbox
// depth, last seq, the keypad's lockout as of now): one reading for the
// daemon's answer and for smartboxctl's look at a stopped box's store.
func (st *Status) FillFromStore(s *store.Store, now time.Time) error {
	var err error
	if st.Revision, err = s.Revision(); err != nil {
		return fmt.Errorf("reading the revision: %w", err)
	}
	if st.Outbox, err = s.OutboxDepth(); err != nil {
		return fmt.Errorf("reading the outbox depth: %w", err)
	}
	if st.LastSeq, err = s.LastSeq(); err != nil {
		return fmt.Errorf("reading the last sequence number: %w", err)
	}
	// The lockout as the store keeps it (the controller writes it with
	// every commit that changes it).
	lo, err := s.Lockout()
	if err != nil {
		return fmt.Errorf("reading the lockout: %w", err)
	}
	st.Failures = lo.Failures
	st.LockoutUntil = time.Time{}
	if now.Before(lo.Until) {
		st.LockoutUntil = lo.Until
	}
	return nil
}
