package bookings

import (
	"fmt"
	"time"
)

// The queue's claims in the store, so that replicas on one PostgreSQL
// database process each delivery once and an assignment's deliveries one
// at a time, in order (see queue.go). A claim has an owner (the replica's
// name, Options.Replica) and a lease: the owner renews it while it works
// on the delivery; storing the delivery (UpdateDelivery) ends it; a
// replica that dies leaves it to lapse at the end of its lease.

// ClaimDelivery claims queued delivery id for owner until now+lease, if it
// is due at now, nobody holds a live claim on it, no other delivery of its
// assignment is claimed (by anyone) and none of a lower id is queued and
// due. False: not now (another replica has it or its assignment, or it is
// processed, or not due).
func (s *Store) ClaimDelivery(owner string, d Delivery, now time.Time, lease time.Duration) (bool, error) {
	if owner == "" || lease <= 0 {
		return false, fmt.Errorf("%w claim: owner %q, lease %s", ErrInvalid, owner, lease)
	}
	ok, err := s.eng.claim(owner, d.ID, deliveryAssignment(d), now, now.Add(lease))
	if err != nil {
		return false, fmt.Errorf("bridge store: %w", err)
	}
	return ok, nil
}

// RenewClaims moves owner's claims on ids (those still queued) to end at
// until.
func (s *Store) RenewClaims(owner string, ids []int64, until time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.eng.renewClaims(owner, ids, until); err != nil {
		return fmt.Errorf("bridge store: %w", err)
	}
	return nil
}

// ReleaseClaims ends owner's claims on ids, or all of owner's with ids
// nil, so that another replica may take the deliveries at once; it returns
// how many it ended.
func (s *Store) ReleaseClaims(owner string, ids []int64) (int, error) {
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	n, err := s.eng.releaseClaims(owner, ids)
	if err != nil {
		return 0, fmt.Errorf("bridge store: %w", err)
	}
	return n, nil
}

// Shared reports whether the store is one several processes share
// (PostgreSQL): the queue claims in it, and the integration's locks are
// the database's.
func (s *Store) Shared() bool { return s.eng.shared() }
