package loadbox

import "github.com/smartbox-oss/smartbox/box"

// outbox is the box's events not yet acked, oldest first, numbered from 1
// as the store numbers them.
type outbox struct {
	events  []box.Event
	lastSeq uint64
	acked   uint64 // highest seq the cloud acked
	removed uint64 // events deleted by acks, each once
}

func (o *outbox) add(evs ...box.Event) {
	for _, e := range evs {
		o.lastSeq++
		e.Seq = o.lastSeq
		o.events = append(o.events, e)
	}
}

// ack deletes every event through seq and says how many; false if seq is
// beyond the last seq given out (an ack for another outbox: delete nothing).
func (o *outbox) ack(through uint64) (int, bool) {
	if through > o.lastSeq {
		return 0, false
	}
	n := 0
	for n < len(o.events) && o.events[n].Seq <= through {
		n++
	}
	o.events = o.events[n:]
	o.removed += uint64(n)
	o.acked = max(o.acked, through)
	return n, true
}
