package bookings

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// The live receipt: the bridge knows when a box has applied the grant of a
// booking. Each put of a booking's grant returns the box's records revision
// that holds it (Booking.GrantRev: a changed PIN or window is a new one); a
// box publishes its status, with the revision it holds, after it applies
// records; the first status at GrantRev or later makes the booking live
// (Booking.LiveAt: when the cloud received that status). A grant changed
// after it was live is not live again until the box reports the new
// revision. HandleStatus hears statuses as they arrive (cloud.OnStatus);
// CatchUpLive reads the statuses the cloud kept, for those that arrived
// while the bridge was down or raced a grant's put; CheckLive raises a
// not_live alert for a booking whose start is near and whose grant the box
// has not applied (the box is offline, or refusing batches).

// DefaultLiveAlertBefore is Options.LiveAlertBefore left zero: a booking
// not live ten minutes before its start raises not_live. A box applies a
// grant within seconds when it is online; ten minutes leaves the admin
// time to act before the driver is at the box.
const DefaultLiveAlertBefore = 10 * time.Minute

func (b *Integration) liveAlertBefore() time.Duration {
	if b.o.LiveAlertBefore == 0 {
		return DefaultLiveAlertBefore
	}
	return b.o.LiveAlertBefore
}

// grantPushed records on bk that its grant was put in the cloud, held at
// the box's records revision rev: not live until the box says it holds
// rev. A put that changed nothing (a retry) returns the box's current
// revision, which holds the grant too.
func (b *Integration) grantPushed(bk *Booking, rev uint64) {
	if rev == bk.GrantRev {
		return // the same revision: live or waiting as it was
	}
	bk.GrantRev, bk.GrantAt, bk.LiveAt = rev, b.o.Now(), time.Time{}
}

// HandleStatus takes a box's status (registered with cloud.OnStatus): the
// bookings of the box waiting for a revision it now holds are live since at.
// It runs on the cloud's goroutine; a failure is logged and caught up by
// CatchUpLive.
func (b *Integration) HandleStatus(boxID string, st wire.Status, at time.Time) {
	if _, err := b.boxHolds(boxID, st.Revision, at); err != nil {
		b.log.Error("box status not applied to bookings (will catch up)", "box", boxID, "revision", st.Revision, "err", err)
	}
}

// boxHolds records that box boxID holds revision rev (a status received at
// at) on its waiting bookings, and returns how many went live.
func (b *Integration) boxHolds(boxID string, rev uint64, at time.Time) (int, error) {
	waiting, err := b.o.Store.waitingGrants(boxID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, bk := range waiting {
		if rev <= bk.BoxRev && rev < bk.GrantRev {
			continue // nothing new about this one
		}
		live, err := b.o.Store.boxHolds(bk.AssignmentID, boxID, rev, at)
		if err != nil {
			return n, err
		}
		if live {
			n++
			b.log.Info("booking live at box", "assignment", bk.AssignmentID, "box", boxID, "revision", rev, "grant_revision", bk.GrantRev)
		}
	}
	return n, nil
}

// statusTime is when a kept status was received, as near as the bridge can
// say: the cloud keeps no receive time, so it is the box's clock when it
// sent it if the box trusts its clock (and it is not in the future), else
// now (the bridge learned it by now at the latest).
func statusTime(st wire.Status, now time.Time) time.Time {
	if st.ClockTrusted && !st.Clock.IsZero() && !st.Clock.After(now) {
		return st.Clock
	}
	return now
}

// liveFromStatus looks at the box's kept status for bk just after its grant
// was stored: a status that arrived between the put and the store found
// the booking's older revision.
func (b *Integration) liveFromStatus(bk *Booking) error {
	if bk.GrantRev == 0 || !bk.LiveAt.IsZero() {
		return nil
	}
	st, ok, err := b.o.Cloud.Status(bk.BoxID)
	if err != nil || !ok || st.Revision < bk.GrantRev {
		return err
	}
	if _, err := b.o.Store.boxHolds(bk.AssignmentID, bk.BoxID, st.Revision, b.o.Now()); err != nil {
		return err
	}
	got, _, err := b.o.Store.Booking(bk.AssignmentID)
	if err == nil {
		bk.LiveAt, bk.BoxRev = got.LiveAt, got.BoxRev
	}
	return err
}

// CatchUpLive applies the statuses the cloud kept to the bookings not yet
// live: one that arrived while the bridge was down, or whose hook failed.
// An active booking stored before the live receipt (no GrantRev) takes the
// box's current revision, which holds its grant. It returns how many went
// live. CheckLive runs it first; the service runs it at start too.
func (b *Integration) CatchUpLive(ctx context.Context) (int, error) {
	all, err := b.o.Store.Bookings()
	if err != nil {
		return 0, fmt.Errorf("bridge store: bookings: %w", err)
	}
	var errs []error
	for _, bk := range all {
		if bk.State == BookingActive && bk.GrantRev == 0 && !bk.PendingGrant && bk.BoxID != "" {
			rev, err := b.o.Cloud.Revision(bk.BoxID)
			if err == nil {
				err = b.o.Store.adoptGrantRev(bk.AssignmentID, rev)
			}
			errs = append(errs, err)
		}
	}
	waiting, err := b.o.Store.waitingGrants("")
	if err != nil {
		return 0, errors.Join(append(errs, err)...)
	}
	boxes := map[string]bool{}
	for _, bk := range waiting {
		boxes[bk.BoxID] = true
	}
	n := 0
	for boxID := range boxes {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		st, ok, err := b.o.Cloud.Status(boxID)
		if err != nil || !ok {
			errs = append(errs, err)
			continue
		}
		k, err := b.boxHolds(boxID, st.Revision, statusTime(st, b.o.Now()))
		n += k
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// CheckLive catches up on kept statuses (CatchUpLive), then raises a
// not_live alert for each active booking whose start is within
// Options.LiveAlertBefore (or past, its window not over) and whose grant
// the box has not been heard holding: once per grant (a grant changed
// later and missed again raises another). It returns how many it raised.
// The service runs it every minute, once per round across replicas.
func (b *Integration) CheckLive(ctx context.Context) (raised int, err error) {
	before := b.liveAlertBefore()
	if before < 0 {
		return 0, nil // not_live alerts are off
	}
	_, cerr := b.CatchUpLive(ctx)
	waiting, err := b.o.Store.waitingGrants("")
	if err != nil {
		return 0, errors.Join(cerr, err)
	}
	now := b.o.Now()
	errs := []error{cerr}
	status := map[string]string{} // box -> what its last status says
	for _, bk := range waiting {
		if ctx.Err() != nil {
			return raised, ctx.Err()
		}
		if bk.AlertedRev == bk.GrantRev || now.Before(bk.From.Add(-before)) || (!bk.Until.IsZero() && !now.Before(bk.Until)) {
			continue
		}
		if _, ok := status[bk.BoxID]; !ok {
			status[bk.BoxID] = b.boxStatusText(bk.BoxID)
		}
		a := adminAlert{Kind: notify.KindNotLive, BoxID: bk.BoxID, AssignmentID: bk.AssignmentID, KeyID: bk.KeyID,
			Count: 1, At: bk.GrantAt, Reason: status[bk.BoxID], GrantRev: bk.GrantRev}
		ok, err := b.o.Store.raiseNotLive(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			raised++
			b.stats.notLiveAlerts.Add(1)
			b.log.Warn("booking not live at its box before its start: admin told", "assignment", bk.AssignmentID,
				"box", bk.BoxID, "grant_revision", bk.GrantRev, "box_status", status[bk.BoxID])
		}
	}
	if raised > 0 {
		b.wakeAlerts()
	}
	return raised, errors.Join(errs...)
}

// boxStatusText says what the box's last status says, for the admin:
// "online at revision 7", "offline (last at revision 7)", "never
// connected".
func (b *Integration) boxStatusText(boxID string) string {
	st, ok, err := b.o.Cloud.Status(boxID)
	switch {
	case err != nil:
		return "unknown (" + err.Error() + ")"
	case !ok:
		return "never connected"
	case st.Online:
		return fmt.Sprintf("online, at revision %d", st.Revision)
	}
	return fmt.Sprintf("offline, last at revision %d", st.Revision)
}

// LiveText says whether a booking's grant is live at its box, for people:
// "live since 14:02", "not yet (box at rev 7, grant at 9)", "" for a
// booking with no grant. Times in loc (nil: the booking's own zone).
func LiveText(bk Booking, loc *time.Location) string {
	if bk.State != BookingActive || bk.GrantRev == 0 {
		return ""
	}
	if loc == nil {
		loc = bk.From.Location()
	}
	if !bk.LiveAt.IsZero() {
		return "live since " + bk.LiveAt.In(loc).Format("2 Jan 15:04")
	}
	if bk.BoxRev == 0 {
		return fmt.Sprintf("not yet (grant at rev %d, box not heard since)", bk.GrantRev)
	}
	return fmt.Sprintf("not yet (box at rev %d, grant at %d)", bk.BoxRev, bk.GrantRev)
}
