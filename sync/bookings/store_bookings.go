package bookings

import (
	"crypto/sha256"
	"fmt"
	"time"
)

// PutBooking stores a booking (and indexes its access token, if any).
func (s *Store) PutBooking(b Booking, token string) error {
	return s.eng.update(func(tx storeTx) error {
		if token != "" {
			h := sha256.Sum256([]byte(token))
			if err := tx.putToken(h[:], b.AssignmentID); err != nil {
				return err
			}
		}
		b, err := keepLive(tx, b) // store_live.go
		if err != nil {
			return err
		}
		return putRec(tx, tBookings, idKey(b.AssignmentID), b)
	})
}

// DeleteToken forgets an access token: its page answers 404 from now on.
func (s *Store) DeleteToken(token string) error {
	if token == "" {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	return s.eng.update(func(tx storeTx) error { return tx.deleteToken(h[:]) })
}

// Booking returns the booking of an assignment, false if there is none.
func (s *Store) Booking(assignmentID int64) (Booking, bool, error) {
	return get[Booking](s, tBookings, assignmentID)
}

// Bookings lists every booking by assignment id.
func (s *Store) Bookings() ([]Booking, error) { return list[Booking](s, tBookings) }

// BookingByToken finds the booking an access token belongs to. The token is
// looked up by its SHA-256, so the lookup's timing says nothing useful about
// the token, and the store holds no token that opens a page.
func (s *Store) BookingByToken(token string) (Booking, bool, error) {
	h := sha256.Sum256([]byte(token))
	var b Booking
	var ok bool
	err := s.eng.view(func(tx storeTx) error {
		id, have, err := tx.tokenBooking(h[:])
		if err != nil || !have {
			return err
		}
		b, ok, err = getRec[Booking](tx, tBookings, idKey(id))
		return err
	})
	return b, ok, err
}

// PutReservation stores a pending Prompt reservation.
func (s *Store) PutReservation(r Reservation) error {
	return putOne(s, tPrompts, idKey(r.AssignmentID), r)
}

// Reservation returns the pending reservation of an assignment.
func (s *Store) Reservation(assignmentID int64) (Reservation, bool, error) {
	return get[Reservation](s, tPrompts, assignmentID)
}

// DeleteReservation drops a reservation (booked, or the assignment is gone).
func (s *Store) DeleteReservation(assignmentID int64) error {
	// Looked up first: every booking made or ended asks, few have one, and
	// a write transaction is a commit (two fsyncs on bbolt) that also
	// holds up the webhook's intake and the other workers.
	var had bool
	if err := s.eng.view(func(tx storeTx) (err error) {
		_, had, err = tx.get(tPrompts, idKey(assignmentID))
		return err
	}); err != nil || !had {
		return err
	}
	return delOne(s, tPrompts, idKey(assignmentID))
}

// Reservations lists the pending reservations by assignment id.
func (s *Store) Reservations() ([]Reservation, error) { return list[Reservation](s, tPrompts) }

// ApproveReservation stores r (approved, with its edit) and queues the
// delivery that makes its booking, in one transaction: once it returns, the
// booking will be made, whatever happens to this process.
func (s *Store) ApproveReservation(r Reservation, now time.Time) (Delivery, error) {
	var d Delivery
	err := s.eng.update(func(tx storeTx) (err error) {
		if err := putRec(tx, tPrompts, idKey(r.AssignmentID), r); err != nil {
			return err
		}
		d, err = queueInternal(tx, EventCreateBooking, r.AssignmentID, r.VehicleID, now)
		return err
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("bridge store: approve reservation %d: %w", r.AssignmentID, err)
	}
	return d, nil
}
