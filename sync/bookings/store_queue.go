package bookings

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// AddDelivery stores a new delivery and queues it, in one transaction.
// A delivery id already stored is a duplicate: nothing changes and added is
// false. Without connection settings it stores nothing: ErrNotConnected.
func (s *Store) AddDelivery(d Delivery) (added bool, err error) {
	if d.ID <= 0 {
		return false, fmt.Errorf("%w delivery id %d", ErrInvalid, d.ID)
	}
	d.State = DeliveryQueued
	raw, err := json.Marshal(d)
	if err != nil {
		return false, fmt.Errorf("bridge store: encode delivery %d: %w", d.ID, err)
	}
	err = s.eng.update(func(tx storeTx) (err error) {
		added = false
		// In the same transaction as the write: a webhook verified just
		// before a Disconnect forgot the settings must not land in the
		// queue Disconnect has just emptied.
		if _, ok, err := tx.connection(); err != nil {
			return err
		} else if !ok {
			return ErrNotConnected
		}
		added, err = tx.addDelivery(d, raw)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("bridge store: add delivery %d: %w", d.ID, err)
	}
	return added, nil
}

// Delivery returns a stored delivery.
func (s *Store) Delivery(id int64) (Delivery, error) {
	d, ok, err := get[Delivery](s, tDeliveries, id)
	if err == nil && !ok {
		err = fmt.Errorf("delivery %d: %w", id, ErrNotFound)
	}
	return d, err
}

// Queued returns the queued deliveries, oldest id first, and the earliest
// NextAttempt among those not due at now (zero if none).
func (s *Store) Queued(now time.Time) (due []Delivery, next time.Time, err error) {
	due, next, _, err = s.queuedBy(now, func(tx storeTx, fn func([]byte, bool) error) error {
		return tx.queued(func(doc []byte) error { return fn(doc, false) })
	})
	return due, next, err
}

// Claimable is Queued less the deliveries owner's claim would be refused
// for another owner's live claim on them or on their assignment (held
// says some were left out: look again soon, the claims end): what a
// replica's queue pass may try to claim; ClaimDelivery still decides.
func (s *Store) Claimable(owner string, now time.Time) (due []Delivery, next time.Time, held bool, err error) {
	return s.queuedBy(now, func(tx storeTx, fn func([]byte, bool) error) error { return tx.claimable(owner, now, fn) })
}

func (s *Store) queuedBy(now time.Time, read func(storeTx, func([]byte, bool) error) error) (due []Delivery, next time.Time, held bool, err error) {
	err = s.eng.view(func(tx storeTx) error {
		due, next, held = nil, time.Time{}, false
		return read(tx, func(raw []byte, h bool) error {
			if h {
				held = true
				return nil
			}
			var d Delivery
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("decode queued delivery: %w", err)
			}
			if d.NextAttempt.After(now) {
				if next.IsZero() || d.NextAttempt.Before(next) {
					next = d.NextAttempt
				}
				return nil
			}
			due = append(due, d)
			return nil
		})
	})
	return due, next, held, err
}

// QueueDepth is how many deliveries wait to be processed (0 if the store
// cannot be read: it is a figure for people and for tests).
func (s *Store) QueueDepth() (n int) {
	s.eng.view(func(tx storeTx) (err error) {
		n, err = tx.queueDepth()
		return err
	})
	return n
}

// UpdateDelivery stores d; a state other than queued takes it off the queue.
func (s *Store) UpdateDelivery(d Delivery) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("bridge store: encode delivery %d: %w", d.ID, err)
	}
	return s.eng.update(func(tx storeTx) error { return tx.putDelivery(d, raw) })
}

// ClaimDue claims for owner (a replica's name) up to max queued deliveries
// due at now that nobody holds a claim on, oldest id first, for lease: two
// claimers, in one process or (PostgreSQL) in several, never hold the same
// delivery. A claim ends when the delivery is stored again (UpdateDelivery:
// done, failed or queued for a later attempt) or when its lease runs out
// (the claimer died). The claims of a bbolt store live in its process.
func (s *Store) ClaimDue(owner string, now time.Time, lease time.Duration, max int) ([]Delivery, error) {
	if owner == "" || lease <= 0 || max <= 0 {
		return nil, fmt.Errorf("%w claim: owner %q, lease %s, max %d", ErrInvalid, owner, lease, max)
	}
	docs, err := s.eng.claimDue(owner, now, now.Add(lease), max)
	if err != nil {
		return nil, fmt.Errorf("bridge store: %w", err)
	}
	out := make([]Delivery, 0, len(docs))
	for _, raw := range docs {
		var d Delivery
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("bridge store: decode claimed delivery: %w", err)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Delivery) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// AddInternalDelivery queues a delivery the bridge makes itself, so that the
// worker reads assignment assignmentID of vehicle vehicleID back and acts on
// it, with the same retries and durability as Fleetio's. event says why.
func (s *Store) AddInternalDelivery(event string, assignmentID, vehicleID int64, now time.Time) (Delivery, error) {
	var d Delivery
	err := s.eng.update(func(tx storeTx) (err error) {
		d, err = queueInternal(tx, event, assignmentID, vehicleID, now)
		return err
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("bridge store: queue %s of assignment %d: %w", event, assignmentID, err)
	}
	return d, nil
}

// queueInternal makes and queues a delivery of the bridge's own in tx.
func queueInternal(tx storeTx, event string, assignmentID, vehicleID int64, now time.Time) (Delivery, error) {
	seq, err := tx.nextInternalSeq()
	if err != nil {
		return Delivery{}, err
	}
	id := int64(internalDeliveryBase + seq)
	body, _ := json.Marshal(map[string]any{"id": id, "event": event, "triggered_by": "smartbox-bridge",
		"payload": map[string]int64{"id": assignmentID, "vehicle_id": vehicleID}})
	d := Delivery{ID: id, Event: event, Body: body, ReceivedAt: now, State: DeliveryQueued}
	raw, err := json.Marshal(d)
	if err != nil {
		return Delivery{}, err
	}
	return d, tx.putDelivery(d, raw)
}

// DropQueue takes every queued delivery off the queue as failed with reason
// (a disconnect: they belong to the old connection) and deletes the pending
// reservations. It returns how many of each.
func (s *Store) DropQueue(reason string) (deliveries, reservations int, err error) {
	err = s.eng.update(func(tx storeTx) error {
		var queued []Delivery
		if err := tx.queued(func(raw []byte) error {
			var d Delivery
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("decode queued delivery: %w", err)
			}
			queued = append(queued, d)
			return nil
		}); err != nil {
			return err
		}
		for _, d := range queued {
			d.State, d.LastError = DeliveryFailed, reason
			raw, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if err := tx.putDelivery(d, raw); err != nil {
				return err
			}
		}
		deliveries = len(queued)
		reservations, err = tx.clear(tPrompts)
		return err
	})
	return deliveries, reservations, err
}
