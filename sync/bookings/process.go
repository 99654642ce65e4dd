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
	"github.com/smartbox-oss/smartbox/sync/internal/retry"
)

// GrantSource is the Source of the grants the bridge makes.
const GrantSource = "fleetio"

// pollInterval bounds how long the worker sleeps with nothing due: a
// safety net should a wake-up be missed (a delivery stored by another path).
const pollInterval = time.Minute

// errPermanent marks a delivery that will never succeed as it is.
var errPermanent = errors.New("permanent")

// GrantID is the id of the grant made for a Fleetio assignment: stable, so
// that every delivery about an assignment touches the same grant.
func GrantID(assignmentID int64) string { return "fleetio-" + strconv.FormatInt(assignmentID, 10) }

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

func (bk Booking) pending() bool {
	return bk.PendingGrant || bk.PendingWriteBack || bk.PendingNotify != ""
}

// applyAssignment makes the booking of assignment a match a.
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
	if link.Method == MethodPrompt && !(have && bk.State == BookingActive) {
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
		bk = Booking{AssignmentID: a.ID, GrantID: GrantID(a.ID), State: BookingActive, PendingNotify: NotifyBookingCreated}
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
			bk.PendingNotify = NotifyBookingCreated
		} else if changed && bk.PendingNotify == "" {
			bk.PendingNotify = NotifyBookingUpdated
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
			err := b.putGrant(bk.BoxID, g, pin)
			if err == nil {
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
		told, tellCode = code, bk.PendingNotify == NotifyBookingCreated || bk.NotifyCode
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
		if err := b.notify(ctx, c, a, bk.ContactMethod, bk.PendingNotify, info, code); err != nil {
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
// assignment still exists, and records the booking in state st.
func (b *Integration) end(ctx context.Context, c *fleetio.Client, a *fleetio.VehicleAssignment, id int64, bk Booking, have bool, st BookingState) error {
	if err := b.o.Store.DeleteReservation(id); err != nil {
		return err
	}
	if !have || bk.State != BookingActive {
		if a == nil {
			return nil // nothing was made of it
		}
		// Recorded, no grant (an unlinked vehicle, or an assignment that
		// was over before the bridge heard of it).
		from, until := window(*a)
		if !have {
			bk = Booking{AssignmentID: a.ID}
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
		up, err := c.PatchAssignmentCustomFields(ctx, id, map[string]any{
			fleetio.FieldAccessInstructions: nil, fleetio.FieldAccessLink: nil, fleetio.FieldAccessCode: nil,
		})
		b.fleetioErr(err)
		switch {
		case errors.Is(err, fleetio.ErrNotFound): // deleted meanwhile: nothing to clear
		case err != nil:
			return fmt.Errorf("clear fields of assignment %d: %w", id, err)
		case up.UpdatedAt.After(bk.UpdatedAt) && sameVersion(up, *a):
			bk.UpdatedAt = up.UpdatedAt
		}
	}
	if a == nil && (bk.Until.IsZero() || b.o.Now().Before(bk.Until)) {
		// Deleted before its end: the driver still holds a PIN and may be
		// on the way to the box. Tell them (revoking again on a retry is
		// no change).
		if err := b.notifyCancelled(ctx, c, bk); err != nil {
			return err
		}
	}
	// The access link's token stays indexed: its page says 410 Gone.
	bk.State, bk.SealedPIN, bk.Changed = st, nil, b.o.Now()
	bk.PendingGrant, bk.PendingWriteBack, bk.PendingNotify, bk.NotifyCode = false, false, "", false
	b.log.Info("booking ended", "assignment", id, "grant", bk.GrantID, "box", bk.BoxID, "state", st)
	if err := b.o.Store.PutBooking(bk, ""); err != nil {
		return err
	}
	if bk.DriverCode {
		return b.pruneDriverGrant(bk.ContactID, bk.BoxID)
	}
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
	data := map[string]string{"driver": r.ContactName, "vehicle": vehicleName(a), "box": link.BoxID, "key": link.KeyID,
		"from": fmtTime(from), "until": fmtTime(until), "assignment": strconv.FormatInt(a.ID, 10)}
	if err := b.notified(b.o.Notifier.Notify(ctx, b.o.Admin, NotifyPromptBooking, data)); err != nil {
		return fmt.Errorf("notify admin of assignment %d: %w", a.ID, err)
	}
	r.Notified = true
	return b.o.Store.PutReservation(r)
}

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

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// putGrant puts a grant in the cloud and counts it.
func (b *Integration) putGrant(boxID string, g box.Grant, code string) error {
	if _, err := b.o.Cloud.PutGrant(boxID, g, code); err != nil {
		return err
	}
	b.stats.grantsPushed.Add(1)
	return nil
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

// Events of the deliveries the bridge queues itself (see
// Store.AddInternalDelivery): the worker reads the assignment back and acts,
// as for Fleetio's.
const (
	EventCreateBooking     = "smartbox_create_booking"      // the admin approved a Prompt reservation
	EventDriverCodeChanged = "smartbox_driver_code_changed" // a booking's driver code changed
)

// BookingEdit is what the admin may change when making the booking of a
// Prompt reservation: the window (nil: Fleetio's) and the contact method.
type BookingEdit struct {
	From          *time.Time `json:"from,omitempty"`
	Until         *time.Time `json:"until,omitempty"`
	ContactMethod string     `json:"contact,omitempty"` // ContactEmail, ContactSMS or "" (email if the driver has an address)
}

// apply returns the window of a booking whose Fleetio window is [from,
// until), and whether the edit changed it.
func (e BookingEdit) apply(from, until time.Time) (time.Time, time.Time, bool) {
	f, u := from, until
	if e.From != nil {
		f = *e.From
	}
	if e.Until != nil {
		u = *e.Until
	}
	return f, u, !f.Equal(from) || !u.Equal(until)
}

// CreateBooking makes the booking of a pending Prompt reservation, with the
// admin's edits, then goes on exactly as for an Automatic vehicle: grant,
// write-back, the driver told by the chosen method. The approval is stored
// and queued before any of it happens, so a crash half-way is finished by the
// worker, and a Fleetio or notifier failure is retried by it (the error says
// so); calling CreateBooking again for a booking already made returns it.
// The edited window stays until Fleetio's window of the assignment changes.
func (b *Integration) CreateBooking(ctx context.Context, assignmentID int64, e BookingEdit) (Booking, error) {
	switch e.ContactMethod {
	case "", ContactEmail, ContactSMS:
	default:
		return Booking{}, fmt.Errorf("%w contact method %q: want %q, %q or empty", ErrInvalid, e.ContactMethod, ContactEmail, ContactSMS)
	}
	c, err := b.fleetio()
	if err != nil {
		return Booking{}, err
	}
	b.work.Lock()
	defer b.work.Unlock()
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
