package bookings

import (
	"errors"
	"sync/atomic"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// Stats are the bridge's counters since it started, for the admin API and
// metrics. Counters only grow; QueueDepth is read from the store.
type Stats struct {
	WebhooksAccepted    uint64 `json:"webhooks_accepted"`    // stored for the worker
	WebhooksRejected    uint64 `json:"webhooks_rejected"`    // 401, 400, 408 or 413: nothing stored
	WebhooksBusy        uint64 `json:"webhooks_busy"`        // 503: every body slot, or the client address's share, taken: refused unread
	WebhooksIgnored     uint64 `json:"webhooks_ignored"`     // an event the bridge does not act on (answered 2xx)
	WebhooksDuplicate   uint64 `json:"webhooks_duplicate"`   // a delivery id already stored
	GrantsPushed        uint64 `json:"grants_pushed"`        // grants put in the cloud (new or changed)
	GrantsRevoked       uint64 `json:"grants_revoked"`       // grants revoked in the cloud
	FleetioErrors       uint64 `json:"fleetio_errors"`       // failed calls to Fleetio's API (a 404 is not one)
	NotificationsSent   uint64 `json:"notifications_sent"`   // Notifier.Notify returned nil
	NotificationsFailed uint64 `json:"notifications_failed"` // Notifier.Notify returned an error
	Overdue             uint64 `json:"overdue"`              // keys found overdue (key_overdue sent)
	Reconciled          uint64 `json:"reconciled"`           // repairs made by Reconcile
	EchoesSkipped       uint64 `json:"echoes_skipped"`       // deliveries of the bridge's own writes, done without a read-back
	KeypadAttacks       uint64 `json:"keypad_attacks"`       // keypad_attack events from boxes (the admin is told)
	KeypadClosures      uint64 `json:"keypad_closures"`      // keypad_closed events from boxes (the admin is told)
	ReturnsUnconfirmed  uint64 `json:"returns_unconfirmed"`  // fob returns not taken as proof the key is back
	NotLiveAlerts       uint64 `json:"not_live_alerts"`      // not_live alerts raised: a booking's grant not at its box before its start
	QueueDepth          int    `json:"queue_depth"`          // deliveries waiting to be processed
	BodiesInFlight      int    `json:"bodies_in_flight"`     // webhook bodies being read now
}

// counters are the live values behind Stats. Each is bumped where the thing
// happens, e.g. b.stats.overdue.Add(1).
type counters struct {
	webhooksAccepted    atomic.Uint64
	webhooksRejected    atomic.Uint64
	webhooksBusy        atomic.Uint64
	webhooksIgnored     atomic.Uint64
	webhooksDuplicate   atomic.Uint64
	grantsPushed        atomic.Uint64
	grantsRevoked       atomic.Uint64
	fleetioErrors       atomic.Uint64
	notificationsSent   atomic.Uint64
	notificationsFailed atomic.Uint64
	overdue             atomic.Uint64
	reconciled          atomic.Uint64
	echoesSkipped       atomic.Uint64
	keypadAttacks       atomic.Uint64
	keypadClosures      atomic.Uint64
	returnsUnconfirmed  atomic.Uint64
	notLiveAlerts       atomic.Uint64
}

// Stats returns the counters and the current queue depth.
func (b *Integration) Stats() Stats {
	c := &b.stats
	return Stats{
		WebhooksAccepted:    c.webhooksAccepted.Load(),
		WebhooksRejected:    c.webhooksRejected.Load(),
		WebhooksBusy:        c.webhooksBusy.Load(),
		WebhooksIgnored:     c.webhooksIgnored.Load(),
		WebhooksDuplicate:   c.webhooksDuplicate.Load(),
		GrantsPushed:        c.grantsPushed.Load(),
		GrantsRevoked:       c.grantsRevoked.Load(),
		FleetioErrors:       c.fleetioErrors.Load(),
		NotificationsSent:   c.notificationsSent.Load(),
		NotificationsFailed: c.notificationsFailed.Load(),
		Overdue:             c.overdue.Load(),
		Reconciled:          c.reconciled.Load(),
		EchoesSkipped:       c.echoesSkipped.Load(),
		KeypadAttacks:       c.keypadAttacks.Load(),
		KeypadClosures:      c.keypadClosures.Load(),
		ReturnsUnconfirmed:  c.returnsUnconfirmed.Load(),
		NotLiveAlerts:       c.notLiveAlerts.Load(),
		QueueDepth:          b.o.Store.QueueDepth(),
		BodiesInFlight:      b.bodySlots.inFlight(),
	}
}

// fleetioErr counts err (if any) as a failed Fleetio call and returns it. A
// 404 is an answer (the record is gone), not a failure.
func (b *Integration) fleetioErr(err error) error {
	if err != nil && !errors.Is(err, fleetio.ErrNotFound) && !errors.Is(err, fleetio.ErrBudgetSpent) { // spent: nothing was sent
		b.stats.fleetioErrors.Add(1)
	}
	return err
}

// notified counts the outcome of a Notifier call and returns err.
func (b *Integration) notified(err error) error {
	if err != nil {
		b.stats.notificationsFailed.Add(1)
	} else {
		b.stats.notificationsSent.Add(1)
	}
	return err
}
