package bookings

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// ReconcileReport says what a Reconcile round looked at and repaired.
type ReconcileReport struct {
	Vehicles    int      `json:"vehicles"`    // linked vehicles listed
	Assignments int      `json:"assignments"` // their current and future assignments
	Checked     int      `json:"checked"`     // bookings not listed, looked up one by one
	Repairs     []Repair `json:"repairs,omitempty"`
}

// Repair is one booking Reconcile made match Fleetio.
type Repair struct {
	AssignmentID int64  `json:"assignment_id"`
	VehicleID    int64  `json:"vehicle_id"`
	Why          string `json:"why"`
}

// Why a booking was repaired (Repair.Why).
const (
	RepairMissing  = "missing"  // no booking (or reservation) for a current or future assignment
	RepairInactive = "inactive" // a booking ended or unlinked while its assignment is current or future
	RepairPending  = "pending"  // steps of an earlier attempt left undone
	RepairDriver   = "driver"   // the assignment's driver changed
	RepairKey      = "key"      // the vehicle's link names another box or key
	RepairWindow   = "window"   // the assignment's window changed
	RepairGone     = "gone"     // the assignment was deleted in Fleetio
	RepairOver     = "over"     // the assignment ended early, or its vehicle is no longer linked
)

// Reconcile compares the bridge's bookings with Fleetio, for when a webhook
// never arrived (Fleetio gives up on a delivery after a day, and can disable
// a failing webhook). It lists the current and future assignments of every
// linked vehicle and repairs each booking that does not match (missing, other
// window, driver or key), then looks up the active bookings whose assignment
// was not listed and ends those that are gone. A repair is exactly what the
// queue worker does for a delivery, under the same lock.
//
// Every list is read before anything changes: a Fleetio error (429, 5xx)
// while listing returns it with nothing changed. An error during a repair
// stops the round; the booking keeps the steps left to do, and the next round
// or the queue finishes them.
func (b *Integration) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	c, err := b.fleetio()
	if err != nil {
		return rep, err
	}
	links, err := b.o.Store.Links()
	if err != nil {
		return rep, err
	}
	now := b.o.Now()
	listed := map[int64]fleetio.VehicleAssignment{}
	for _, l := range links {
		// Not a filter on ended_at: whether Fleetio's filter keeps the
		// open-ended ones (ended_at null) is not documented. A vehicle has
		// few assignments; the selection is done here.
		as, err := c.ListVehicleAssignmentsForVehicle(ctx, l.VehicleID, fleetio.AssignmentFilter{SortBy: "id"})
		if errors.Is(err, fleetio.ErrNotFound) {
			continue // the vehicle is gone: its bookings are looked up below
		}
		if err := b.fleetioErr(err); err != nil {
			return rep, fmt.Errorf("reconcile: list assignments of vehicle %d: %w", l.VehicleID, err)
		}
		rep.Vehicles++
		for _, a := range as {
			if a.EndedAt == nil || a.EndedAt.After(now) {
				listed[a.ID] = a
			}
		}
	}
	rep.Assignments = len(listed)

	// Bookings that should have been listed (active, not over) and were not;
	// reservations too. Looked up before any repair, for the same reason.
	bks, err := b.o.Store.Bookings()
	if err != nil {
		return rep, err
	}
	type lookup struct {
		id, vehicle int64
		a           *fleetio.VehicleAssignment // nil: gone
	}
	var lookups []lookup
	for _, bk := range bks {
		if _, ok := listed[bk.AssignmentID]; ok || bk.State != BookingActive || (!bk.Until.IsZero() && !now.Before(bk.Until)) {
			continue
		}
		lookups = append(lookups, lookup{id: bk.AssignmentID, vehicle: bk.VehicleID})
	}
	rs, err := b.o.Store.Reservations()
	if err != nil {
		return rep, err
	}
	for _, r := range rs {
		if _, ok := listed[r.AssignmentID]; !ok {
			lookups = append(lookups, lookup{id: r.AssignmentID, vehicle: r.VehicleID})
		}
	}
	for i, l := range lookups {
		a, err := c.FindVehicleAssignment(ctx, l.vehicle, l.id)
		switch {
		case errors.Is(err, fleetio.ErrNotFound):
		case b.fleetioErr(err) != nil:
			return rep, fmt.Errorf("reconcile: read assignment %d back: %w", l.id, err)
		default:
			lookups[i].a = &a
		}
		rep.Checked++
	}

	// Repairs, oldest assignment first, each under the worker's lock.
	ids := make([]int64, 0, len(listed))
	for id := range listed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		a := listed[id]
		why, err := b.repairListed(ctx, c, a)
		if err != nil {
			return rep, fmt.Errorf("reconcile: assignment %d (%s): %w", id, why, err)
		}
		if why != "" {
			b.repaired(&rep, Repair{AssignmentID: id, VehicleID: a.VehicleID, Why: why})
		}
	}
	slices.SortFunc(lookups, func(x, y lookup) int { return cmp.Compare(x.id, y.id) })
	for _, l := range lookups {
		why, err := b.repairUnlisted(ctx, c, l.id, l.a)
		if err != nil {
			return rep, fmt.Errorf("reconcile: assignment %d (%s): %w", l.id, why, err)
		}
		if why != "" {
			b.repaired(&rep, Repair{AssignmentID: l.id, VehicleID: l.vehicle, Why: why})
		}
	}
	return rep, nil
}

func (b *Integration) repaired(rep *ReconcileReport, r Repair) {
	rep.Repairs = append(rep.Repairs, r)
	b.stats.reconciled.Add(1)
	b.log.Info("booking repaired by reconcile", "assignment", r.AssignmentID, "vehicle", r.VehicleID, "why", r.Why)
}

// repairListed makes the booking of a current or future assignment match it,
// if it does not. It says why it acted ("" if it did not).
func (b *Integration) repairListed(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment) (string, error) {
	// Looked at first without the lock: most assignments need nothing,
	// and a repair's tokens are taken before the lock (prepay).
	if why, _, _, err := b.listedMismatch(a); err != nil || why == "" {
		return "", err
	}
	ctx, err := b.prepay(ctx, c, repairRequests)
	if err != nil {
		return "", err
	}
	ctx, unlock, err := b.exclusive(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Again under the lock: the worker may have acted meanwhile.
	why, bk, have, err := b.listedMismatch(a)
	if err != nil || why == "" {
		return "", err
	}
	if have {
		// The worker skips an assignment not newer than what it last acted
		// on; a mismatch without a newer updated_at (a link changed, a step
		// left pending) must not be skipped.
		bk.UpdatedAt = time.Time{}
	}
	if err := b.applyAssignment(ctx, c, a, bk, have); err != nil {
		return why, err
	}
	// The list is a read-back: a confirm owed is done.
	return why, b.confirmed(a.ID)
}

// confirmQueued reports whether bk's confirm is queued: it will do what the
// booking owes.
func (b *Integration) confirmQueued(bk Booking) bool {
	if bk.ConfirmID == 0 {
		return false
	}
	d, err := b.o.Store.Delivery(bk.ConfirmID)
	return err == nil && d.State == DeliveryQueued
}

// confirmed clears the booking of assignment id's PendingConfirm.
func (b *Integration) confirmed(id int64) error {
	bk, have, err := b.o.Store.Booking(id)
	if err != nil || !have || !bk.PendingConfirm {
		return err
	}
	bk.PendingConfirm = false
	return b.o.Store.PutBooking(bk, "")
}

// listedMismatch says how the booking of listed assignment a differs from
// it ("" if it does not, or if it is not this round's business).
func (b *Integration) listedMismatch(a fleetio.VehicleAssignment) (string, Booking, bool, error) {
	bk, have, err := b.o.Store.Booking(a.ID)
	if err != nil {
		return "", bk, have, err
	}
	if have && bk.UpdatedAt.After(a.UpdatedAt) {
		return "", bk, have, nil // the worker has seen a newer version than the list
	}
	link, linked, err := b.o.Store.LinkOf(a.VehicleID)
	if err != nil || !linked {
		return "", bk, have, err // unlinked since it was listed: not this round's business
	}
	why, err := b.mismatch(a, link, bk, have)
	return why, bk, have, err
}

// repairRequests is how many Fleetio requests a repair makes at most (the
// write-back or the clearing of the fields, the driver's contact): taken
// from the budget before a repair takes the worker's lock, so that the
// intake of webhooks never waits on the budget behind a repair. A repair
// that would need more stops with fleetio.ErrBudgetSpent; the next round
// finishes it.
const repairRequests = 2

// prepay takes n tokens of c's budget (if it has one) and returns a
// context whose requests use them and then never wait (fleetio.Prepaid).
func (b *Integration) prepay(ctx context.Context, c *fleetio.Client, n int) (context.Context, error) {
	bu := c.Budget()
	if bu == nil {
		return ctx, nil
	}
	for range n {
		if err := bu.Take(ctx); err != nil {
			return ctx, fmt.Errorf("wait for the Fleetio request budget: %w", err)
		}
	}
	return fleetio.Prepaid(ctx, n), nil
}

// mismatch says how a booking differs from its assignment ("" if it does not).
func (b *Integration) mismatch(a fleetio.VehicleAssignment, link Link, bk Booking, have bool) (string, error) {
	active := have && bk.State == BookingActive
	from, until := window(a)
	if link.Mode == ModePrompt && !active {
		r, ok, err := b.o.Store.Reservation(a.ID)
		switch {
		case err != nil:
			return "", err
		case !ok:
			return RepairMissing, nil
		case r.Approved:
			return RepairPending, nil // the admin asked for the booking; it was not made
		case r.ContactID != a.ContactID:
			return RepairDriver, nil
		case r.BoxID != link.BoxID || r.KeyID != link.KeyID:
			return RepairKey, nil
		case !r.From.Equal(from) || !r.Until.Equal(until):
			return RepairWindow, nil
		case !r.Notified && b.o.Notifier != nil:
			return RepairPending, nil
		}
		return "", nil
	}
	switch {
	case !have:
		return RepairMissing, nil
	case !active:
		return RepairInactive, nil
	case bk.pending() && !b.confirmQueued(bk):
		// Steps left, and no confirm queued to do them (one that failed
		// for good, or dropped).
		return RepairPending, nil
	case bk.ContactID != a.ContactID:
		return RepairDriver, nil
	case bk.BoxID != link.BoxID || bk.KeyID != link.KeyID:
		return RepairKey, nil
	}
	// An admin-edited window (CreateBooking) stands while Fleetio's does
	// not move: compare Fleetio's window then.
	bfrom, buntil := bk.From, bk.Until
	if bk.WindowEdited {
		bfrom, buntil = bk.FleetioFrom, bk.FleetioUntil
	}
	if !bfrom.Equal(from) || !buntil.Equal(until) {
		return RepairWindow, nil
	}
	return "", nil
}

// repairUnlisted ends the booking (or reservation) of an assignment that is
// gone (a nil), ended early or no longer on a linked vehicle.
func (b *Integration) repairUnlisted(ctx context.Context, c *fleetio.Client, id int64, a *fleetio.VehicleAssignment) (string, error) {
	ctx, err := b.prepay(ctx, c, repairRequests)
	if err != nil {
		return "", err
	}
	ctx, unlock, err := b.exclusive(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	bk, have, err := b.o.Store.Booking(id)
	if err != nil {
		return "", err
	}
	_, reserved, err := b.o.Store.Reservation(id)
	if err != nil {
		return "", err
	}
	if !(have && bk.State == BookingActive) && !reserved {
		return "", nil // ended meanwhile
	}
	if a == nil {
		return RepairGone, b.end(ctx, c, nil, id, bk, have, BookingEnded)
	}
	if have && bk.UpdatedAt.After(a.UpdatedAt) {
		return "", nil
	}
	if a.EndedAt == nil || a.EndedAt.After(b.o.Now()) {
		if _, linked, err := b.o.Store.LinkOf(a.VehicleID); err != nil || linked {
			// Current, on a linked vehicle: listed under its vehicle had
			// the round's list seen it (it moved vehicles meanwhile). The
			// next round takes it.
			return "", err
		}
	}
	if have {
		bk.UpdatedAt = time.Time{}
	}
	return RepairOver, b.applyAssignment(ctx, c, *a, bk, have)
}
