package bookings

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// CheckOverdue looks at every key a booking took out and has not returned:
// once the booking's window is over (its Until passed, or the booking ended
// early), it records a key_overdue event on the booking, tells the driver and
// the admin, and counts it. Each booking is raised once; a notification that
// failed is tried again on the next check. A key returned later is attached
// to the booking; the alert is cleared (OverdueKeys no longer lists it) only
// by a return that proves the key back: a remote one, or a fob return whose
// slot sensor saw the key seated for Options.ReturnSettle. Any other return
// leaves the key out and the alert raised, and the admin is told
// (return_unconfirmed, alerts.go); so does a removal from the key's locked
// slot soon after a proven return (removal.go), which raises a cleared
// alert again.
//
// "Still out" is what the box has reported. Options.OverdueGrace gives the
// driver some minutes past the end; a box whose last status says offline is
// not judged until it is back (its outbox may hold the return).
func (b *Integration) CheckOverdue(ctx context.Context) (int, error) {
	held, err := b.o.Store.heldKeys()
	if err != nil {
		return 0, err
	}
	now := b.o.Now()
	raised := 0
	var errs []error
	for _, h := range held {
		if err := ctx.Err(); err != nil {
			return raised, err
		}
		bk, ok, err := b.o.Store.Booking(h.AssignmentID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		end := bookingEnd(bk)
		if end.IsZero() || now.Before(end.Add(b.o.OverdueGrace)) {
			continue
		}
		if st, ok, err := b.o.Cloud.Status(h.BoxID); err == nil && ok && !st.Online {
			// The box is offline: it may hold the key's return in its
			// outbox. Its events come first when it is back; the next
			// check decides.
			continue
		}
		f, had, err := b.o.Store.overdueFlagOf(bk.AssignmentID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !had {
			f = overdueFlag{RaisedAt: now, BoxID: h.BoxID, KeyID: h.KeyID}
			ev := BookingEvent{AssignmentID: bk.AssignmentID, Time: now, Type: EventKeyOverdue, KeyID: h.KeyID,
				Detail: fmt.Sprintf("key %s not returned to box %s by %s", h.KeyID, h.BoxID, end.Format(time.RFC3339)),
				Via:    viaBridge}
			ok, err := b.o.Store.raiseOverdue(bk.AssignmentID, f, ev)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				raised++
				b.stats.overdue.Add(1)
				b.log.Warn("key overdue", "assignment", bk.AssignmentID, "box", h.BoxID, "key", h.KeyID, "due", end)
			}
		}
		if f.DriverNotified && f.AdminNotified {
			continue
		}
		nerr := b.notifyOverdue(ctx, bk, end, &f)
		if err := b.o.Store.putOverdueFlag(bk.AssignmentID, f); err != nil {
			errs = append(errs, err)
		}
		if nerr != nil {
			errs = append(errs, nerr)
		}
	}
	return raised, errors.Join(errs...)
}

// notifyOverdue tells whoever f says has not been told yet, and marks them.
func (b *Integration) notifyOverdue(ctx context.Context, bk Booking, end time.Time, f *overdueFlag) error {
	if b.o.Notifier == nil {
		f.DriverNotified, f.AdminNotified = true, true
		return nil
	}
	info, err := b.describe(bk)
	if err != nil {
		return fmt.Errorf("overdue key of booking %d: %w", bk.AssignmentID, err)
	}
	c, cerr := b.fleetio()
	vehicle := cmpOr(bk.VehicleName, fmt.Sprintf("vehicle %d", bk.VehicleID))
	if cerr == nil && bk.VehicleName == "" { // older bookings kept no name
		// The vehicle's name is for people; without it the message still
		// says which key.
		if v, err := c.GetVehicle(ctx, bk.VehicleID); b.fleetioErr(err) == nil && v.Name != "" {
			vehicle = v.Name
		}
	}
	data := func(driver string) map[string]any {
		return map[string]any{notify.DataVehicle: vehicle, notify.DataBox: info.Box, notify.DataLocation: info.Location,
			notify.DataKey: info.Key, dataSlot: strconv.Itoa(info.Slot), notify.DataStart: b.when(bk.From),
			notify.DataEnd: b.until(end), notify.DataDriver: driver, dataAssignment: strconv.FormatInt(bk.AssignmentID, 10)}
	}
	var errs []error
	if !f.DriverNotified {
		to, err := b.overdueDriver(ctx, c, cerr, bk)
		switch {
		case errors.Is(err, ErrNotConnected), errors.Is(err, fleetio.ErrNotFound):
			b.log.Warn("key overdue: driver cannot be reached, not told", "assignment", bk.AssignmentID, "err", err)
			f.DriverNotified = true
		case err != nil:
			errs = append(errs, err)
		default:
			if err := b.send(ctx, to, notify.Method(bk.ContactMethod), notify.KindKeyOverdue, data(to.Name)); err != nil {
				errs = append(errs, fmt.Errorf("notify driver of overdue key, booking %d: %w", bk.AssignmentID, err))
			} else {
				f.DriverNotified = true
			}
		}
	}
	if !f.AdminNotified {
		if b.o.Admin.Email == "" && b.o.Admin.Phone == "" {
			f.AdminNotified = true // no admin configured
		} else if err := b.send(ctx, b.o.Admin, b.o.AdminMethod, notify.KindKeyOverdue, data(bk.ContactName)); err != nil {
			errs = append(errs, fmt.Errorf("notify admin of overdue key, booking %d: %w", bk.AssignmentID, err))
		} else {
			f.AdminNotified = true
		}
	}
	return errors.Join(errs...)
}

// overdueDriver reads the driver's contact details from Fleetio (the
// booking keeps only the name).
func (b *Integration) overdueDriver(ctx context.Context, c *fleetio.Client, cerr error, bk Booking) (notify.Recipient, error) {
	if cerr != nil {
		return notify.Recipient{}, cerr
	}
	ct, err := b.getContact(ctx, c, bk.ContactID)
	if err != nil {
		return notify.Recipient{}, fmt.Errorf("read contact %d: %w", bk.ContactID, err)
	}
	return notify.Recipient{Name: cmpOr(bk.ContactName, ct.Name), Email: ct.Email, Phone: ct.Phone()}, nil
}
