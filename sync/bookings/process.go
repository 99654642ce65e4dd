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
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// pollInterval bounds how long the worker sleeps with nothing due: a
// safety net should a wake-up be missed (a delivery stored by another path).
const pollInterval = time.Minute

// sharedPollInterval is pollInterval on a store replicas share
// (PostgreSQL): a webhook wakes only the replica that stored it, so one
// that replica never ran (it was drained or killed just after, or its
// workers were busy when it stopped) waits for another replica's look at
// the queue. At a minute, one run in ten of TestReplicasDrain left such a
// delivery a minute; at 2 s a grant waits at most that long, for one
// query of the queued deliveries (an index of the queued) per lane and
// replica every 2 s when idle. LISTEN/NOTIFY would wake at once, but
// CockroachDB and YugabyteDB, which the store targets too, have none.
const sharedPollInterval = 2 * time.Second

// errPermanent marks a delivery that will never succeed as it is.
var errPermanent = errors.New("permanent")

// processOne processes one delivery and records the outcome: done, failed
// for good, or queued again with a back-off. perr is the processing error,
// err a failure to record it. The work lock must be held (shared by a worker,
// which has claimed the delivery and its assignment; or exclusively).
func (b *Integration) processOne(ctx context.Context, d Delivery) (_ Delivery, perr, err error) {
	perr = b.process(ctx, d)
	if perr != nil && ctx.Err() != nil {
		// Stopped (a drain, a shutdown), not failed: the delivery stays
		// queued as it was, no attempt counted and no back-off, so this
		// replica's next start or another replica takes it at once (its
		// claim is handed back by Drain, or lapses). What it did so far
		// is done again, as after a crash.
		b.log.Info("delivery interrupted by shutdown: left queued", "delivery", d.ID, "event", d.Event, "err", perr)
		return d, perr, nil
	}
	d.Attempts++
	log := b.log.With("delivery", d.ID, "event", d.Event, "attempt", d.Attempts)
	switch {
	case perr == nil:
		d.State, d.LastError, d.NextAttempt = DeliveryDone, "", time.Time{}
		log.Info("delivery processed")
	case errors.Is(perr, fleetio.ErrBudgetSpent) || errors.Is(perr, errConfirmAgain):
		// Not a failure: the confirm goes on once its lane has a token
		// (the budget) or at once (a payload changed the booking). It is
		// stored as it was, queued and due: no commit for it.
		d.Attempts--
		d.NextAttempt = b.o.Now()
		log.Debug("confirm goes on later", "why", perr)
		return d, perr, nil
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

// process acts on one delivery. A webhook of Fleetio's is acted on from its
// payload, at once (intake: no Fleetio call); the bridge's own deliveries,
// among them the confirm every webhook leaves, read the assignment back and
// make the booking follow what Fleetio's API shows now (confirm).
func (b *Integration) process(ctx context.Context, d Delivery) error {
	wh, err := fleetio.ParseWebhook(d.Body)
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	pa, err := fleetio.ParseAssignment(wh.Payload)
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	if d.internal() {
		return b.confirm(ctx, d, pa)
	}
	return b.intake(ctx, d, wh.Event, pa)
}

// intake acts on a webhook's payload without asking Fleetio: the body was
// verified at the webhook (Fleetio's HMAC), so the payload is Fleetio's
// word at the time it was sent. When it is newer than what the booking was
// last made from (its updated_at), the booking is made, changed or ended
// from it and its grant pushed now; the write-back and the driver's message
// wait for the confirm. A deletion revokes the grant now (intakeDeleted).
// A payload that is not newer (late, reordered, replayed) changes nothing:
// it only asks for the confirm. Either way the confirm is owed: one queued
// confirm per assignment (Booking.ConfirmID), however many deliveries ask
// for it before it runs.
func (b *Integration) intake(ctx context.Context, d Delivery, event string, pa fleetio.VehicleAssignment) error {
	bk, have, err := b.o.Store.Booking(pa.ID)
	if err != nil {
		return err
	}
	if b.echoOf(event, pa, bk, have) {
		b.stats.echoesSkipped.Add(1)
		b.log.Debug("delivery is the echo of the bridge's own write: not read back", "delivery", d.ID, "assignment", pa.ID)
		return nil
	}
	// Queued first: should acting on the payload fail for good, the
	// confirm still makes the booking follow Fleetio.
	confirmID, err := b.oweConfirm(pa, bk, have)
	if err != nil {
		return err
	}
	if event == fleetio.EventAssignmentDeleted {
		if err := b.intakeDeleted(ctx, pa, bk, have); err != nil {
			return err
		}
	} else if actable(event, pa) && (!have || pa.UpdatedAt.After(bk.UpdatedAt)) {
		unlock, err := b.lockDrivers(ctx, bk, have, pa, true)
		if err != nil {
			return err
		}
		defer unlock()
		// Read again under the driver's lock (see confirm).
		if bk, have, err = b.o.Store.Booking(pa.ID); err != nil {
			return err
		}
		if !have || pa.UpdatedAt.After(bk.UpdatedAt) {
			// The booking stored from the payload names its confirm
			// (book and end keep these), so markConfirm has nothing
			// left to write.
			bk.PendingConfirm, bk.ConfirmID = true, confirmID
			if err := b.applyAssignment(ctx, nil, pa, bk, have); err != nil {
				return err
			}
			b.log.Debug("booking follows the delivery's payload; confirm owed", "delivery", d.ID, "assignment", pa.ID, "confirm", confirmID)
		}
	}
	return b.markConfirm(pa.ID, confirmID)
}

// intakeDeleted acts on a deletion's payload: an active booking's grant is
// revoked now (the driver is told once the confirm has read the assignment
// gone), and an assignment the bridge has not booked yet is recorded ended
// with the deletion's updated_at, so that its created delivery, should it
// come after (reordered), makes no grant.
func (b *Integration) intakeDeleted(ctx context.Context, pa fleetio.VehicleAssignment, bk Booking, have bool) error {
	if have && pa.UpdatedAt.Before(bk.UpdatedAt) {
		return nil // older than what the booking was made from: the confirm decides
	}
	unlock, err := b.lockDrivers(ctx, bk, have, pa, true)
	if err != nil {
		return err
	}
	defer unlock()
	if bk, have, err = b.o.Store.Booking(pa.ID); err != nil {
		return err
	}
	switch {
	case !have:
		from, until := window(pa)
		return b.o.Store.PutBooking(Booking{AssignmentID: pa.ID, VehicleID: pa.VehicleID, ContactID: pa.ContactID,
			ContactName: contactName(pa), From: from, Until: until, State: BookingEnded, UpdatedAt: pa.UpdatedAt,
			Changed: b.o.Now()}, "")
	case bk.State == BookingActive:
		if err := b.end(ctx, nil, nil, pa.ID, bk, have, BookingEnded); err != nil {
			return err
		}
		if bk, _, err = b.o.Store.Booking(pa.ID); err != nil {
			return err
		}
	}
	if pa.UpdatedAt.After(bk.UpdatedAt) {
		bk.UpdatedAt = pa.UpdatedAt
		return b.o.Store.PutBooking(bk, "")
	}
	return nil
}

// actable reports whether a payload says enough to act on: an assignment
// created or updated, with its version, vehicle and start. Anything else
// waits for the confirm's read-back.
func actable(event string, pa fleetio.VehicleAssignment) bool {
	return (event == fleetio.EventAssignmentCreated || event == fleetio.EventAssignmentUpdated) &&
		!pa.UpdatedAt.IsZero() && pa.VehicleID > 0 && !pa.StartedAt.IsZero()
}

// oweConfirm returns the queued confirm of assignment pa.ID, queuing one
// when there is none (coalescing: the booking names the one queued).
func (b *Integration) oweConfirm(pa fleetio.VehicleAssignment, bk Booking, have bool) (int64, error) {
	if have && bk.ConfirmID != 0 {
		d, err := b.o.Store.Delivery(bk.ConfirmID)
		switch {
		case err == nil && d.State == DeliveryQueued:
			return d.ID, nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return 0, err
		}
	}
	vehicle := pa.VehicleID
	if vehicle <= 0 && have {
		vehicle = bk.VehicleID
	}
	d, err := b.o.Store.AddInternalDelivery(EventConfirm, pa.ID, vehicle, b.o.Now())
	if err != nil {
		return 0, err
	}
	b.wakeLane(laneConfirm)
	return d.ID, nil
}

// markConfirm records on the booking of assignment id (if there is one)
// that confirm delivery confirmID is owed.
func (b *Integration) markConfirm(id, confirmID int64) error {
	bk, have, err := b.o.Store.Booking(id)
	if err != nil || !have || (bk.PendingConfirm && bk.ConfirmID == confirmID) {
		return err
	}
	bk.PendingConfirm, bk.ConfirmID = true, confirmID
	return b.o.Store.PutBooking(bk, "")
}

// errStaleReadBack is a read-back older than the payload the booking was
// made from: Fleetio's API has not caught up with its own webhook yet. The
// confirm is tried again (with the queue's back-off); the booking stays.
var errStaleReadBack = errors.New("read-back older than the webhook payload acted on")

// confirm reads assignment pa.ID back from Fleetio and makes the booking
// match it: the read-back is the truth. A payload acted on that Fleetio
// disagrees with (another window, vehicle or driver, the assignment gone
// or ended) is repaired here; then what is owed is done (settleOwed: the
// write-back of the custom fields, the driver's message). Each step is
// stored as done, so a confirm stopped half-way (ErrBudgetSpent, an error,
// a restart) does only what is left when it runs again: a confirm whose
// read-back is done goes on with the write-back without reading again.
func (b *Integration) confirm(ctx context.Context, d Delivery, pa fleetio.VehicleAssignment) error {
	bk, have, err := b.o.Store.Booking(pa.ID)
	if err != nil {
		return err
	}
	c, err := b.fleetio()
	if err != nil {
		return err
	}
	if d.Event == EventConfirm && have && !bk.PendingConfirm && bk.ConfirmID == d.ID {
		// Read back already, by an earlier run of this confirm: what is
		// owed, if anything, is left. (Any other confirm reads back: one
		// queued by a payload whose booking a crash left unmarked, say.)
		a := bk.assignment()
		unlock, err := b.lockDrivers(ctx, bk, have, a, true)
		if err != nil {
			return err
		}
		defer unlock()
		if bk, have, err = b.o.Store.Booking(pa.ID); err != nil || !have {
			return err
		}
		if bk.PendingConfirm {
			return fmt.Errorf("assignment %d changed meanwhile: %w", pa.ID, errConfirmAgain)
		}
		return b.settleOwed(ctx, c, &a, bk)
	}
	vehicle := pa.VehicleID
	if have && bk.PendingConfirm && bk.VehicleID > 0 {
		vehicle = bk.VehicleID // the latest payload's, when one moved it
	}
	a, err := c.FindVehicleAssignment(ctx, vehicle, pa.ID)
	b.fleetioErr(err)
	for _, v := range []int64{pa.VehicleID, bk.VehicleID} {
		if errors.Is(err, fleetio.ErrNotFound) && have && v != vehicle && v > 0 {
			// The delivery may be older than a change of vehicle.
			a, err = c.FindVehicleAssignment(ctx, v, pa.ID)
			b.fleetioErr(err)
		}
	}
	gone := errors.Is(err, fleetio.ErrNotFound)
	if err != nil && !gone {
		return fmt.Errorf("read assignment %d back: %w", pa.ID, err)
	}
	unlock, err := b.lockDrivers(ctx, bk, have, a, !gone)
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
	switch {
	case gone:
		err = b.end(ctx, nil, nil, pa.ID, bk, have, BookingEnded)
	case have && bk.PendingConfirm && a.UpdatedAt.Before(bk.UpdatedAt):
		return fmt.Errorf("assignment %d: %w (%s < %s)", pa.ID, errStaleReadBack, a.UpdatedAt, bk.UpdatedAt)
	default:
		if have && bk.PendingConfirm && b.disagrees(a, bk) {
			b.log.Warn("Fleetio's read-back disagrees with the payload the booking was made from: the booking follows Fleetio",
				"assignment", a.ID, "vehicle", a.VehicleID, "contact", a.ContactID)
		}
		// No Fleetio call: the booking and its grant follow the read-back;
		// what needs Fleetio is left pending for settleOwed.
		err = b.applyAssignment(ctx, nil, a, bk, have)
	}
	if err != nil {
		return err
	}
	if err := b.confirmed(pa.ID); err != nil {
		return err
	}
	if bk, have, err = b.o.Store.Booking(pa.ID); err != nil || !have {
		return err
	}
	if gone {
		return b.settleOwed(ctx, c, nil, bk)
	}
	return b.settleOwed(ctx, c, &a, bk)
}

// errConfirmAgain: the confirm is to run again at once (a payload changed
// the booking while it ran).
var errConfirmAgain = errors.New("confirm again")

// settleOwed does what a booking still owes Fleetio and the driver once its
// assignment is confirmed: an active booking's steps (finish: the grant if
// still pending, the write-back, the message); an ended one's clearing of
// the custom fields and the driver's cancellation. a is the assignment as
// read back (nil: gone).
func (b *Integration) settleOwed(ctx context.Context, c *fleetio.Client, a *fleetio.VehicleAssignment, bk Booking) error {
	if bk.State == BookingActive {
		if !bk.pending() {
			return nil
		}
		if a == nil {
			sa := bk.assignment()
			a = &sa
		}
		return b.finish(ctx, c, *a, bk)
	}
	if bk.PendingClear {
		if a == nil {
			bk.PendingClear = false // gone: nothing to clear
		} else if err := b.clearFields(ctx, c, a, &bk); err != nil {
			return err
		}
		if err := b.o.Store.PutBooking(bk, ""); err != nil {
			return err
		}
	}
	if bk.PendingNotify == notify.KindBookingCancelled {
		if err := b.tellCancelled(ctx, c, bk); err != nil {
			return err
		}
		bk.PendingNotify = ""
		return b.o.Store.PutBooking(bk, "")
	}
	return nil
}

// disagrees reports whether read-back a differs from what booking bk was
// made from in something the booking depends on.
func (b *Integration) disagrees(a fleetio.VehicleAssignment, bk Booking) bool {
	from, until := window(a)
	if bk.State != BookingActive {
		return a.EndedAt == nil || a.EndedAt.After(b.o.Now())
	}
	return a.VehicleID != bk.VehicleID || a.ContactID != bk.ContactID || !from.Equal(bk.FleetioFrom) || !until.Equal(bk.FleetioUntil)
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
//   - a booking with a step pending is read back, unless its confirm is
//     queued (it does what is owed: the echo of a PATCH whose confirm
//     stopped before the message, for one); one not active is always read
//     back, and so is every other event (a deletion does not move
//     updated_at).
func (b *Integration) echoOf(event string, pa fleetio.VehicleAssignment, bk Booking, have bool) bool {
	if !have || event != fleetio.EventAssignmentUpdated || bk.State != BookingActive || (bk.pending() && !b.confirmQueued(bk)) {
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
// takes the work lock exclusively).
func (b *Integration) lockDrivers(ctx context.Context, bk Booking, have bool, a fleetio.VehicleAssignment, found bool) (func(), error) {
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
	return b.locks.drivers(ctx, ids)
}
