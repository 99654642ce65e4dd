package bookings

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// CodeMode is how the code a driver types at the box is made.
type CodeMode string

const (
	// CodePerAssignment: a new PIN for every assignment (Keycafe's default).
	CodePerAssignment CodeMode = "per_assignment"
	// CodePerDriver: one code per driver, drawn once and kept (sealed), the
	// same on every box and for every assignment.
	CodePerDriver CodeMode = "per_driver"
	// CodeDriverOwn: the driver's own access code, set by the admin with
	// SetDriverCode. A driver with none set gets per-assignment PINs.
	CodeDriverOwn CodeMode = "driver_own"
)

// Validate checks a mode ("" is CodePerAssignment).
func (m CodeMode) Validate() error {
	switch m {
	case "", CodePerAssignment, CodePerDriver, CodeDriverOwn:
		return nil
	}
	return fmt.Errorf("%w code mode %q: want %q, %q or %q", ErrInvalid, m, CodePerAssignment, CodePerDriver, CodeDriverOwn)
}

// ErrDriverCodeInUse: a driver's own code is the code of another grant on a
// box the driver has bookings at; the admin must choose another.
var ErrDriverCodeInUse = errors.New("driver code in use by another grant on the box")

// untoldCodeLength is the length of a booking grant's code when the driver
// opens it with their driver code: the cloud wants a code on every grant,
// and 16 random digits nobody is told can't be guessed at a keypad.
const untoldCodeLength = 16

// DriverRef is the DriverRef of a Fleetio contact's grants: a driver code
// grant opens the active booking grants that carry the same ref.
func DriverRef(contactID int64) string { return "fleetio:" + strconv.FormatInt(contactID, 10) }

// DriverGrantID is the id of a contact's driver code grant on a box.
func DriverGrantID(contactID int64) string {
	return "fleetio-driver-" + strconv.FormatInt(contactID, 10)
}

func driverGrant(contactID int64) box.Grant {
	return box.Grant{ID: DriverGrantID(contactID), Kind: box.KindDriverCode, Source: GrantSource, DriverRef: DriverRef(contactID)}
}

// SetCodeMode sets how drivers' codes are made from now on. Bookings already
// made keep their code until their driver or box changes.
func (b *Integration) SetCodeMode(m CodeMode) error {
	// Exclusive: a worker decides once, at its start, whether it needs the
	// driver locks (lockDrivers), from the mode.
	_, unlock, err := b.exclusive(context.Background())
	if err != nil {
		return err
	}
	defer unlock()
	if err := b.o.Store.SetCodeMode(m); err != nil {
		return err
	}
	b.log.Info("code mode set", "mode", m)
	return nil
}

// ValidDriverCode checks a driver's own code: 4-16 digits, not a trivial sequence.
func ValidDriverCode(code string) error {
	if len(code) < box.MinCodeLength || len(code) > 16 {
		return fmt.Errorf("%w driver code: %d digits, want %d..16", ErrInvalid, len(code), box.MinCodeLength)
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w driver code: digits only (the keypad has no letters)", ErrInvalid)
		}
	}
	if TrivialPIN(code) {
		return fmt.Errorf("%w driver code: a trivial sequence (repeated or consecutive digits) is the first a guesser tries", ErrInvalid)
	}
	return nil
}

// SetDriverCode sets a driver's own code (CodeDriverOwn). Where the driver
// already has a driver code grant, the new code is pushed at once; a code
// another grant of one of those boxes holds is refused with
// ErrDriverCodeInUse and nothing changes. Bookings using the driver's code
// get their Fleetio field written again.
func (b *Integration) SetDriverCode(ctx context.Context, contactID int64, code string) error {
	if contactID <= 0 {
		return fmt.Errorf("%w contact id %d", ErrInvalid, contactID)
	}
	if err := ValidDriverCode(code); err != nil {
		return err
	}
	ctx, unlock, err := b.exclusive(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	dc, had, err := b.o.Store.driverCode(contactID)
	if err != nil {
		return err
	}
	var old string
	if had {
		if old, err = b.o.Store.openDriverCode(contactID, dc.Sealed); err != nil {
			return err
		}
	}
	if err := b.pushDriverCode(contactID, dc.Boxes, code, old); err != nil {
		if errors.Is(err, box.ErrCodeInUse) {
			return fmt.Errorf("%w: driver %d: %w: choose another code", ErrDriverCodeInUse, contactID, err)
		}
		return err
	}
	dc.ContactID, dc.Sealed, dc.Own, dc.Changed = contactID, b.o.Store.sealDriverCode(contactID, code), true, b.o.Now()
	if err := b.o.Store.putDriverCode(dc); err != nil {
		return err
	}
	b.log.Info("driver code set", "contact", contactID, "boxes", len(dc.Boxes))
	// The driver chose the code, so they know it: Fleetio's field only.
	return b.rewriteDriverBookings(contactID, false)
}

// ClearDriverCode forgets a driver's code and revokes its grants. The
// driver's bookings that used it get a per-assignment PIN, sent to them.
func (b *Integration) ClearDriverCode(ctx context.Context, contactID int64) error {
	ctx, unlock, err := b.exclusive(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	dc, had, err := b.o.Store.driverCode(contactID)
	if err != nil || !had {
		if err == nil {
			err = fmt.Errorf("driver code of contact %d: %w", contactID, ErrNotFound)
		}
		return err
	}
	bks, err := b.o.Store.Bookings()
	if err != nil {
		return err
	}
	for _, bk := range bks {
		if bk.ContactID != contactID || bk.State != BookingActive || !bk.DriverCode {
			continue
		}
		bk.DriverCode = false
		if err := b.o.Store.DeleteToken(tokenOf(bk.AccessLink)); err != nil {
			return err
		}
		token, err := b.newBookingSecrets(&bk)
		if err != nil {
			return err
		}
		bk.PendingGrant, bk.PendingWriteBack, bk.PendingNotify = true, true, notify.KindBookingCreated
		if err := b.o.Store.PutBooking(bk, token); err != nil {
			return err
		}
		if _, err := b.o.Store.AddInternalDelivery(EventDriverCodeChanged, bk.AssignmentID, bk.VehicleID, b.o.Now()); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(dc.Boxes)) {
		if _, err := b.revokeGrant(id, DriverGrantID(contactID)); err != nil && !errors.Is(err, cloud.ErrNotFound) {
			return fmt.Errorf("revoke driver code grant of contact %d on box %s: %w", contactID, id, err)
		}
	}
	if err := b.o.Store.deleteDriverCode(contactID); err != nil {
		return err
	}
	b.log.Info("driver code cleared", "contact", contactID)
	b.Wake()
	return nil
}

// pushDriverCode puts code on the driver's grant on each box; on an error it
// puts old back on the boxes already changed, so a refused code changes
// nothing.
func (b *Integration) pushDriverCode(contactID int64, boxes map[string]bool, code, old string) error {
	var done []string
	for _, id := range slices.Sorted(maps.Keys(boxes)) {
		if err := b.putGrant(id, driverGrant(contactID), code); err != nil {
			for _, d := range done {
				if rerr := b.putGrant(d, driverGrant(contactID), old); rerr != nil {
					b.log.Error("driver code: putting the old code back", "contact", contactID, "box", d, "err", rerr)
				}
			}
			return fmt.Errorf("driver code grant of contact %d on box %s: %w", contactID, id, err)
		}
		done = append(done, id)
	}
	return nil
}

// rewriteDriverBookings marks the active bookings that use contactID's
// driver code for a write-back (and, with tell, a notification carrying the
// new code) and queues them for the worker.
func (b *Integration) rewriteDriverBookings(contactID int64, tell bool) error {
	bks, err := b.o.Store.Bookings()
	if err != nil {
		return err
	}
	n := 0
	for _, bk := range bks {
		if bk.ContactID != contactID || bk.State != BookingActive || !bk.DriverCode {
			continue
		}
		bk.PendingWriteBack = true
		if tell {
			bk.NotifyCode = true
			if bk.PendingNotify == "" {
				bk.PendingNotify = notify.KindBookingUpdated
			}
		}
		if err := b.o.Store.PutBooking(bk, ""); err != nil {
			return err
		}
		if _, err := b.o.Store.AddInternalDelivery(EventDriverCodeChanged, bk.AssignmentID, bk.VehicleID, b.o.Now()); err != nil {
			return err
		}
		n++
	}
	if n > 0 {
		b.Wake()
	}
	return nil
}

// useDriverCode decides, for a new booking of contactID, whether the driver
// opens it with their driver code, and logs why not when the mode wanted it.
func (b *Integration) useDriverCode(contactID int64) (bool, error) {
	mode, err := b.o.Store.CodeMode()
	if err != nil {
		return false, err
	}
	switch mode {
	case CodePerDriver:
		return true, nil
	case CodeDriverOwn:
		dc, ok, err := b.o.Store.driverCode(contactID)
		if err != nil {
			return false, err
		}
		if !ok || !dc.Own {
			b.log.Warn("driver has no own code set: the booking gets a per-assignment PIN", "contact", contactID, "mode", mode)
			return false, nil
		}
		return true, nil
	}
	return false, nil
}

// driverCodeFor returns contactID's code, drawing one (CodePerDriver) if the
// driver has none yet.
func (b *Integration) driverCodeFor(contactID int64) (string, driverCode, error) {
	dc, ok, err := b.o.Store.driverCode(contactID)
	if err != nil {
		return "", dc, err
	}
	if ok {
		code, err := b.o.Store.openDriverCode(contactID, dc.Sealed)
		return code, dc, err
	}
	code, err := NewPIN(b.o.Rand, PINLength)
	if err != nil {
		return "", dc, err
	}
	dc = driverCode{ContactID: contactID, Sealed: b.o.Store.sealDriverCode(contactID, code), Changed: b.o.Now()}
	if err := b.o.Store.putDriverCode(dc); err != nil {
		return "", dc, err
	}
	b.log.Info("driver code drawn", "contact", contactID)
	return code, dc, nil
}

// ensureDriverGrant puts contactID's driver code grant on boxID (if it is not
// there yet) and returns the code. A drawn code (CodePerDriver) that another
// grant of the box holds is drawn again and pushed to every box the driver
// is on, and the driver's other bookings are told the new code; an own code
// gives ErrDriverCodeInUse.
func (b *Integration) ensureDriverGrant(contactID int64, boxID string) (string, error) {
	code, dc, err := b.driverCodeFor(contactID)
	if err != nil {
		return "", err
	}
	if dc.Boxes[boxID] {
		return code, nil
	}
	rotated := false
	for i := 0; ; i++ {
		err := b.putGrant(boxID, driverGrant(contactID), code)
		if err == nil {
			break
		}
		if !errors.Is(err, box.ErrCodeInUse) {
			return "", fmt.Errorf("driver code grant of contact %d on box %s: %w", contactID, boxID, err)
		}
		if dc.Own {
			return "", fmt.Errorf("%w: driver %d's own code on box %s: %w: set another with SetDriverCode", ErrDriverCodeInUse, contactID, boxID, err)
		}
		if i >= maxPINDraws {
			return "", fmt.Errorf("driver code grant of contact %d on box %s: %w", contactID, boxID, err)
		}
		b.log.Warn("drawn driver code in use on a box: drawing another", "contact", contactID, "box", boxID)
		old := code
		if code, err = NewPIN(b.o.Rand, PINLength); err != nil {
			return "", err
		}
		if err := b.pushDriverCode(contactID, dc.Boxes, code, old); err != nil {
			// Clashes elsewhere too: draw again (bounded by maxPINDraws).
			if !errors.Is(err, box.ErrCodeInUse) {
				return "", err
			}
			code = old
			continue
		}
		dc.Sealed, dc.Changed, rotated = b.o.Store.sealDriverCode(contactID, code), b.o.Now(), true
		if err := b.o.Store.putDriverCode(dc); err != nil {
			return "", err
		}
	}
	if dc.Boxes == nil {
		dc.Boxes = map[string]bool{}
	}
	dc.Boxes[boxID] = true
	if err := b.o.Store.putDriverCode(dc); err != nil {
		return "", err
	}
	if rotated {
		// The driver's other bookings were told the old code.
		if err := b.rewriteDriverBookings(contactID, true); err != nil {
			return "", err
		}
	}
	return code, nil
}

// pruneDriverGrant revokes contactID's driver code grant on boxID when the
// driver has no active or future booking using it there any more.
func (b *Integration) pruneDriverGrant(contactID int64, boxID string) error {
	dc, ok, err := b.o.Store.driverCode(contactID)
	if err != nil || !ok || !dc.Boxes[boxID] {
		return err
	}
	bks, err := b.o.Store.Bookings()
	if err != nil {
		return err
	}
	now := b.o.Now()
	for _, bk := range bks {
		if bk.ContactID == contactID && bk.BoxID == boxID && bk.State == BookingActive && bk.DriverCode &&
			(bk.Until.IsZero() || now.Before(bk.Until)) {
			return nil
		}
	}
	if _, err := b.revokeGrant(boxID, DriverGrantID(contactID)); err != nil && !errors.Is(err, cloud.ErrNotFound) {
		return fmt.Errorf("revoke driver code grant of contact %d on box %s: %w", contactID, boxID, err)
	}
	delete(dc.Boxes, boxID)
	b.log.Info("driver code grant revoked: no booking left on the box", "contact", contactID, "box", boxID)
	return b.o.Store.putDriverCode(dc)
}

// pruneDriverGrants runs pruneDriverGrant for every driver and box: bookings
// also end by their window passing, with no delivery to say so.
func (b *Integration) pruneDriverGrants() error {
	dcs, err := b.o.Store.driverCodes()
	if err != nil {
		return err
	}
	var errs []error
	for _, dc := range dcs {
		for _, id := range slices.Sorted(maps.Keys(dc.Boxes)) {
			errs = append(errs, b.pruneDriverGrant(dc.ContactID, id))
		}
	}
	return errors.Join(errs...)
}

// DriverCodeInfo says which drivers have a code and where (never the code).
type DriverCodeInfo struct {
	ContactID int64    `json:"contact_id"`
	Own       bool     `json:"own"` // set by the admin; false: drawn (per_driver)
	Boxes     []string `json:"boxes,omitempty"`
}

// DriverCodes lists the drivers with a code.
func (b *Integration) DriverCodes() ([]DriverCodeInfo, error) {
	dcs, err := b.o.Store.driverCodes()
	out := make([]DriverCodeInfo, 0, len(dcs))
	for _, dc := range dcs {
		out = append(out, DriverCodeInfo{ContactID: dc.ContactID, Own: dc.Own, Boxes: slices.Sorted(maps.Keys(dc.Boxes))})
	}
	return out, err
}
