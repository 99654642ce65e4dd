package bookings

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// GrantSource is the Source of the grants the bridge makes.
const GrantSource = "fleetio"

// GrantID is the id of the grant made for a Fleetio assignment: stable, so
// that every delivery about an assignment touches the same grant.
func GrantID(assignmentID int64) string { return "fleetio-" + strconv.FormatInt(assignmentID, 10) }

// applyAssignment makes the booking of assignment a match a. c nil: a is a
// webhook's payload and Fleetio is not to be asked now; only what needs no
// Fleetio call is done (the grant pushed or revoked, the booking stored),
// the rest is left pending for the confirm (see intake).
func (b *Integration) applyAssignment(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment, bk Booking, have bool) error {
	if have && !bk.pending() && !a.UpdatedAt.After(bk.UpdatedAt) {
		// Not newer than what was acted on: a repeat, a late delivery, or
		// the echo of the bridge's own PATCH.
		return nil
	}
	if a.EndedAt != nil && !a.EndedAt.After(b.o.Now()) {
		return b.end(ctx, c, &a, a.ID, bk, have, BookingEnded)
	}
	link, linked, err := b.o.Store.LinkOf(a.VehicleID)
	if err != nil {
		return err
	}
	if !linked {
		return b.end(ctx, c, &a, a.ID, bk, have, BookingUnlinked)
	}
	if link.Mode == ModePrompt && !(have && bk.State == BookingActive) {
		r, ok, err := b.o.Store.Reservation(a.ID)
		if err != nil {
			return err
		}
		if !ok || !r.Approved {
			return b.prompt(ctx, a, link)
		}
	}
	return b.book(ctx, c, a, link, bk, have)
}

func window(a fleetio.VehicleAssignment) (from, until time.Time) {
	if a.EndedAt != nil {
		until = *a.EndedAt
	}
	return a.StartedAt, until
}

func contactName(a fleetio.VehicleAssignment) string {
	if a.ContactFullName != "" {
		return a.ContactFullName
	}
	if a.Contact != nil {
		return a.Contact.Name
	}
	return ""
}

// book creates or updates the booking grant of an Automatic assignment, or
// of a Prompt one the admin approved (CreateBooking).
func (b *Integration) book(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment, link Link, bk Booking, have bool) error {
	ffrom, funtil := window(a)
	from, until := ffrom, funtil
	var token string
	var prune []Booking // driver code grants that may be left without a booking
	switch {
	case !have || bk.State != BookingActive:
		// A new booking; the confirm owed (set by intake) carries over.
		bk = Booking{AssignmentID: a.ID, GrantID: GrantID(a.ID), State: BookingActive, PendingNotify: notify.KindBookingCreated,
			PendingConfirm: bk.PendingConfirm, ConfirmID: bk.ConfirmID}
		r, ok, err := b.o.Store.Reservation(a.ID)
		if err != nil {
			return err
		}
		if ok && r.Approved {
			bk.ContactMethod = r.ContactMethod
			if r.Edit != nil {
				from, until, bk.WindowEdited = r.Edit.apply(ffrom, funtil)
			}
		}
		if bk.DriverCode, err = b.useDriverCode(a.ContactID); err != nil {
			return err
		}
		if token, err = b.newBookingSecrets(&bk); err != nil {
			return err
		}
	default:
		if bk.WindowEdited && bk.FleetioFrom.Equal(ffrom) && bk.FleetioUntil.Equal(funtil) {
			// The admin's window stands while Fleetio's does not move.
			from, until = bk.From, bk.Until
		} else {
			bk.WindowEdited = false
		}
		driverChanged := bk.ContactID != a.ContactID
		boxChanged := bk.BoxID != link.BoxID
		changed := driverChanged || boxChanged || bk.KeyID != link.KeyID || !bk.From.Equal(from) || !bk.Until.Equal(until)
		if !changed {
			// Nothing the booking depends on moved: finish what a failed
			// attempt left (if anything), redo nothing.
			if a.UpdatedAt.After(bk.UpdatedAt) {
				bk.UpdatedAt = a.UpdatedAt
			}
			if err := b.o.Store.PutBooking(bk, ""); err != nil {
				return err
			}
			// A booking stored before its reservation was dropped (a crash
			// in between): drop it now.
			if err := b.o.Store.DeleteReservation(a.ID); err != nil || !bk.pending() {
				return err
			}
			return b.finish(ctx, c, a, bk)
		}
		if bk.DriverCode && (driverChanged || boxChanged) {
			prune = append(prune, bk)
		}
		if boxChanged {
			if _, err := b.revokeGrant(bk.BoxID, bk.GrantID); err != nil && !errors.Is(err, cloud.ErrNotFound) {
				return fmt.Errorf("revoke grant %s on box %s (booking moved): %w", bk.GrantID, bk.BoxID, err)
			}
		}
		if driverChanged || boxChanged {
			// The old driver knows the PIN and the link: both are new.
			if err := b.o.Store.DeleteToken(tokenOf(bk.AccessLink)); err != nil {
				return err
			}
			var err error
			if driverChanged {
				// The method was chosen for the old driver.
				bk.ContactMethod = ""
				if bk.DriverCode, err = b.useDriverCode(a.ContactID); err != nil {
					return err
				}
			}
			if token, err = b.newBookingSecrets(&bk); err != nil {
				return err
			}
			bk.PendingNotify = notify.KindBookingCreated
		} else if changed && bk.PendingNotify == "" {
			bk.PendingNotify = notify.KindBookingUpdated
		}
	}
	bk.VehicleID, bk.ContactID, bk.ContactName = a.VehicleID, a.ContactID, contactName(a)
	if a.Vehicle != nil && a.Vehicle.Name != "" {
		bk.VehicleName = a.Vehicle.Name
	}
	bk.BoxID, bk.KeyID, bk.From, bk.Until = link.BoxID, link.KeyID, from, until
	bk.DriverRef, bk.FleetioFrom, bk.FleetioUntil = DriverRef(a.ContactID), ffrom, funtil
	bk.UpdatedAt = a.UpdatedAt
	bk.PendingGrant, bk.PendingWriteBack = true, true
	// A new grant: not live until the box holds its revision (live.go).
	bk.GrantRev, bk.LiveAt, bk.BoxRev = 0, time.Time{}, 0
	bk.Changed = b.o.Now()
	if err := b.o.Store.PutBooking(bk, token); err != nil {
		return err
	}
	if err := b.o.Store.DeleteReservation(a.ID); err != nil {
		return err
	}
	for _, old := range prune {
		if err := b.pruneDriverGrant(old.ContactID, old.BoxID); err != nil {
			return err
		}
	}
	return b.finish(ctx, c, a, bk)
}

// codeLength is the length of a booking grant's code: a PIN the driver
// types, or a long one nobody is told when the driver uses a driver code.
func codeLength(bk Booking) int {
	if bk.DriverCode {
		return untoldCodeLength
	}
	return PINLength
}

// newBookingSecrets gives bk a new PIN (sealed) and access link, and returns
// the link's token for the store's index.
func (b *Integration) newBookingSecrets(bk *Booking) (string, error) {
	pin, err := NewPIN(b.o.Rand, codeLength(*bk))
	if err != nil {
		return "", err
	}
	raw := make([]byte, 32) // 256 bits: not guessable, not enumerable
	r := b.o.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, raw); err != nil {
		return "", fmt.Errorf("access token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	bk.SealedPIN = b.o.Store.sealPIN(bk.AssignmentID, pin)
	bk.AccessLink = strings.TrimRight(b.o.AccessBaseURL, "/") + AccessPath + token
	return token, nil
}

func tokenOf(link string) string {
	if i := strings.LastIndex(link, AccessPath); i >= 0 {
		return link[i+len(AccessPath):]
	}
	return ""
}

// maxPINDraws bounds the retries of a PIN the cloud says another grant of
// the box holds: a box has at most a few hundred live codes out of a
// million, so one redraw almost always does.
const maxPINDraws = 20

// finish does the steps still pending on bk: the grant in the cloud, the
// custom fields in Fleetio, the driver's notification. Each step is stored
// as done once it is, so a retry after a failure redoes only what is left.
func (b *Integration) finish(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment, bk Booking) error {
	var pin string
	if bk.SealedPIN != nil {
		var err error
		if pin, err = b.o.Store.openPIN(bk.AssignmentID, bk.SealedPIN); err != nil {
			return fmt.Errorf("%w: %w", errPermanent, err)
		}
	}
	if bk.PendingGrant {
		if bk.DriverCode {
			if _, err := b.ensureDriverGrant(bk.ContactID, bk.BoxID); err != nil {
				if !errors.Is(err, ErrDriverCodeInUse) {
					return err
				}
				// The driver can't have their code on this box: they still
				// get the key, with a PIN of this booking.
				b.log.Error("driver's own code is in use on the box by another grant: this booking gets a per-assignment PIN; set the driver another code",
					"assignment", bk.AssignmentID, "contact", bk.ContactID, "box", bk.BoxID)
				bk.DriverCode = false
				if pin, err = NewPIN(b.o.Rand, PINLength); err != nil {
					return err
				}
				bk.SealedPIN = b.o.Store.sealPIN(bk.AssignmentID, pin)
				if err := b.o.Store.PutBooking(bk, ""); err != nil {
					return err
				}
			}
		}
		if bk.DriverRef == "" {
			bk.DriverRef = DriverRef(bk.ContactID)
		}
		g := box.Grant{ID: bk.GrantID, Kind: box.KindBooking, KeyIDs: []string{bk.KeyID}, From: bk.From, Until: bk.Until,
			Source: GrantSource, DriverRef: bk.DriverRef}
		for i := 0; ; i++ {
			rev, err := b.putGrantRev(bk.BoxID, g, pin)
			if err == nil {
				b.grantPushed(&bk, rev)
				break
			}
			if !errors.Is(err, box.ErrCodeInUse) || pin == "" || i >= maxPINDraws {
				return fmt.Errorf("put grant %s on box %s: %w", g.ID, bk.BoxID, err)
			}
			if pin, err = NewPIN(b.o.Rand, codeLength(bk)); err != nil {
				return err
			}
			bk.SealedPIN = b.o.Store.sealPIN(bk.AssignmentID, pin)
			if err := b.o.Store.PutBooking(bk, ""); err != nil {
				return err
			}
		}
		bk.PendingGrant = false
		if err := b.o.Store.PutBooking(bk, ""); err != nil {
			return err
		}
		// A status that arrived between the put and the line above found
		// the booking's older revision: look at the box's once more. A
		// failure here costs the receipt a minute (CheckLive catches up),
		// not the delivery.
		if err := b.liveFromStatus(&bk); err != nil {
			b.log.Warn("booking's live receipt not checked (caught up later)", "assignment", bk.AssignmentID, "box", bk.BoxID, "err", err)
		}
	}
	if c == nil {
		// From a payload: the grant is live; the write-back and the
		// message (Fleetio calls) wait for the confirm, the PIN sealed
		// until then.
		return nil
	}
	// told is the code the driver types: the booking's PIN, or their
	// driver code.
	told, tellCode := pin, pin != ""
	if bk.DriverCode {
		code, dc, err := b.driverCodeFor(bk.ContactID)
		if err != nil {
			return err
		}
		if !dc.Boxes[bk.BoxID] {
			// A code cleared, or drawn again, since the grant was made.
			if code, err = b.ensureDriverGrant(bk.ContactID, bk.BoxID); err != nil {
				return err
			}
		}
		told, tellCode = code, bk.PendingNotify == notify.KindBookingCreated || bk.NotifyCode
	}
	info, err := b.describe(bk)
	if err != nil {
		return err
	}
	if bk.PendingWriteBack {
		fields := map[string]any{
			fleetio.FieldAccessInstructions: info.instructions(),
			fleetio.FieldAccessLink:         bk.AccessLink,
		}
		if told != "" {
			fields[fleetio.FieldAccessCode] = told
		}
		up, err := c.PatchAssignmentCustomFields(ctx, bk.AssignmentID, fields)
		b.fleetioErr(err)
		if err != nil {
			return fmt.Errorf("write back assignment %d: %w", bk.AssignmentID, err)
		}
		switch {
		case !up.UpdatedAt.After(bk.UpdatedAt):
		case sameVersion(up, a):
			bk.UpdatedAt = up.UpdatedAt // our own write: its webhook is an echo
		default:
			b.log.Info("assignment changed in Fleetio while it was being written back: its next delivery is acted on",
				"assignment", bk.AssignmentID)
		}
		bk.PendingWriteBack = false
		if err := b.o.Store.PutBooking(bk, ""); err != nil {
			return err
		}
	}
	if bk.PendingNotify != "" {
		var code string
		if tellCode {
			code = told
		}
		if err := b.tellDriver(ctx, c, a, bk.ContactMethod, bk.PendingNotify, info, code); err != nil {
			return err
		}
		bk.PendingNotify, bk.NotifyCode = "", false
	}
	// Everyone who needs the PIN has it: the cloud (encrypted), Fleetio's
	// field and the driver. The bridge forgets it.
	bk.SealedPIN = nil
	return b.o.Store.PutBooking(bk, "")
}

// end revokes the booking of an assignment that is gone (a nil), ended, or
// whose vehicle is no longer linked, clears the custom fields where the
// assignment still exists, and records the booking in state st. c nil
// (from a payload): the clearing is left to the confirm (PendingClear).
func (b *Integration) end(ctx context.Context, c *fleetio.Client, a *fleetio.VehicleAssignment, id int64, bk Booking, have bool, st BookingState) error {
	if err := b.o.Store.DeleteReservation(id); err != nil {
		return err
	}
	if !have || bk.State != BookingActive {
		if a == nil {
			if have && bk.PendingNotify == notify.KindBookingCancelled && c != nil {
				// Ended from a deletion's payload: the driver is told now.
				if err := b.tellCancelled(ctx, c, bk); err != nil {
					return err
				}
				bk.PendingNotify = ""
				return b.o.Store.PutBooking(bk, "")
			}
			return nil // nothing was made of it
		}
		// Recorded, no grant (an unlinked vehicle, or an assignment that
		// was over before the bridge heard of it).
		from, until := window(*a)
		if !have {
			bk = Booking{AssignmentID: a.ID, PendingConfirm: bk.PendingConfirm, ConfirmID: bk.ConfirmID}
		}
		if bk.PendingClear && c != nil {
			// Ended from a payload: the fields it had are cleared now.
			if err := b.clearFields(ctx, c, a, &bk); err != nil {
				return err
			}
		}
		bk.VehicleID, bk.ContactID, bk.ContactName, bk.From, bk.Until = a.VehicleID, a.ContactID, contactName(*a), from, until
		bk.State, bk.UpdatedAt, bk.Changed = st, a.UpdatedAt, b.o.Now()
		return b.o.Store.PutBooking(bk, "")
	}
	if _, err := b.revokeGrant(bk.BoxID, bk.GrantID); err != nil && !errors.Is(err, cloud.ErrNotFound) {
		return fmt.Errorf("revoke grant %s on box %s: %w", bk.GrantID, bk.BoxID, err)
	}
	if a != nil {
		bk.UpdatedAt = a.UpdatedAt
		if c == nil {
			bk.PendingClear = true
		} else if err := b.clearFields(ctx, c, a, &bk); err != nil {
			return err
		}
	}
	var tellLater bool
	if a == nil && (bk.Until.IsZero() || b.o.Now().Before(bk.Until)) && bk.PendingNotify != notify.KindBookingCreated {
		// Deleted before its end: the driver still holds a PIN and may be
		// on the way to the box. Tell them (revoking again on a retry is
		// no change); from a deletion's payload, once the confirm has
		// read it gone (their contact is Fleetio's). A driver never told
		// of the booking (made from a payload, unconfirmed) is not told
		// of its end either.
		if c == nil {
			tellLater = true
		} else if err := b.tellCancelled(ctx, c, bk); err != nil {
			return err
		}
	}
	// The access link's token stays indexed: its page says 410 Gone.
	bk.State, bk.SealedPIN, bk.Changed = st, nil, b.o.Now()
	bk.PendingGrant, bk.PendingWriteBack, bk.PendingNotify, bk.NotifyCode = false, false, "", false
	if tellLater {
		bk.PendingNotify = notify.KindBookingCancelled
	}
	b.log.Info("booking ended", "assignment", id, "grant", bk.GrantID, "box", bk.BoxID, "state", st)
	if err := b.o.Store.PutBooking(bk, ""); err != nil {
		return err
	}
	if bk.DriverCode {
		return b.pruneDriverGrant(bk.ContactID, bk.BoxID)
	}
	return nil
}

// clearFields clears the custom fields of assignment a (ended) and takes
// the PATCH's updated_at when it is our own write.
func (b *Integration) clearFields(ctx context.Context, c *fleetio.Client, a *fleetio.VehicleAssignment, bk *Booking) error {
	up, err := c.PatchAssignmentCustomFields(ctx, a.ID, map[string]any{
		fleetio.FieldAccessInstructions: nil, fleetio.FieldAccessLink: nil, fleetio.FieldAccessCode: nil,
	})
	b.fleetioErr(err)
	switch {
	case errors.Is(err, fleetio.ErrNotFound): // deleted meanwhile: nothing to clear
	case err != nil:
		return fmt.Errorf("clear fields of assignment %d: %w", a.ID, err)
	case up.UpdatedAt.After(bk.UpdatedAt) && sameVersion(up, *a):
		bk.UpdatedAt = up.UpdatedAt
	}
	bk.PendingClear = false
	return nil
}

// prompt records a reservation for a vehicle linked in Prompt mode and tells
// the admin once.
func (b *Integration) prompt(ctx context.Context, a fleetio.VehicleAssignment, link Link) error {
	from, until := window(a)
	r, had, err := b.o.Store.Reservation(a.ID)
	if err != nil {
		return err
	}
	r.AssignmentID, r.VehicleID, r.ContactID, r.ContactName = a.ID, a.VehicleID, a.ContactID, contactName(a)
	r.BoxID, r.KeyID, r.From, r.Until, r.UpdatedAt = link.BoxID, link.KeyID, from, until, a.UpdatedAt
	if !had {
		r.Notified = false
	}
	if err := b.o.Store.PutReservation(r); err != nil {
		return err
	}
	if r.Notified || b.o.Notifier == nil {
		return nil
	}
	data := map[string]any{notify.DataDriver: r.ContactName, notify.DataVehicle: vehicleName(a), notify.DataBox: link.BoxID,
		notify.DataKey: link.KeyID, notify.DataStart: b.when(from), notify.DataEnd: b.until(until),
		dataAssignment: strconv.FormatInt(a.ID, 10)}
	if err := b.send(ctx, b.o.Admin, b.o.AdminMethod, notify.KindPromptReservation, data); err != nil {
		return fmt.Errorf("notify admin of assignment %d: %w", a.ID, err)
	}
	r.Notified = true
	return b.o.Store.PutReservation(r)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// putGrant puts a grant in the cloud and counts it.
func (b *Integration) putGrant(boxID string, g box.Grant, code string) error {
	_, err := b.putGrantRev(boxID, g, code)
	return err
}

// putGrantRev is putGrant that returns the box's records revision that
// holds the grant (the box's revision as it is when the put changed
// nothing).
func (b *Integration) putGrantRev(boxID string, g box.Grant, code string) (uint64, error) {
	rev, err := b.o.Cloud.PutGrant(boxID, g, code)
	if err != nil {
		return 0, err
	}
	b.stats.grantsPushed.Add(1)
	return rev, nil
}

// revokeGrant revokes a grant in the cloud and counts it.
func (b *Integration) revokeGrant(boxID, grantID string) (uint64, error) {
	rev, err := b.o.Cloud.RevokeGrant(boxID, grantID)
	if err == nil {
		b.stats.grantsRevoked.Add(1)
	}
	return rev, err
}

func (b *Integration) getContact(ctx context.Context, c *fleetio.Client, id int64) (fleetio.Contact, error) {
	ct, err := c.GetContact(ctx, id)
	return ct, b.fleetioErr(err)
}
