package bookings

import (
	"encoding/json"
	"fmt"
	"time"
)

// The live receipt's records: the fields of Booking it keeps (GrantRev,
// GrantAt, LiveAt, BoxRev, AlertedRev), written each in a transaction of
// its own that reads the booking and changes only them, so a status
// handled on one replica never undoes what a worker on another wrote, and
// keepLive stops the worker's whole-document writes undoing them.

// keepLive carries the live receipt of the stored booking over to b, about
// to be stored in tx, when b is the same grant (same GrantRev) and was read
// before the box was heard holding it: the writer of b did not change the
// grant, so what the status said about it stands. A new GrantRev (a new
// grant) starts not live.
func keepLive(tx storeTx, b Booking) (Booking, error) {
	if b.GrantRev == 0 {
		return b, nil
	}
	cur, ok, err := getRec[Booking](tx, tBookings, idKey(b.AssignmentID))
	if err != nil || !ok || cur.GrantRev != b.GrantRev {
		return b, err
	}
	if b.LiveAt.IsZero() && !cur.LiveAt.IsZero() {
		b.LiveAt = cur.LiveAt
	}
	b.BoxRev = max(b.BoxRev, cur.BoxRev)
	b.AlertedRev = max(b.AlertedRev, cur.AlertedRev)
	return b, nil
}

// waitingFor is the box whose status booking b waits for: the box of an
// active booking whose grant (GrantRev) the box has not been heard holding
// (LiveAt zero); "" for a booking that waits for none. Every write of a
// booking files it under this box in the engine's waiting index (putRec),
// so that a box's status reads that box's waiting bookings only: a fleet
// keeps tens of thousands of bookings, ended ones included, and reading
// them all for each status cost a full decode of the table (100 ms with
// 20,000 on bbolt, BenchmarkBoxStatusFleet).
func waitingFor(b Booking) string {
	if b.State != BookingActive || b.GrantRev == 0 || !b.LiveAt.IsZero() {
		return ""
	}
	return b.BoxID
}

// waitingGrants lists the active bookings whose grant (GrantRev) the box
// has not been heard holding, of box boxID ("": of every box), in
// assignment id order. It reads the waiting index, and each booking's
// document decides again: one the index holds by mistake is left out.
func (s *Store) waitingGrants(boxID string) ([]Booking, error) {
	var out []Booking
	err := s.eng.view(func(tx storeTx) error {
		out = nil
		return tx.waiting(boxID, func(doc []byte) error {
			var bk Booking
			if err := json.Unmarshal(doc, &bk); err != nil {
				return fmt.Errorf("decode waiting booking: %w", err)
			}
			if box := waitingFor(bk); box != "" && (boxID == "" || box == boxID) {
				out = append(out, bk)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bridge store: bookings waiting for box %q: %w", boxID, err)
	}
	return out, nil
}

// boxHolds records that box boxID holds records revision rev, as a status
// received at at said, on booking id: live since at (never before its
// grant was pushed) when rev reaches its GrantRev, else the box's revision
// noted. live says whether the booking went live.
func (s *Store) boxHolds(id int64, boxID string, rev uint64, at time.Time) (live bool, err error) {
	err = s.eng.update(func(tx storeTx) error {
		live = false
		bk, ok, err := getRec[Booking](tx, tBookings, idKey(id))
		if err != nil || !ok || bk.State != BookingActive || bk.BoxID != boxID || bk.GrantRev == 0 ||
			!bk.LiveAt.IsZero() || rev <= bk.BoxRev && rev < bk.GrantRev {
			return err
		}
		bk.BoxRev = max(bk.BoxRev, rev)
		if rev >= bk.GrantRev {
			live, bk.LiveAt = true, at
			if at.Before(bk.GrantAt) {
				bk.LiveAt = bk.GrantAt // the replicas' clocks differ a little
			}
		}
		return putRec(tx, tBookings, idKey(id), bk)
	})
	if err != nil {
		return false, fmt.Errorf("bridge store: booking %d live at box %s: %w", id, boxID, err)
	}
	return live, nil
}

// adoptGrantRev gives an active booking stored before the live receipt
// (GrantRev 0, its grant pushed) the box's revision rev, at which its grant
// is held at the latest, so that it goes live like the others.
func (s *Store) adoptGrantRev(id int64, rev uint64) error {
	err := s.eng.update(func(tx storeTx) error {
		bk, ok, err := getRec[Booking](tx, tBookings, idKey(id))
		if err != nil || !ok || bk.State != BookingActive || bk.GrantRev != 0 || bk.PendingGrant {
			return err
		}
		bk.GrantRev, bk.GrantAt = rev, bk.Changed
		return putRec(tx, tBookings, idKey(id), bk)
	})
	if err != nil {
		return fmt.Errorf("bridge store: booking %d grant revision: %w", id, err)
	}
	return nil
}

// raiseNotLive queues the not_live alert a of booking a.AssignmentID once
// per grant: only while the booking is still active, not live, at grant
// revision a.GrantRev, and not alerted for it. raised says whether it did.
func (s *Store) raiseNotLive(a adminAlert) (raised bool, err error) {
	err = s.watchUpdate(func(w *watchTx) error {
		raised = false
		var bk Booking
		ok, err := w.get(tBookings, idKey(a.AssignmentID), &bk)
		if err != nil || !ok || bk.State != BookingActive || !bk.LiveAt.IsZero() || bk.GrantRev != a.GrantRev ||
			bk.AlertedRev == bk.GrantRev {
			return err
		}
		bk.AlertedRev = bk.GrantRev
		if err := w.put(tBookings, idKey(bk.AssignmentID), bk); err != nil {
			return err
		}
		raised = true
		return w.queueAlert(a)
	})
	if err != nil {
		return false, fmt.Errorf("bridge store: not_live alert of booking %d: %w", a.AssignmentID, err)
	}
	return raised, nil
}
