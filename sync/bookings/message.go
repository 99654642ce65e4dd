package bookings

import (
	"context"
	"errors"
	"fmt"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

func (b *Integration) notify(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment, method, kind string, info bookingInfo, pin string) error {
	if b.o.Notifier == nil {
		return nil
	}
	to := Recipient{ContactID: a.ContactID, Name: contactName(a), Method: method}
	if a.Contact != nil {
		to.Email = a.Contact.Email
	}
	// The assignment's nested contact has no phone: ask for the contact.
	if ct, err := b.getContact(ctx, c, a.ContactID); err == nil {
		to.Email = cmpOr(to.Email, ct.Email)
		to.Phone = ct.Phone()
	} else if !errors.Is(err, fleetio.ErrNotFound) {
		return fmt.Errorf("read contact %d: %w", a.ContactID, err)
	}
	data := info.data()
	data["driver"] = to.Name
	if pin != "" {
		data["pin"] = pin
	}
	if err := b.notified(b.o.Notifier.Notify(ctx, to, kind, data)); err != nil {
		return fmt.Errorf("notify driver of assignment %d: %w", a.ID, err)
	}
	return nil
}

func (b *Integration) notifyCancelled(ctx context.Context, c *fleetio.Client, bk Booking) error {
	if b.o.Notifier == nil {
		return nil
	}
	to := Recipient{ContactID: bk.ContactID, Name: bk.ContactName, Method: bk.ContactMethod}
	ct, err := b.getContact(ctx, c, bk.ContactID)
	switch {
	case errors.Is(err, fleetio.ErrNotFound):
		b.log.Warn("booking cancelled: driver's contact gone, not told", "assignment", bk.AssignmentID)
		return nil
	case err != nil:
		return fmt.Errorf("read contact %d: %w", bk.ContactID, err)
	}
	to.Email, to.Phone = ct.Email, ct.Phone()
	info, err := b.describe(bk)
	if err != nil {
		return err
	}
	data := info.data()
	delete(data, "instructions")
	data["driver"] = to.Name
	if err := b.notified(b.o.Notifier.Notify(ctx, to, NotifyBookingCancelled, data)); err != nil {
		return fmt.Errorf("notify driver of cancelled assignment %d: %w", bk.AssignmentID, err)
	}
	return nil
}
