package bookings

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// Connect checks s against Fleetio (GET users/me with its API key and
// account token) and, if Fleetio takes them, stores them: from then on the
// webhook takes deliveries. Bad credentials store nothing. The secrets are
// never logged.
func (b *Integration) Connect(ctx context.Context, s Settings) (fleetio.User, error) {
	if err := s.Validate(); err != nil {
		return fleetio.User{}, err
	}
	if err := s.CodeMode.Validate(); err != nil {
		return fleetio.User{}, err
	}
	c, err := b.o.NewClient(s)
	if err != nil {
		return fleetio.User{}, fmt.Errorf("fleetio connect: %w", err)
	}
	u, err := c.Me(ctx)
	if err != nil {
		b.fleetioErr(err)
		return fleetio.User{}, fmt.Errorf("fleetio connect: checking the API key and account token (users/me): %w", err)
	}
	// Exclusive: the settings may carry a code mode (see SetCodeMode).
	_, unlock, err := b.exclusive(ctx)
	if err != nil {
		return fleetio.User{}, fmt.Errorf("fleetio connect: %w", err)
	}
	err = b.o.Store.SetSettings(s)
	unlock()
	if err != nil {
		return fleetio.User{}, fmt.Errorf("fleetio connect: store settings: %w", err)
	}
	b.log.Info("fleetio connected", "settings", s, "user", u.ID)
	b.Wake()
	return u, nil
}

// Connected reports whether the integration has settings (the webhook
// takes deliveries).
func (b *Integration) Connected() bool {
	_, err := b.o.Store.Settings()
	return err == nil
}

// DisconnectReport says what Disconnect did with the integration's bookings.
type DisconnectReport struct {
	// Revoked are the bookings that had not started: their grants are
	// revoked.
	Revoked []Booking `json:"revoked"`
	// Kept are the bookings in progress: their grants stay until their end
	// so that the driver can bring the key back (an open-ended one stays
	// until the admin revokes it).
	Kept []Booking `json:"kept"`
	// DeliveriesDropped were queued and will not be processed;
	// ReservationsDropped were pending Prompt reservations.
	DeliveriesDropped   int `json:"deliveries_dropped"`
	ReservationsDropped int `json:"reservations_dropped"`
	// FieldsNotCleared lists the assignments whose Keycafe fields could not
	// be cleared in Fleetio (best effort; the grants are revoked anyway).
	FieldsNotCleared []int64 `json:"fields_not_cleared,omitempty"`
}

// disconnectClearTimeout bounds the best-effort clearing of Fleetio's fields
// on disconnect: an admin waits on it, and the revocation matters, not the
// text left in Fleetio.
const disconnectClearTimeout = 20 * time.Second

// Disconnect ends the integration: the webhook answers 503 from now on, the
// grants of bookings that have not started are revoked (their Fleetio fields
// cleared, best effort), bookings in progress keep their grant until their
// end, queued deliveries and reservations are dropped, and the secrets (the
// connection settings, sealed PINs and driver codes) are forgotten. Links and
// the booking records stay, for the admin and a reconnect.
func (b *Integration) Disconnect(ctx context.Context) (DisconnectReport, error) {
	var rep DisconnectReport
	c, cerr := b.fleetio()
	if errors.Is(cerr, ErrNotConnected) {
		return rep, ErrNotConnected
	}
	// First: no more deliveries are stored.
	if err := b.o.Store.ForgetSettings(); err != nil {
		return rep, fmt.Errorf("fleetio disconnect: forget settings: %w", err)
	}
	b.mu.Lock()
	b.client = nil
	b.mu.Unlock()

	ctx, unlock, err := b.exclusive(ctx)
	if err != nil {
		return rep, fmt.Errorf("fleetio disconnect: %w", err)
	}
	defer unlock()
	if rep.DeliveriesDropped, rep.ReservationsDropped, err = b.o.Store.DropQueue("fleetio integration disconnected"); err != nil {
		return rep, fmt.Errorf("fleetio disconnect: drop queue: %w", err)
	}
	bks, err := b.o.Store.Bookings()
	if err != nil {
		return rep, fmt.Errorf("fleetio disconnect: %w", err)
	}
	now := b.o.Now()
	cctx, cancel := context.WithTimeout(ctx, disconnectClearTimeout)
	defer cancel()
	var errs []error
	for _, bk := range bks {
		if bk.State != BookingActive {
			continue
		}
		if !bk.Until.IsZero() && !now.Before(bk.Until) {
			continue // over: the grant's own window already ended it
		}
		if !now.Before(bk.From) {
			rep.Kept = append(rep.Kept, bk)
			continue
		}
		if _, err := b.revokeGrant(bk.BoxID, bk.GrantID); err != nil && !errors.Is(err, cloud.ErrNotFound) {
			errs = append(errs, fmt.Errorf("revoke grant %s on box %s: %w", bk.GrantID, bk.BoxID, err))
			continue
		}
		bk.State, bk.SealedPIN, bk.Changed = BookingEnded, nil, now
		bk.PendingGrant, bk.PendingWriteBack, bk.PendingNotify, bk.NotifyCode = false, false, "", false
		if err := b.o.Store.PutBooking(bk, ""); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Revoked = append(rep.Revoked, bk)
		if cerr == nil {
			_, err := c.PatchAssignmentCustomFields(cctx, bk.AssignmentID, map[string]any{
				fleetio.FieldAccessInstructions: nil, fleetio.FieldAccessLink: nil, fleetio.FieldAccessCode: nil,
			})
			if b.fleetioErr(err) != nil && !errors.Is(err, fleetio.ErrNotFound) {
				b.log.Warn("disconnect: clearing the Keycafe fields failed", "assignment", bk.AssignmentID, "err", err)
				rep.FieldsNotCleared = append(rep.FieldsNotCleared, bk.AssignmentID)
			}
		}
	}
	if err := b.pruneDriverGrants(); err != nil {
		errs = append(errs, err)
	}
	// Driver codes go with the secrets: a kept booking's driver grant stays
	// in the cloud (encrypted there) until the admin revokes it.
	if err := b.o.Store.forgetSecrets(); err != nil {
		errs = append(errs, fmt.Errorf("forget secrets: %w", err))
	}
	b.log.Info("fleetio disconnected", "revoked", len(rep.Revoked), "kept", len(rep.Kept),
		"deliveries_dropped", rep.DeliveriesDropped, "reservations_dropped", rep.ReservationsDropped)
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("fleetio disconnect: %w", err)
	}
	return rep, nil
}

// SetLink links a vehicle to a key of a box (or changes the link, the
// method included). The key must be one of the box's keys in the cloud;
// when connected, the vehicle must exist in Fleetio. A key is linked to one
// vehicle at most.
func (b *Integration) SetLink(ctx context.Context, l Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	keys, _, err := b.o.Cloud.Records(l.BoxID)
	if err != nil {
		return fmt.Errorf("link vehicle %d: box %s: %w", l.VehicleID, l.BoxID, err)
	}
	found := false
	for _, k := range keys {
		found = found || k.ID == l.KeyID
	}
	if !found {
		return fmt.Errorf("link vehicle %d: box %s has no key %q: %w", l.VehicleID, l.BoxID, l.KeyID, ErrNotFound)
	}
	links, err := b.o.Store.Links()
	if err != nil {
		return err
	}
	for _, o := range links {
		if o.VehicleID != l.VehicleID && o.BoxID == l.BoxID && o.KeyID == l.KeyID {
			return fmt.Errorf("%w link of vehicle %d: key %s of box %s is linked to vehicle %d", ErrInvalid, l.VehicleID, l.KeyID, l.BoxID, o.VehicleID)
		}
	}
	if c, err := b.fleetio(); err == nil {
		_, err := c.GetVehicle(ctx, l.VehicleID)
		if errors.Is(err, fleetio.ErrNotFound) {
			return fmt.Errorf("link vehicle %d: no such vehicle in Fleetio: %w", l.VehicleID, ErrNotFound)
		}
		if b.fleetioErr(err) != nil {
			return fmt.Errorf("link vehicle %d: reading the vehicle from Fleetio: %w", l.VehicleID, err)
		}
	} else if !errors.Is(err, ErrNotConnected) {
		return err
	}
	if err := b.o.Store.PutLink(l); err != nil {
		return err
	}
	b.log.Info("vehicle linked", "vehicle", l.VehicleID, "box", l.BoxID, "key", l.KeyID, "method", l.Mode)
	return nil
}

// Unlink removes a vehicle's link. Its bookings end with the next word from
// Fleetio about them (or a reconcile).
func (b *Integration) Unlink(vehicleID int64) error {
	_, ok, err := b.o.Store.LinkOf(vehicleID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("unlink vehicle %d: %w", vehicleID, ErrNotFound)
	}
	if err := b.o.Store.DeleteLink(vehicleID); err != nil {
		return err
	}
	b.log.Info("vehicle unlinked", "vehicle", vehicleID)
	return nil
}

// VehicleLink is a Fleetio vehicle and its link (nil: not linked).
type VehicleLink struct {
	Vehicle fleetio.Vehicle `json:"vehicle"`
	Link    *Link           `json:"link"`
}

// Vehicles lists Fleetio's vehicles, each with its link.
func (b *Integration) Vehicles(ctx context.Context) ([]VehicleLink, error) {
	c, err := b.fleetio()
	if err != nil {
		return nil, err
	}
	vs, err := c.ListVehicles(ctx, fleetio.VehicleFilter{})
	if b.fleetioErr(err) != nil {
		return nil, fmt.Errorf("list vehicles: %w", err)
	}
	links, err := b.o.Store.Links()
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]Link, len(links))
	for _, l := range links {
		byID[l.VehicleID] = l
	}
	out := make([]VehicleLink, 0, len(vs))
	for _, v := range vs {
		vl := VehicleLink{Vehicle: v}
		if l, ok := byID[v.ID]; ok {
			vl.Link = &l
		}
		out = append(out, vl)
	}
	return out, nil
}

// Reservations lists the pending Prompt reservations.
func (b *Integration) Reservations() ([]Reservation, error) { return b.o.Store.Reservations() }

// Bookings lists the bookings made from assignments.
func (b *Integration) Bookings() ([]Booking, error) { return b.o.Store.Bookings() }
