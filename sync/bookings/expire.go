package bookings

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// ExpireEnded ends the bookings whose window is over. Fleetio sends no
// webhook when an assignment's ended_at simply passes, so without this a
// booking would stay "active" in the lists, its grant unrevoked (harmless at
// the box, which checks the window, but untidy in every snapshot) and its
// Keycafe fields still showing a PIN in Fleetio. For each one it reads the
// assignment back first: a window Fleetio moved later (a webhook that never
// came) is followed instead of ended. It returns how many it ended.
//
// Not connected (after Disconnect), the bookings kept in progress are ended
// at the bridge alone: no Fleetio call, the fields stay as they were.
func (b *Integration) ExpireEnded(ctx context.Context) (int, error) {
	bks, err := b.o.Store.Bookings()
	if err != nil {
		return 0, err
	}
	var c *fleetio.Client
	if b.Connected() {
		if c, err = b.fleetio(); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, bk := range bks {
		if !b.expired(bk) {
			continue
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		ended, err := b.expireOne(ctx, c, bk.AssignmentID)
		if err != nil {
			return n, fmt.Errorf("end booking of assignment %d: %w", bk.AssignmentID, err)
		}
		if ended {
			n++
		}
	}
	return n, nil
}

// expired says whether bk is an active booking whose window is over.
func (b *Integration) expired(bk Booking) bool {
	return bk.State == BookingActive && !bk.Until.IsZero() && !b.o.Now().Before(bk.Until)
}

// expireOne ends (or, if Fleetio moved the window, updates) one booking,
// holding the lock the queue worker takes.
func (b *Integration) expireOne(ctx context.Context, c *fleetio.Client, id int64) (bool, error) {
	// Read Fleetio before taking the lock: a slow API must not stall the
	// queue worker.
	var a *fleetio.VehicleAssignment
	if c != nil {
		bk, have, err := b.o.Store.Booking(id)
		if err != nil || !have || !b.expired(bk) {
			return false, err
		}
		got, err := c.FindVehicleAssignment(ctx, bk.VehicleID, id)
		b.fleetioErr(err)
		switch {
		case errors.Is(err, fleetio.ErrNotFound):
			// Deleted without a webhook: ended all the same.
		case err != nil:
			return false, err
		default:
			a = &got
		}
	}

	ctx, unlock, err := b.exclusive(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	bk, have, err := b.o.Store.Booking(id)
	if err != nil || !have || !b.expired(bk) {
		return false, err // the worker got there first
	}
	if a != nil && (a.EndedAt == nil || a.EndedAt.After(b.o.Now())) {
		// Fleetio extended it: follow the new window (the worker skips a
		// read-back not newer than what it acted on; this one must not be).
		bk.UpdatedAt = time.Time{}
		return false, b.applyAssignment(ctx, c, *a, bk, true)
	}
	if err := b.end(ctx, c, a, id, bk, true, BookingEnded); err != nil {
		return false, err
	}
	return true, nil
}
