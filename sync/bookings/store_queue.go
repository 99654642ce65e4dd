package bookings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AddDelivery stores a new delivery and queues it, in one transaction.
// A delivery id already stored is a duplicate: nothing changes and added is
// false. Without connection settings it stores nothing: ErrNotConnected.
func (s *Store) AddDelivery(d Delivery) (added bool, err error) {
	if d.ID <= 0 {
		return false, fmt.Errorf("%w delivery id %d", ErrInvalid, d.ID)
	}
	d.State = DeliveryQueued
	err = s.db.Update(func(tx *bolt.Tx) error {
		// In the same transaction as the write: a webhook verified just
		// before a Disconnect forgot the settings must not land in the
		// queue Disconnect has just emptied.
		if tx.Bucket(bucketSettings).Get([]byte("connection")) == nil {
			return ErrNotConnected
		}
		k := id64(d.ID)
		if tx.Bucket(bucketDeliveries).Get(k) != nil {
			return nil
		}
		added = true
		if err := putJSON(tx.Bucket(bucketDeliveries), k, d); err != nil {
			return err
		}
		return tx.Bucket(bucketQueue).Put(k, nil)
	})
	if err != nil {
		return false, fmt.Errorf("bridge store: add delivery %d: %w", d.ID, err)
	}
	return added, nil
}

// Delivery returns a stored delivery.
func (s *Store) Delivery(id int64) (Delivery, error) {
	var d Delivery
	err := s.db.View(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketDeliveries), id64(id), &d)
		if err == nil && !ok {
			err = fmt.Errorf("delivery %d: %w", id, ErrNotFound)
		}
		return err
	})
	return d, err
}

// Queued returns the queued deliveries, oldest id first, and the earliest
// NextAttempt among those not due at now (zero if none).
func (s *Store) Queued(now time.Time) (due []Delivery, next time.Time, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		ds := tx.Bucket(bucketDeliveries)
		return tx.Bucket(bucketQueue).ForEach(func(k, _ []byte) error {
			var d Delivery
			ok, err := getJSON(ds, k, &d)
			if err != nil || !ok {
				return err
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
	return due, next, err
}

// QueueDepth is how many deliveries wait to be processed.
func (s *Store) QueueDepth() (n int) {
	s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketQueue).Stats().KeyN
		return nil
	})
	return n
}

// UpdateDelivery stores d; a state other than queued takes it off the queue.
func (s *Store) UpdateDelivery(d Delivery) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		k := id64(d.ID)
		if err := putJSON(tx.Bucket(bucketDeliveries), k, d); err != nil {
			return err
		}
		if d.State == DeliveryQueued {
			return tx.Bucket(bucketQueue).Put(k, nil)
		}
		return tx.Bucket(bucketQueue).Delete(k)
	})
}

// AddInternalDelivery queues a delivery the bridge makes itself, so that the
// worker reads assignment assignmentID of vehicle vehicleID back and acts on
// it, with the same retries and durability as Fleetio's. event says why.
func (s *Store) AddInternalDelivery(event string, assignmentID, vehicleID int64, now time.Time) (Delivery, error) {
	var d Delivery
	err := s.db.Update(func(tx *bolt.Tx) error {
		d = internalDelivery(tx, event, assignmentID, vehicleID, now)
		if err := putJSON(tx.Bucket(bucketDeliveries), id64(d.ID), d); err != nil {
			return err
		}
		return tx.Bucket(bucketQueue).Put(id64(d.ID), nil)
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("bridge store: queue %s of assignment %d: %w", event, assignmentID, err)
	}
	return d, nil
}

func internalDelivery(tx *bolt.Tx, event string, assignmentID, vehicleID int64, now time.Time) Delivery {
	seq, _ := tx.Bucket(bucketDeliveries).NextSequence() // fails only on a read-only tx
	id := int64(internalDeliveryBase + seq)
	body, _ := json.Marshal(map[string]any{"id": id, "event": event, "triggered_by": "smartbox-bridge",
		"payload": map[string]int64{"id": assignmentID, "vehicle_id": vehicleID}})
	return Delivery{ID: id, Event: event, Body: body, ReceivedAt: now, State: DeliveryQueued}
}

// DropQueue takes every queued delivery off the queue as failed with reason
// (a disconnect: they belong to the old connection) and deletes the pending
// reservations. It returns how many of each.
func (s *Store) DropQueue(reason string) (deliveries, reservations int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		ds, q := tx.Bucket(bucketDeliveries), tx.Bucket(bucketQueue)
		var ids [][]byte
		q.ForEach(func(k, _ []byte) error { ids = append(ids, bytes.Clone(k)); return nil })
		for _, k := range ids {
			var d Delivery
			if ok, err := getJSON(ds, k, &d); err != nil {
				return err
			} else if ok {
				d.State, d.LastError = DeliveryFailed, reason
				if err := putJSON(ds, k, d); err != nil {
					return err
				}
			}
			if err := q.Delete(k); err != nil {
				return err
			}
		}
		deliveries = len(ids)
		ps := tx.Bucket(bucketPrompts)
		var rs [][]byte
		ps.ForEach(func(k, _ []byte) error { rs = append(rs, bytes.Clone(k)); return nil })
		for _, k := range rs {
			if err := ps.Delete(k); err != nil {
				return err
			}
		}
		reservations = len(rs)
		return nil
	})
	return deliveries, reservations, err
}
