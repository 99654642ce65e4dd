package bookings

import (
	"context"
	"errors"
	"time"
)

// DefaultMaintenanceInterval is how often RunMaintenance runs when asked for
// every <= 0. Reconcile lists every linked vehicle's assignments: at Fleetio's
// lowest documented rate limit (20 requests a minute) ten minutes leaves the
// queue worker room, and a missed webhook is still repaired well before a
// driver reaches the box.
const DefaultMaintenanceInterval = 10 * time.Minute

// RunMaintenance runs the bridge's periodic checks at once and then every
// interval until ctx is done: CatchUpEvents (box events the hook missed),
// Reconcile (webhooks that never arrived), ExpireEnded (bookings whose
// window is over: grant revoked, fields cleared) and CheckOverdue (keys not
// back when a booking ended), logging what each did. A failing check is logged and
// tried again on the next tick; it returns nil when ctx ends.
func (b *Integration) RunMaintenance(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = DefaultMaintenanceInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		b.Maintain(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Maintain is one round of RunMaintenance; replicas on one database run
// it in turns (sync/bridge takes the round).
func (b *Integration) Maintain(ctx context.Context) {
	if n, err := b.CatchUpEvents(); err != nil {
		b.log.Error("maintenance: catch up box events", "err", err)
	} else if n > 0 {
		b.log.Info("maintenance: box events caught up", "attached", n)
	}
	if ctx.Err() != nil {
		return
	}
	rep, err := b.Reconcile(ctx)
	switch {
	case errors.Is(err, ErrNotConnected):
		b.log.Debug("maintenance: reconcile skipped, Fleetio not connected")
	case err != nil && ctx.Err() == nil:
		b.log.Error("maintenance: reconcile stopped", "err", err, "repairs", len(rep.Repairs))
	case err == nil:
		b.log.Info("maintenance: reconciled", "vehicles", rep.Vehicles, "assignments", rep.Assignments,
			"checked", rep.Checked, "repairs", len(rep.Repairs))
	}
	if ctx.Err() != nil {
		return
	}
	if n, err := b.ExpireEnded(ctx); err != nil && ctx.Err() == nil {
		b.log.Error("maintenance: end bookings whose window is over", "err", err, "ended", n)
	} else if n > 0 {
		b.log.Info("maintenance: bookings ended with their window", "ended", n)
	}
	if ctx.Err() != nil {
		return
	}
	n, err := b.CheckOverdue(ctx)
	if err != nil && ctx.Err() == nil {
		b.log.Error("maintenance: overdue check", "err", err, "raised", n)
	} else if n > 0 {
		b.log.Warn("maintenance: keys overdue", "raised", n)
	}
	// Alerts the events caught up above queued (Run sends them too).
	if n, _, err := b.SendAlerts(ctx); err != nil && ctx.Err() == nil {
		b.log.Error("maintenance: admin alerts", "err", err, "sent", n)
	}
}
