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

// Messages: what the integration tells people, built as sync/notify's
// Message (the recipient, the kind that picks the template, the contact
// method, the data in notify's Data* keys) and handed to Options.Notifier.

// Data keys the integration adds to notify's: a template may read them with
// index (the default ones do not).
const (
	dataSlot       = "slot"       // the key's slot number in the box
	dataAssignment = "assignment" // the Fleetio assignment id; with Options.AdminLink, also DataAdminLink
)

// openEnded stands in for the end of a booking without one: the templates
// say "until {{when .end}}".
const openEnded = "further notice"

// send tells one person: the message of kind with data, by method ("":
// email when to has an address, else SMS). It fills what every template
// reads (the end, the time zone, the admin link) and counts the outcome.
func (b *Integration) send(ctx context.Context, to notify.Recipient, method notify.Method, kind notify.Kind, data map[string]any) error {
	if id, ok := data[dataAssignment].(string); ok && b.o.AdminLink != nil {
		data[notify.DataAdminLink] = b.o.AdminLink(id)
	}
	if _, ok := data[notify.DataEnd]; !ok {
		data[notify.DataEnd] = openEnded
	}
	// The templates read .time_zone; "" with the integration's text times
	// shows them as given.
	data[notify.DataTimeZone] = ""
	if b.o.Zone != nil {
		data[notify.DataTimeZone] = b.o.Zone.String()
	}
	return b.notified(b.o.Notifier.Notify(ctx, notify.Message{To: to, Kind: kind, Method: method, Data: data}))
}

// when is a time as the templates get it. Without Options.Zone it is the
// text fmtTime makes (the offset Fleetio sent, which is the account's);
// with one it is that text read back as a time, which notify's "when" shows
// in the zone (to the minute, as the text has it). A zero time is "".
func (b *Integration) when(t time.Time) any {
	s := fmtTime(t)
	if b.o.Zone == nil {
		return s
	}
	if p, err := time.Parse(timeLayout, s); err == nil {
		return p
	}
	return s
}

// until is the end of a booking window for the templates: open-ended when
// it has none.
func (b *Integration) until(t time.Time) any {
	if t.IsZero() {
		return openEnded
	}
	return b.when(t)
}

// bookingData is what a driver's message says of their booking.
func (b *Integration) bookingData(i bookingInfo) map[string]any {
	data := map[string]any{notify.DataVehicle: i.Vehicle, notify.DataBox: i.Box, notify.DataLocation: i.Location,
		notify.DataKey: i.Key, dataSlot: strconv.Itoa(i.Slot), notify.DataStart: b.when(i.From), notify.DataEnd: b.until(i.Until),
		notify.DataInstructions: i.instructions()}
	if i.Link != "" {
		data[notify.DataAccessLink] = i.Link
	}
	return data
}

func (b *Integration) tellDriver(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment, method string, kind notify.Kind, info bookingInfo, pin string) error {
	if b.o.Notifier == nil {
		return nil
	}
	to := notify.Recipient{Name: contactName(a)}
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
	data := b.bookingData(info)
	data[notify.DataDriver] = to.Name
	if pin != "" {
		data[notify.DataPIN] = pin
	}
	if err := b.send(ctx, to, notify.Method(method), kind, data); err != nil {
		return fmt.Errorf("notify driver of assignment %d: %w", a.ID, err)
	}
	return nil
}

func (b *Integration) tellCancelled(ctx context.Context, c *fleetio.Client, bk Booking) error {
	if b.o.Notifier == nil {
		return nil
	}
	to := notify.Recipient{Name: bk.ContactName}
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
	data := b.bookingData(info)
	delete(data, notify.DataInstructions)
	data[notify.DataDriver] = to.Name
	if err := b.send(ctx, to, notify.Method(bk.ContactMethod), notify.KindBookingCancelled, data); err != nil {
		return fmt.Errorf("notify driver of cancelled assignment %d: %w", bk.AssignmentID, err)
	}
	return nil
}
