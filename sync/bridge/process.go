package bridge

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

// Run processes the delivery queue until ctx is done: at once, whenever a
// webhook is stored (Wake), and when a retry is due.
func (b *Bridge) Run(ctx context.Context) error {
	for {
		next, err := b.ProcessDue(ctx)
		if err != nil && ctx.Err() == nil {
			b.log.Error("delivery queue", "err", err)
		}
		wait := pollInterval
		if !next.IsZero() {
			wait = min(max(next.Sub(b.o.Now()), 0), pollInterval)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-b.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// ProcessDue processes every queued delivery that is due, oldest first, and
// returns when the next one not yet due will be (zero: none).
func (b *Bridge) ProcessDue(ctx context.Context) (next time.Time, err error) {
	// One delivery at a time: two workers on one booking would race on its
	// steps (two PINs drawn, two PATCHes).
	b.work.Lock()
	defer b.work.Unlock()
	due, next, err := b.o.Store.Queued(b.o.Now())
	if err != nil {
		return time.Time{}, fmt.Errorf("read queue: %w", err)
	}
	for _, d := range due {
		if ctx.Err() != nil {
			return next, ctx.Err()
		}
		perr := b.process(ctx, d)
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
			if next.IsZero() || d.NextAttempt.Before(next) {
				next = d.NextAttempt
			}
			log.Warn("delivery will be retried", "err", perr, "at", d.NextAttempt)
		}
		if err := b.o.Store.UpdateDelivery(d); err != nil {
			return next, fmt.Errorf("delivery %d: %w", d.ID, err)
		}
	}
	return next, nil
}

// backoff doubles from MinRetry to MaxRetry; a 429's Retry-After is honoured
// when it asks for longer.
func (b *Bridge) backoff(attempts int, err error) time.Duration {
	d := b.o.MinRetry
	for i := 1; i < attempts && d < b.o.MaxRetry; i++ {
		d *= 2
	}
	var ae *fleetio.APIError
	if errors.As(err, &ae) && ae.RetryAfter > d {
		d = ae.RetryAfter
	}
	return min(d, b.o.MaxRetry)
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
func (b *Bridge) process(ctx context.Context, d Delivery) error {
	wh, err := fleetio.ParseWebhook(d.Body)
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	pa, err := fleetio.ParseAssignment(wh.Payload)
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	c, err := b.fleetio()
	if err != nil {
		return err
	}
	bk, have, err := b.o.Store.Booking(pa.ID)
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
	if errors.Is(err, fleetio.ErrNotFound) {
		return b.end(ctx, c, nil, pa.ID, bk, have, BookingEnded)
	}
	if err != nil {
		return fmt.Errorf("read assignment %d back: %w", pa.ID, err)
	}
	return b.reconcile(ctx, c, a, bk, have)
}

func (bk Booking) pending() bool {
	return bk.PendingGrant || bk.PendingWriteBack || bk.PendingNotify != ""
}

// reconcile makes the booking of assignment a match a.
func (b *Bridge) reconcile(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment, bk Booking, have bool) error {
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
		return b.prompt(ctx, a, link)
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

// book creates or updates the booking grant of an Automatic assignment.
func (b *Bridge) book(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment, link Link, bk Booking, have bool) error {
	from, until := window(a)
	var token string
	switch {
	case !have || bk.State != BookingActive:
		bk = Booking{AssignmentID: a.ID, GrantID: GrantID(a.ID), State: BookingActive, PendingNotify: NotifyBookingCreated}
		var err error
		if token, err = b.newBookingSecrets(&bk); err != nil {
			return err
		}
	default:
		driverChanged := bk.ContactID != a.ContactID
		boxChanged := bk.BoxID != link.BoxID
		changed := driverChanged || boxChanged || bk.KeyID != link.KeyID || !bk.From.Equal(from) || !bk.Until.Equal(until)
		if !changed {
			// Nothing the booking depends on moved: finish what a failed
			// attempt left (if anything), redo nothing.
			if a.UpdatedAt.After(bk.UpdatedAt) {
				bk.UpdatedAt = a.UpdatedAt
			}
			if err := b.o.Store.PutBooking(bk, ""); err != nil || !bk.pending() {
				return err
			}
			return b.finish(ctx, c, a, bk)
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
			if token, err = b.newBookingSecrets(&bk); err != nil {
				return err
			}
			bk.PendingNotify = NotifyBookingCreated
		} else if changed && bk.PendingNotify == "" {
			bk.PendingNotify = NotifyBookingUpdated
		}
	}
	bk.VehicleID, bk.ContactID, bk.ContactName = a.VehicleID, a.ContactID, contactName(a)
	bk.BoxID, bk.KeyID, bk.From, bk.Until = link.BoxID, link.KeyID, from, until
	bk.UpdatedAt = a.UpdatedAt
	bk.PendingGrant, bk.PendingWriteBack = true, true
	bk.Changed = b.o.Now()
	if err := b.o.Store.PutBooking(bk, token); err != nil {
		return err
	}
	if err := b.o.Store.DeleteReservation(a.ID); err != nil {
		return err
	}
	return b.finish(ctx, c, a, bk)
}

// newBookingSecrets gives bk a new PIN (sealed) and access link, and returns
// the link's token for the store's index.
func (b *Bridge) newBookingSecrets(bk *Booking) (string, error) {
	pin, err := NewPIN(b.o.Rand, PINLength)
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
func (b *Bridge) finish(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment, bk Booking) error {
	var pin string
	if bk.SealedPIN != nil {
		var err error
		if pin, err = b.o.Store.openPIN(bk.AssignmentID, bk.SealedPIN); err != nil {
			return fmt.Errorf("%w: %w", errPermanent, err)
		}
	}
	if bk.PendingGrant {
		g := box.Grant{ID: bk.GrantID, Kind: box.KindBooking, KeyIDs: []string{bk.KeyID}, From: bk.From, Until: bk.Until,
			Source: GrantSource, DriverRef: strconv.FormatInt(bk.ContactID, 10)}
		for i := 0; ; i++ {
			err := b.putGrant(bk.BoxID, g, pin)
			if err == nil {
				break
			}
			if !errors.Is(err, cloud.ErrCodeInUse) || pin == "" || i >= maxPINDraws {
				return fmt.Errorf("put grant %s on box %s: %w", g.ID, bk.BoxID, err)
			}
			if pin, err = NewPIN(b.o.Rand, PINLength); err != nil {
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
	info, err := b.describe(bk)
	if err != nil {
		return err
	}
	if bk.PendingWriteBack {
		fields := map[string]any{
			fleetio.FieldAccessInstructions: info.instructions(),
			fleetio.FieldAccessLink:         bk.AccessLink,
		}
		if pin != "" {
			fields[fleetio.FieldAccessCode] = pin
		}
		up, err := c.PatchAssignmentCustomFields(ctx, bk.AssignmentID, fields)
		b.fleetioErr(err)
		if err != nil {
			return fmt.Errorf("write back assignment %d: %w", bk.AssignmentID, err)
		}
		if up.UpdatedAt.After(bk.UpdatedAt) {
			bk.UpdatedAt = up.UpdatedAt // our own write: its webhook is an echo
		}
		bk.PendingWriteBack = false
		if err := b.o.Store.PutBooking(bk, ""); err != nil {
			return err
		}
	}
	if bk.PendingNotify != "" {
		if err := b.notify(ctx, c, a, bk.PendingNotify, info, pin); err != nil {
			return err
		}
		bk.PendingNotify = ""
	}
	// Everyone who needs the PIN has it: the cloud (encrypted), Fleetio's
	// field and the driver. The bridge forgets it.
	bk.SealedPIN = nil
	return b.o.Store.PutBooking(bk, "")
}

// end revokes the booking of an assignment that is gone (a nil), ended, or
// whose vehicle is no longer linked, clears the custom fields where the
// assignment still exists, and records the booking in state st.
func (b *Bridge) end(ctx context.Context, c *fleetio.Client, a *fleetio.VehicleAssignment, id int64, bk Booking, have bool, st BookingState) error {
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
		case up.UpdatedAt.After(bk.UpdatedAt):
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
	bk.PendingGrant, bk.PendingWriteBack, bk.PendingNotify = false, false, ""
	b.log.Info("booking ended", "assignment", id, "grant", bk.GrantID, "box", bk.BoxID, "state", st)
	return b.o.Store.PutBooking(bk, "")
}

// prompt records a reservation for a vehicle linked in Prompt mode and tells
// the admin once.
func (b *Bridge) prompt(ctx context.Context, a fleetio.VehicleAssignment, link Link) error {
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

func (b *Bridge) notify(ctx context.Context, c *fleetio.Client, a fleetio.VehicleAssignment, kind string, info bookingInfo, pin string) error {
	if b.o.Notifier == nil {
		return nil
	}
	to := Recipient{ContactID: a.ContactID, Name: contactName(a)}
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

func (b *Bridge) notifyCancelled(ctx context.Context, c *fleetio.Client, bk Booking) error {
	if b.o.Notifier == nil {
		return nil
	}
	to := Recipient{ContactID: bk.ContactID, Name: bk.ContactName}
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
func (b *Bridge) putGrant(boxID string, g box.Grant, code string) error {
	if _, err := b.o.Cloud.PutGrant(boxID, g, code); err != nil {
		return err
	}
	b.stats.grantsPushed.Add(1)
	return nil
}

// revokeGrant revokes a grant in the cloud and counts it.
func (b *Bridge) revokeGrant(boxID, grantID string) (uint64, error) {
	rev, err := b.o.Cloud.RevokeGrant(boxID, grantID)
	if err == nil {
		b.stats.grantsRevoked.Add(1)
	}
	return rev, err
}

func (b *Bridge) getContact(ctx context.Context, c *fleetio.Client, id int64) (fleetio.Contact, error) {
	ct, err := c.GetContact(ctx, id)
	return ct, b.fleetioErr(err)
}
