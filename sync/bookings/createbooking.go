package bookings

import (
	"context"
	"fmt"
	"time"
)

// CreateBooking makes the booking of a pending Prompt reservation, with the
// admin's edits, then goes on exactly as for an Automatic vehicle: grant,
// write-back, the driver told by the chosen method. The approval is stored
// and queued before any of it happens, so a crash half-way is finished by the
// worker, and a Fleetio or notifier failure is retried by it (the error says
// so); calling CreateBooking again for a booking already made returns it.
// The edited window stays until Fleetio's window of the assignment changes.
func (b *Integration) CreateBooking(ctx context.Context, assignmentID int64, e BookingEdit) (Booking, error) {
	if err := ValidContactMethod(e.ContactMethod); err != nil {
		return Booking{}, err
	}
	c, err := b.fleetio()
	if err != nil {
		return Booking{}, err
	}
	// Its requests' tokens (the contact, the read-back, the write-back,
	// the contact again) are taken before the lock: the intake of webhooks
	// must not wait on the budget behind it (see prepay).
	if ctx, err = b.prepay(ctx, c, 4); err != nil {
		return Booking{}, err
	}
	ctx, unlock, err := b.exclusive(ctx)
	if err != nil {
		return Booking{}, err
	}
	defer unlock()
	r, ok, err := b.o.Store.Reservation(assignmentID)
	if err != nil {
		return Booking{}, err
	}
	if !ok || r.Approved {
		bk, have, err := b.o.Store.Booking(assignmentID)
		if err != nil {
			return Booking{}, err
		}
		if have && bk.State == BookingActive && !bk.pending() {
			return bk, nil // made already: a retry
		}
		if !ok && !(have && bk.State == BookingActive) {
			return Booking{}, fmt.Errorf("create booking: assignment %d has no pending reservation: %w", assignmentID, ErrNotFound)
		}
		// Approved or made but not finished: finish it now.
		d, err := b.o.Store.AddInternalDelivery(EventCreateBooking, assignmentID, cmpOrID(r.VehicleID, bk.VehicleID), b.o.Now())
		if err != nil {
			return Booking{}, err
		}
		return b.createdBooking(ctx, assignmentID, d)
	}
	from, until, _ := e.apply(r.From, r.Until)
	if !until.IsZero() && !from.Before(until) {
		return Booking{}, fmt.Errorf("%w booking of assignment %d: from %s is not before until %s", ErrInvalid, assignmentID,
			from.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	if e.ContactMethod != "" {
		ct, err := b.getContact(ctx, c, r.ContactID)
		if err != nil {
			return Booking{}, fmt.Errorf("create booking of assignment %d: read contact %d: %w", assignmentID, r.ContactID, err)
		}
		if e.ContactMethod == ContactSMS && ct.Phone() == "" {
			return Booking{}, fmt.Errorf("%w contact method sms: contact %d has no phone number in Fleetio", ErrInvalid, r.ContactID)
		}
		if e.ContactMethod == ContactEmail && ct.Email == "" {
			return Booking{}, fmt.Errorf("%w contact method email: contact %d has no email address in Fleetio", ErrInvalid, r.ContactID)
		}
	}
	r.Approved, r.Edit, r.ContactMethod = true, &e, e.ContactMethod
	d, err := b.o.Store.ApproveReservation(r, b.o.Now())
	if err != nil {
		return Booking{}, err
	}
	b.log.Info("prompt reservation approved", "assignment", assignmentID, "edited", e.From != nil || e.Until != nil, "contact", e.ContactMethod)
	return b.createdBooking(ctx, assignmentID, d)
}

// createdBooking processes the delivery that makes a booking and returns it.
func (b *Integration) createdBooking(ctx context.Context, assignmentID int64, d Delivery) (Booking, error) {
	d, perr, err := b.processOne(ctx, d)
	if err != nil {
		return Booking{}, err
	}
	bk, have, err := b.o.Store.Booking(assignmentID)
	if err != nil {
		return Booking{}, err
	}
	switch {
	case perr != nil && d.State == DeliveryQueued:
		b.Wake()
		return bk, fmt.Errorf("create booking of assignment %d: not finished, the worker retries at %s: %w",
			assignmentID, d.NextAttempt.Format(time.RFC3339), perr)
	case perr != nil:
		return bk, fmt.Errorf("create booking of assignment %d: %w", assignmentID, perr)
	case !have || bk.State != BookingActive:
		return bk, fmt.Errorf("create booking of assignment %d: the assignment is gone, ended or its vehicle unlinked in Fleetio: %w",
			assignmentID, ErrNotFound)
	}
	return bk, nil
}

func cmpOrID(a, b int64) int64 {
	if a != 0 {
		return a
	}
	return b
}
