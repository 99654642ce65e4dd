package main

import (
	"cmp"
	"slices"
	"sync"

	"github.com/smartbox-oss/smartbox/box"
)

// recentLimit bounds the events the daemon remembers in memory.
const recentLimit = 1000

// recentEvents remembers the last events the controller committed, and
// those the sync link committed (see linkChanged), for the simulator
// console and the socket. The outbox alone is not enough to show them: with a
// cloud link, an event leaves the outbox as soon as the cloud acknowledges
// it, often before the console has looked.
type recentEvents struct {
	mu  sync.Mutex
	evs []box.Event // in seq order
}

func (r *recentEvents) add(evs []box.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, evs...)
	if over := len(r.evs) - recentLimit; over > 0 {
		r.evs = slices.Delete(r.evs, 0, over)
	}
}

// merge remembers evs beside what is there (events it has already are
// kept once), in seq order.
func (r *recentEvents) merge(evs []box.Event) {
	if len(evs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, evs...)
	slices.SortStableFunc(r.evs, func(a, b box.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	r.evs = slices.CompactFunc(r.evs, func(a, b box.Event) bool { return a.Seq == b.Seq })
	if over := len(r.evs) - recentLimit; over > 0 {
		r.evs = slices.Delete(r.evs, 0, over)
	}
}

// after returns the remembered events with seq > since.
func (r *recentEvents) after(since uint64) []box.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, _ := slices.BinarySearchFunc(r.evs, since+1, func(e box.Event, seq uint64) int {
		switch {
		case e.Seq < seq:
			return -1
		case e.Seq > seq:
			return 1
		}
		return 0
	})
	return slices.Clone(r.evs[i:])
}

// eventsAfter returns up to limit events with seq > since, in seq order:
// those still in the outbox (including the link's own, such as
// records_applied) and those the controller committed in this run that the
// cloud may already have acknowledged.
func (d *daemon) eventsAfter(since uint64, limit int) ([]box.Event, error) {
	out, err := d.store.Events(since, limit)
	if err != nil {
		return nil, err
	}
	out = append(out, d.recent.after(since)...)
	slices.SortStableFunc(out, func(a, b box.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	out = slices.CompactFunc(out, func(a, b box.Event) bool { return a.Seq == b.Seq })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
