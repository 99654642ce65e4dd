package bookings

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// Admin alerts: messages to the admin that box events call for
// (notify.KindKeypadAttack: a box reported wrong codes past its alert
// threshold, someone may be guessing; notify.KindKeypadClosed: wrong codes
// spent a box's guess budget, its keypad checks no code until a stated
// time or a restore_keypad command; notify.KindReturnUnconfirmed: a
// booking's key came back by fob without the slot's sensor confirming it,
// so it still counts as out, and overdue once the window ends;
// notify.KindNotLive: a booking's start is near and its box has not
// applied its grant, live.go).
// HandleEvents runs on the cloud's ingest goroutine and must not wait on a
// mail server, so it only queues them in the store (watch_alerts, in
// the same transaction that marks the events handled: a crash loses none);
// Run's alert loop sends them at once and retries a failure.

// DefaultReturnSettle is how long the slot's key sensor must have seen a
// key seated (box.Event.SeatedMS) for a fob return to count as the key
// back: the box's own default settle time for a return, so that a return
// the box itself accepted after a full settle passes, and one it recorded
// on a sensor that bounced (a fob held to the reader, an empty fob ring
// pushed in and out) does not.
const DefaultReturnSettle = box.DefaultReturnSettle

const (
	// attackAlertInterval: after a keypad_attack message about a box, the
	// next one waits this long, the wrong codes reported meanwhile added
	// to it. The first reaches the admin at once; one attacker cannot turn
	// the admin's inbox into a flood (at most four an hour per box).
	attackAlertInterval = 15 * time.Minute
	// alertRetryMin and alertRetryMax bound the back-off of a message the
	// notifier failed to send: a mail relay's blip is retried within
	// seconds, a long outage costs a try every ten minutes.
	alertRetryMin = 10 * time.Second
	alertRetryMax = 10 * time.Minute
	// alertPoll is how often the alert loop looks for alerts that became
	// due without being woken (a retry, a held keypad_attack).
	alertPoll = 15 * time.Second
)

// adminAlert is one queued message to the admin. There is one record per
// kind and subject (a box for keypad_attack and keypad_closed, a booking
// for return_unconfirmed): an event while one is waiting adds to it.
type adminAlert struct {
	Kind         notify.Kind `json:"kind"`
	BoxID        string      `json:"box_id"`
	AssignmentID int64       `json:"assignment_id,omitempty"`
	KeyID        string      `json:"key_id,omitempty"`
	Count        int         `json:"count"`               // what is waiting to be told: wrong codes, or returns
	At           time.Time   `json:"at"`                  // box time of the latest event
	Until        time.Time   `json:"until,omitzero"`      // keypad_closed: when the latest closure ends
	Spent        int         `json:"spent,omitempty"`     // keypad_closed: the wrong codes that spent the budget
	Reason       string      `json:"reason,omitempty"`    // return_unconfirmed: why; not_live: the box's last status
	GrantRev     uint64      `json:"grant_rev,omitempty"` // not_live: the revision that holds the grant
	Pending      bool        `json:"pending"`             // something is waiting to be told
	SentAt       time.Time   `json:"sent_at,omitzero"`    // the last message about this subject
	Attempts     int         `json:"attempts,omitempty"`
	NextTry      time.Time   `json:"next_try,omitzero"`
}

func (a adminAlert) key() recKey {
	subject := a.BoxID
	if a.Kind == notify.KindReturnUnconfirmed || a.Kind == notify.KindNotLive {
		subject = strconv.FormatInt(a.AssignmentID, 10)
	}
	return recKey{Kind: string(a.Kind), Subject: subject}
}

// due is when a can be sent.
func (a adminAlert) due() time.Time {
	d := a.NextTry
	if a.Kind == notify.KindKeypadAttack && !a.SentAt.IsZero() {
		if held := a.SentAt.Add(attackAlertInterval); held.After(d) {
			d = held
		}
	}
	return d
}

func keypadAttackAlert(boxID string, e box.Event) adminAlert {
	return adminAlert{Kind: notify.KindKeypadAttack, BoxID: boxID, Count: max(e.Count, 1), At: e.Time}
}

// keypadClosedAlert is sent at once, like keypad_attack's first, and never
// held: the box sends at most one keypad_closed per spent budget, that is
// one per refill (60 h by default) or per restore, so it cannot flood the
// admin, and each one means drivers are shut out now.
func keypadClosedAlert(boxID string, e box.Event) adminAlert {
	return adminAlert{Kind: notify.KindKeypadClosed, BoxID: boxID, Count: 1, At: e.Time, Until: e.Until, Spent: e.Count}
}

func unconfirmedReturnAlert(boxID string, assignmentID int64, e box.Event, why string) adminAlert {
	return adminAlert{Kind: notify.KindReturnUnconfirmed, BoxID: boxID, AssignmentID: assignmentID, KeyID: e.KeyID,
		Count: 1, At: e.Time, Reason: why}
}

// returnProof says whether a key_returned proves the key is back in its
// slot, and if not, why (for people). A remote return was opened by a
// signed command an admin sent; a fob return, and one through a slot a
// technician released on the box (smartboxctl release, audited there),
// count when the slot's sensor saw the key seated for settle. A key_returned without return_by comes
// from firmware older than the field: it is not proof (fail secure).
func returnProof(e box.Event, settle time.Duration) (bool, string) {
	switch e.ReturnBy {
	case box.ReturnByRemote:
		return true, ""
	case box.ReturnByFob, box.ReturnByLocal:
		if time.Duration(e.SeatedMS)*time.Millisecond >= settle {
			return true, ""
		}
		return false, fmt.Sprintf("not confirmed by the slot sensor: key seated %d ms, under the %s settle time", e.SeatedMS, settle)
	case "":
		return false, "not confirmed by the slot sensor: the box does not report it (firmware without return_by)"
	default:
		return false, fmt.Sprintf("not confirmed by the slot sensor: unknown return_by %q", e.ReturnBy)
	}
}

// returnedBy says what proved a return, for the cleared overdue flag.
func returnedBy(e box.Event) string {
	switch e.ReturnBy {
	case box.ReturnByFob:
		return fmt.Sprintf("fob return, key seated %d ms", e.SeatedMS)
	case box.ReturnByLocal:
		return fmt.Sprintf("return through a slot released on the box, key seated %d ms", e.SeatedMS)
	}
	return string(e.ReturnBy) + " return"
}

// queueAlert adds a to the queue, or to the alert already waiting for its
// kind and subject.
func (w *watchTx) queueAlert(a adminAlert) error {
	k := a.key()
	var cur adminAlert
	ok, err := w.get(tAlerts, k, &cur)
	if err != nil {
		return err
	}
	if ok {
		cur.Count += a.Count
		if a.At.After(cur.At) {
			cur.At, cur.Spent = a.At, a.Spent
		}
		if a.Until.After(cur.Until) {
			cur.Until = a.Until
		}
		cur.KeyID, cur.Reason = cmpOr(a.KeyID, cur.KeyID), cmpOr(a.Reason, cur.Reason)
		a = cur
	}
	a.Pending = true
	w.did.queued++
	return w.put(tAlerts, k, a)
}

// clearOverdue marks a booking's overdue flag cleared (its key proved
// back), if it has one still raised; cleared says whether it had.
func (w *watchTx) clearOverdue(assignmentID int64, at time.Time, by string) (cleared bool, err error) {
	k := idKey(assignmentID)
	var f overdueFlag
	ok, err := w.get(tOverdue, k, &f)
	if err != nil || !ok || !f.ClearedAt.IsZero() {
		return false, err
	}
	f.ClearedAt, f.ClearedBy = at, by
	return true, w.put(tOverdue, k, f)
}

// reopenOverdue raises again a booking's overdue flag that a return
// cleared: the same flag, so the key_overdue event is not recorded twice
// and whoever was told is not told again (the admin hears of the reason,
// alerts.go).
func (w *watchTx) reopenOverdue(assignmentID int64) error {
	k := idKey(assignmentID)
	var f overdueFlag
	ok, err := w.get(tOverdue, k, &f)
	if err != nil || !ok || f.ClearedAt.IsZero() {
		return err
	}
	f.ClearedAt, f.ClearedBy = time.Time{}, ""
	return w.put(tOverdue, k, f)
}

// OverdueKey is a booking whose key was found overdue and has not been
// proved back: not returned, or returned in a way the bridge does not
// take as proof (BookingEvent.Unconfirmed).
type OverdueKey struct {
	AssignmentID int64     `json:"assignment_id"`
	BoxID        string    `json:"box_id"`
	KeyID        string    `json:"key_id"`
	RaisedAt     time.Time `json:"raised_at"`
}

// OverdueKeys lists the overdue alerts still raised, by booking: flagged
// overdue, not cleared, and the key still out with that booking (a flag of
// an older bridge, which took every return as proof, is not listed once
// its key came back).
func (b *Integration) OverdueKeys() ([]OverdueKey, error) {
	held, err := b.o.Store.heldKeys()
	if err != nil {
		return nil, err
	}
	stillOut := map[heldKey]bool{}
	for _, h := range held {
		stillOut[h] = true
	}
	var open []OverdueKey
	err = forEachRec(b.o.Store, tOverdue, func(k recKey, f overdueFlag) {
		id := k.ID
		if f.ClearedAt.IsZero() && stillOut[heldKey{BoxID: f.BoxID, KeyID: f.KeyID, AssignmentID: id}] {
			open = append(open, OverdueKey{AssignmentID: id, BoxID: f.BoxID, KeyID: f.KeyID, RaisedAt: f.RaisedAt})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bridge store: overdue keys: %w", err)
	}
	return open, nil
}

// pendingAlerts lists the alerts waiting to be sent.
func (s *Store) pendingAlerts() ([]adminAlert, error) {
	var out []adminAlert
	err := forEachRec(s, tAlerts, func(_ recKey, a adminAlert) {
		if a.Pending {
			out = append(out, a)
		}
	})
	return out, err
}

// forEachRec decodes every record of t and hands it to fn, in key order.
func forEachRec[T any](s *Store, t table, fn func(k recKey, v T)) error {
	return s.eng.view(func(tx storeTx) error {
		return scanRecs(tx, t, false, 0, func(k recKey, v T) error {
			fn(k, v)
			return nil
		})
	})
}

// alertDone records the outcome of sending a: sent (what it told is taken
// off what is waiting, which events may have added to meanwhile) or failed
// (tried again at next).
func (s *Store) alertDone(a adminAlert, sent bool, now, next time.Time) error {
	return s.watchUpdate(func(w *watchTx) error {
		k := a.key()
		var cur adminAlert
		if ok, err := w.get(tAlerts, k, &cur); err != nil || !ok {
			return err
		}
		if !sent {
			cur.Attempts++
			cur.NextTry = next
			return w.put(tAlerts, k, cur)
		}
		cur.Count -= a.Count
		cur.Attempts, cur.NextTry, cur.SentAt = 0, time.Time{}, now
		if cur.Count > 0 {
			return w.put(tAlerts, k, cur) // more came in while it was sent
		}
		if cur.Kind != notify.KindKeypadAttack {
			return w.del(tAlerts, k)
		}
		// keypad_attack: kept (not pending) for attackAlertInterval.
		cur.Count, cur.Pending = 0, false
		return w.put(tAlerts, k, cur)
	})
}

func (b *Integration) wakeAlerts() {
	select {
	case b.alertWake <- struct{}{}:
	default:
	}
}

// runAlerts sends queued admin alerts as they come, until ctx is done.
func (b *Integration) runAlerts(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.alertWake:
		case <-t.C:
		}
		_, next, err := b.SendAlerts(ctx)
		if err != nil && ctx.Err() == nil {
			b.log.Error("admin alerts", "err", err)
		}
		wait := alertPoll
		if !next.IsZero() {
			wait = min(max(next.Sub(b.o.Now()), 0), alertPoll)
		}
		t.Reset(wait)
	}
}

// SendAlerts sends the admin alerts that are due and returns how many were
// sent and when the next one waiting will be due (zero: none). Run does
// this as alerts are queued; the maintenance loop too.
func (b *Integration) SendAlerts(ctx context.Context) (sent int, next time.Time, err error) {
	unlock, err := b.locks.named(ctx, "alerts")
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("admin alerts: %w", err)
	}
	defer unlock()
	alerts, err := b.o.Store.pendingAlerts()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("bridge store: admin alerts: %w", err)
	}
	now := b.o.Now()
	var errs []error
	for _, a := range alerts {
		if ctx.Err() != nil {
			return sent, next, ctx.Err()
		}
		if due := a.due(); now.Before(due) {
			next = earlier(next, due)
			continue
		}
		serr := b.sendAlert(ctx, a)
		retry := time.Time{}
		if serr != nil {
			retry = now.Add(min(alertRetryMin<<min(a.Attempts, 16), alertRetryMax))
			next = earlier(next, retry)
			errs = append(errs, serr)
		} else {
			sent++
		}
		if err := b.o.Store.alertDone(a, serr == nil, now, retry); err != nil {
			errs = append(errs, err)
		}
	}
	return sent, next, errors.Join(errs...)
}

// sendAlert tells the admin of one alert. With nobody to tell, it logs and
// counts as sent.
func (b *Integration) sendAlert(ctx context.Context, a adminAlert) error {
	bi, err := b.o.Store.Box(a.BoxID)
	if err != nil {
		return err
	}
	data := map[string]any{notify.DataBox: cmpOr(bi.Name, a.BoxID), notify.DataLocation: bi.Location, notify.DataAt: b.when(a.At)}
	switch a.Kind {
	case notify.KindKeypadAttack:
		data[notify.DataCount] = strconv.Itoa(a.Count)
	case notify.KindKeypadClosed:
		data[notify.DataCount], data[notify.DataBoxID], data[notify.DataUntil] = strconv.Itoa(a.Spent), a.BoxID, b.when(a.Until)
	case notify.KindNotLive:
		bk, _, err := b.o.Store.Booking(a.AssignmentID)
		if err != nil {
			return err
		}
		data[notify.DataVehicle] = cmpOr(bk.VehicleName, fmt.Sprintf("vehicle %d", bk.VehicleID))
		data[notify.DataDriver], data[notify.DataKey] = cmpOr(bk.ContactName, fmt.Sprintf("contact %d", bk.ContactID)), a.KeyID
		data[notify.DataStart], data[notify.DataBoxID] = b.when(bk.From), a.BoxID
		data[notify.DataBoxStatus], data[notify.DataRevision] = a.Reason, strconv.FormatUint(a.GrantRev, 10)
		data[dataAssignment] = strconv.FormatInt(a.AssignmentID, 10)
	case notify.KindReturnUnconfirmed:
		bk, ok, err := b.o.Store.Booking(a.AssignmentID)
		if err != nil {
			return err
		}
		data[notify.DataKey], data[notify.DataReason] = a.KeyID, a.Reason
		data[notify.DataVehicle] = fmt.Sprintf("booking %d", a.AssignmentID)
		if ok {
			data[notify.DataVehicle], data[notify.DataDriver] = cmpOr(bk.VehicleName, fmt.Sprintf("vehicle %d", bk.VehicleID)), bk.ContactName
			if info, err := b.describe(bk); err == nil {
				data[notify.DataKey], data[dataSlot] = info.Key, strconv.Itoa(info.Slot)
			}
		}
	}
	if b.o.Notifier == nil || (b.o.Admin.Email == "" && b.o.Admin.Phone == "") {
		b.log.Warn("admin alert not sent: no admin to tell", "kind", a.Kind, "box", a.BoxID, "count", a.Count,
			"assignment", a.AssignmentID)
		return nil
	}
	if err := b.send(ctx, b.o.Admin, b.o.AdminMethod, a.Kind, data); err != nil {
		return fmt.Errorf("tell the admin %s of box %s: %w", a.Kind, a.BoxID, err)
	}
	b.log.Info("admin told", "kind", a.Kind, "box", a.BoxID, "count", a.Count, "assignment", a.AssignmentID)
	return nil
}
