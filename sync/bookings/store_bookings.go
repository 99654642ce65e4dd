package bookings

import (
	"crypto/sha256"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PutBooking stores a booking (and indexes its access token, if any).
func (s *Store) PutBooking(b Booking, token string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if token != "" {
			h := sha256.Sum256([]byte(token))
			if err := tx.Bucket(bucketTokens).Put(h[:], id64(b.AssignmentID)); err != nil {
				return err
			}
		}
		return putJSON(tx.Bucket(bucketBookings), id64(b.AssignmentID), b)
	})
}

// DeleteToken forgets an access token: its page answers 404 from now on.
func (s *Store) DeleteToken(token string) error {
	if token == "" {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTokens).Delete(h[:]) })
}

// Booking returns the booking of an assignment, false if there is none.
func (s *Store) Booking(assignmentID int64) (Booking, bool, error) {
	return get[Booking](s, bucketBookings, assignmentID)
}

// Bookings lists every booking by assignment id.
func (s *Store) Bookings() ([]Booking, error) { return list[Booking](s, bucketBookings, "booking") }

// BookingByToken finds the booking an access token belongs to. The token is
// looked up by its SHA-256, so the lookup's timing says nothing useful about
// the token, and the file holds no token that opens a page.
func (s *Store) BookingByToken(token string) (Booking, bool, error) {
	h := sha256.Sum256([]byte(token))
	var b Booking
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		id := tx.Bucket(bucketTokens).Get(h[:])
		if id == nil {
			return nil
		}
		ok, err = getJSON(tx.Bucket(bucketBookings), id, &b)
		return err
	})
	return b, ok, err
}

// PutReservation stores a pending Prompt reservation.
func (s *Store) PutReservation(r Reservation) error {
	return s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketPrompts), id64(r.AssignmentID), r) })
}

// Reservation returns the pending reservation of an assignment.
func (s *Store) Reservation(assignmentID int64) (Reservation, bool, error) {
	return get[Reservation](s, bucketPrompts, assignmentID)
}

// DeleteReservation drops a reservation (booked, or the assignment is gone).
func (s *Store) DeleteReservation(assignmentID int64) error {
	// Looked up first: every booking made or ended asks, few have one, and
	// a write transaction is a commit (two fsyncs) that also holds up the
	// webhook's intake and the other workers.
	var had bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		had = tx.Bucket(bucketPrompts).Get(id64(assignmentID)) != nil
		return nil
	}); err != nil || !had {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPrompts).Delete(id64(assignmentID)) })
}

// Reservations lists the pending reservations by assignment id.
func (s *Store) Reservations() ([]Reservation, error) {
	return list[Reservation](s, bucketPrompts, "reservation")
}

// ApproveReservation stores r (approved, with its edit) and queues the
// delivery that makes its booking, in one transaction: once it returns, the
// booking will be made, whatever happens to this process.
func (s *Store) ApproveReservation(r Reservation, now time.Time) (Delivery, error) {
	var d Delivery
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketPrompts), id64(r.AssignmentID), r); err != nil {
			return err
		}
		d = internalDelivery(tx, EventCreateBooking, r.AssignmentID, r.VehicleID, now)
		if err := putJSON(tx.Bucket(bucketDeliveries), id64(d.ID), d); err != nil {
			return err
		}
		return tx.Bucket(bucketQueue).Put(id64(d.ID), nil)
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("bridge store: approve reservation %d: %w", r.AssignmentID, err)
	}
	return d, nil
}
