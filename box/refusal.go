package box

import (
	"cmp"
	"slices"
	"time"
)

// refusalKind is what makes two refusals the same for merging: their type
// and reason, and what they name (a grant, a slot, a key). A fob UID is not
// part of it: a flood of made-up fobs is one kind.
type refusalKind struct {
	typ     EventType
	reason  Reason
	grantID string
	slot    int
	keyID   string
}

// refusalRun is an open window of refusals of one kind: the first was
// recorded, the ones after it are only counted.
type refusalRun struct {
	kind  refusalKind
	since time.Time
	count int
	timer Timer
}

// refused returns the refusal e, stamped, when it is the first of its kind
// within RefusalWindow, or nothing when it is counted into the open window
// (recorded as one refusals_merged when the window closes). Only refusals go
// through here: key, slot, lockout, alert and fault events are never merged.
func (c *Controller) refused(now time.Time, e Event) []Event {
	k := refusalKind{typ: e.Type, reason: e.Reason, grantID: e.GrantID, slot: e.Slot, keyID: e.KeyID}
	if run := c.refusals[k]; run != nil {
		run.count++
		return nil
	}
	run := &refusalRun{kind: k, since: now}
	run.timer = c.clock.AfterFunc(c.cfg.RefusalWindow, func() {
		c.post(func() { c.closeRefusals(run) })
	})
	c.refusals[k] = run
	return []Event{c.event(now, e)}
}

// refuse records a refusal (merged or not) on its own.
func (c *Controller) refuse(now time.Time, e Event) {
	c.commit(Change{Events: c.refused(now, e)})
}

// closeRefusals ends a window and records what it counted.
func (c *Controller) closeRefusals(run *refusalRun) {
	if c.refusals[run.kind] != run {
		return
	}
	delete(c.refusals, run.kind)
	if ev, ok := c.mergedEvent(c.clock.Now(), run); ok {
		c.commit(Change{Events: []Event{ev}})
	}
}

// closeAllRefusals ends every window (at stop) and returns their events,
// oldest window first.
func (c *Controller) closeAllRefusals(now time.Time) []Event {
	runs := make([]*refusalRun, 0, len(c.refusals))
	for _, run := range c.refusals {
		run.timer.Stop()
		runs = append(runs, run)
	}
	clear(c.refusals)
	slices.SortFunc(runs, func(a, b *refusalRun) int {
		return cmp.Or(a.since.Compare(b.since), cmp.Compare(a.kind.typ, b.kind.typ), cmp.Compare(a.kind.reason, b.kind.reason),
			cmp.Compare(a.kind.slot, b.kind.slot), cmp.Compare(a.kind.grantID, b.kind.grantID), cmp.Compare(a.kind.keyID, b.kind.keyID))
	})
	var evs []Event
	for _, run := range runs {
		if ev, ok := c.mergedEvent(now, run); ok {
			evs = append(evs, ev)
		}
	}
	return evs
}

// mergedEvent is the refusals_merged event of a window that counted any:
// Detail is the merged events' type, Reason, GrantID, Slot and KeyID theirs.
func (c *Controller) mergedEvent(now time.Time, run *refusalRun) (Event, bool) {
	if run.count == 0 {
		return Event{}, false
	}
	k := run.kind
	return c.event(now, Event{Type: EventRefusalsMerged, Reason: k.reason, GrantID: k.grantID, Slot: k.slot,
		KeyID: k.keyID, Count: run.count, Detail: string(k.typ)}), true
}
