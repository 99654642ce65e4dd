package bookings

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/internal/retry"
)

// pollInterval bounds how long the worker sleeps with nothing due: a
// safety net should a wake-up be missed (a delivery stored by another path).
const pollInterval = time.Minute

// errPermanent marks a delivery that will never succeed as it is.
var errPermanent = errors.New("permanent")

// processOne processes one delivery and records the outcome: done, failed
// for good, or queued again with a back-off. perr is the processing error,
// err a failure to record it. b.work must be held (shared by a worker,
// which has claimed the delivery and its assignment; or exclusively).
func (b *Integration) processOne(ctx context.Context, d Delivery) (_ Delivery, perr, err error) {
	perr = b.process(ctx, d)
	d.Attempts++
	log := b.log.With("delivery", d.ID, "event", d.Event, "attempt", d.Attempts)
	switch {
	case perr == nil:
		d.State, d.LastError, d.NextAttempt = DeliveryDone, "", time.Time{}
		log.Info("delivery processed")
	case permanent(perr) || d.Attempts >= b.o.MaxAttempts:
		d.State, d.LastError = DeliveryFailed, perr.Error()
		log.Error("delivery failed for good", "err", perr)
	default:
		d.LastError = perr.Error()
		d.NextAttempt = b.o.Now().Add(b.backoff(d.Attempts, perr))
		log.Warn("delivery will be retried", "err", perr, "at", d.NextAttempt)
	}
	if err := b.o.Store.UpdateDelivery(d); err != nil {
		return d, perr, fmt.Errorf("delivery %d: %w", d.ID, err)
	}
	return d, perr, nil
}

// backoff doubles from MinRetry to MaxRetry (sync/internal/retry's
// ceiling, without a draw: MaxAttempts at the cap is how long a delivery
// is tried, about a day, as Fleetio tries its own); a 429's Retry-After is
// honoured when it asks for longer.
func (b *Integration) backoff(attempts int, err error) time.Duration {
	p := retry.Policy{Base: b.o.MinRetry, Cap: b.o.MaxRetry}
	var ae *fleetio.APIError
	if errors.As(err, &ae) {
		return p.AtLeast(p.Ceiling(attempts), ae.RetryAfter)
	}
	return p.Ceiling(attempts)
}

func permanent(err error) bool {
	var ae *fleetio.APIError
	if errors.As(err, &ae) {
		return !ae.Retryable()
	}
	return errors.Is(err, errPermanent) || errors.Is(err, cloud.ErrUnknownBox) || errors.Is(err, box.ErrInvalidRecord)
}

// process acts on one delivery. The payload only says which assignment; what
// the bridge does follows the assignment as the API shows it now.
func (b *Integration) process(ctx context.Context, d Delivery) error {
	wh, err := fleetio.ParseWebhook(d.Body)
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	pa, err := fleetio.ParseAssignment(wh.Payload)
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	bk, have, err := b.o.Store.Booking(pa.ID)
	if err != nil {
		return err
	}
	if echoOf(wh.Event, pa, bk, have) {
		b.stats.echoesSkipped.Add(1)
		b.log.Debug("delivery is the echo of the bridge's own write: not read back", "delivery", d.ID, "assignment", pa.ID)
		return nil
	}
	c, err := b.fleetio()
	if err != nil {
		return err
	}
	a, err := c.FindVehicleAssignment(ctx, pa.VehicleID, pa.ID)
	b.fleetioErr(err)
	if errors.Is(err, fleetio.ErrNotFound) && have && bk.VehicleID != pa.VehicleID {
		// The delivery may be older than a change of vehicle.
		a, err = c.FindVehicleAssignment(ctx, bk.VehicleID, pa.ID)
		b.fleetioErr(err)
	}
	gone := errors.Is(err, fleetio.ErrNotFound)
	if err != nil && !gone {
		return fmt.Errorf("read assignment %d back: %w", pa.ID, err)
	}
	unlock, err := b.lockDrivers(bk, have, a, !gone)
	if err != nil {
		return err
	}
	defer unlock()
	// Read again under the driver's lock: a code change by a worker on
	// another booking of the driver may have marked this one for a
	// write-back meanwhile, and writing the copy read above would lose it.
	if bk, have, err = b.o.Store.Booking(pa.ID); err != nil {
		return err
	}
	if gone {
		return b.end(ctx, c, nil, pa.ID, bk, have, BookingEnded)
	}
	return b.applyAssignment(ctx, c, a, bk, have)
}

// echoOf reports whether a delivery is the echo of the bridge's own write
// (the PATCH of the custom fields) and can be marked done without reading the
// assignment back: an updated delivery whose payload is the version the
// booking was last acted on (finish stores the updated_at our PATCH
// returned) and shows the vehicle, driver and window the booking was made
// from. Safe because:
//   - reading it back could only find that version or a newer one; that
//     version is what the booking holds, and a newer one is a change made
//     after it, which Fleetio sends its own delivery for (and Reconcile
//     repairs if that delivery never comes);
//   - the read-back path would skip it too: it acts only on an updated_at
//     newer than the booking's;
//   - finish keeps the PATCH's updated_at only when the PATCH's answer
//     still shows what the booking was made from (see sameVersion), so a
//     change someone made between our read-back and our PATCH is not
//     mistaken for our own;
//   - a booking with a step pending, or not active, is always read back,
//     and so is every other event (a deletion does not move updated_at).
func echoOf(event string, pa fleetio.VehicleAssignment, bk Booking, have bool) bool {
	if !have || event != fleetio.EventAssignmentUpdated || bk.State != BookingActive || bk.pending() {
		return false
	}
	from, until := window(pa)
	return !pa.UpdatedAt.IsZero() && pa.UpdatedAt.Equal(bk.UpdatedAt) &&
		pa.VehicleID == bk.VehicleID && pa.ContactID == bk.ContactID &&
		!bk.FleetioFrom.IsZero() && from.Equal(bk.FleetioFrom) && until.Equal(bk.FleetioUntil)
}

// sameVersion reports whether up, the answer to our PATCH of a's custom
// fields, still shows what the bridge acted on (vehicle, driver, window):
// then its updated_at is our own write's, and its webhook an echo. Otherwise
// someone changed the assignment between our read-back and our PATCH, and
// its updated_at must not be taken, or that change would be skipped as not
// newer than what was acted on.
func sameVersion(up, a fleetio.VehicleAssignment) bool {
	uf, uu := window(up)
	af, au := window(a)
	return up.ID == a.ID && up.VehicleID == a.VehicleID && up.ContactID == a.ContactID && uf.Equal(af) && uu.Equal(au)
}

// lockDrivers takes, when the booking may use a driver code (the mode says
// so, or it does already), the locks of its driver and of the assignment's
// driver now (they differ when the assignment changed hands), and returns
// what releases them. Under them a worker draws the driver's code once,
// puts its grant on a box once, and rewrites the driver's other bookings
// when the code changes without another worker writing those bookings
// meanwhile. The code mode cannot change while a worker runs (SetCodeMode
// takes b.work exclusively).
func (b *Integration) lockDrivers(bk Booking, have bool, a fleetio.VehicleAssignment, found bool) (func(), error) {
	mode, err := b.o.Store.CodeMode()
	if err != nil {
		return nil, err
	}
	if mode == CodePerAssignment && !(have && bk.DriverCode) {
		return func() {}, nil
	}
	var ids []int64
	if have && bk.ContactID > 0 {
		ids = append(ids, bk.ContactID)
	}
	if found && a.ContactID > 0 {
		ids = append(ids, a.ContactID)
	}
	return b.drivers.lock(ids...), nil
}
