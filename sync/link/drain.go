package link

import (
	"encoding/json"
	"fmt"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// drain sends the oldest unacked events, if connected and nothing is in
// flight. One batch in flight keeps the order simple: the cloud stores in
// sequence order and acks a prefix; the box deletes that prefix.
func (l *Link) drain() {
	if !l.w.online || l.w.inflight != nil {
		return
	}
	// Acked events are deleted, so the oldest in the outbox is the first
	// not yet acked.
	evs, err := l.st.Events(0, l.opts.DrainBatch)
	if err != nil {
		l.log.Error("sync: reading the outbox", "err", err)
		return
	}
	if len(evs) == 0 {
		return
	}
	for {
		msg, err := json.Marshal(wire.EventBatch{V: wire.Version, Box: l.opts.BoxID, Events: evs})
		if err != nil {
			l.log.Error("sync: encoding events", "err", err)
			return
		}
		// Events are small, but a batch must stay under the cloud's limit
		// whatever their details hold: halve until it fits.
		if len(msg) > wire.MaxMessageSize && len(evs) > 1 {
			evs = evs[:len(evs)/2]
			continue
		}
		l.w.inflight = &flight{first: evs[0].Seq, last: evs[len(evs)-1].Seq, sentAt: l.now()}
		l.publish(wire.LeafEvents, false, msg)
		return
	}
}

// onAck handles a signed EventAck: delete what the cloud has, send more.
func (l *Link) onAck(payload []byte) {
	var ack wire.EventAck
	if err := l.verifier.Open(payload, wire.KindEventsAck, l.opts.BoxID, &ack); err != nil {
		l.refuse("events ack", err)
		return
	}
	if ack.Through > 0 {
		n, err := l.st.AckEvents(ack.Through)
		if err != nil {
			// An ack beyond the last sequence number the box gave out: the
			// cloud holds another file's events for this box (a replaced
			// SD card?). Deleting nothing is the safe answer.
			l.refuse("events ack", fmt.Errorf("through %d: %w", ack.Through, err))
			return
		}
		if n > 0 {
			l.log.Debug("sync: events acked", "through", ack.Through, "deleted", n)
		}
		l.noteAcked()
	}
	f := l.w.inflight
	switch {
	case f == nil:
	case ack.Through >= f.last:
		l.w.inflight, l.w.unacked = nil, 0 // all of it: send the next
	case ack.Through >= f.first:
		// A part (the cloud stopped at a gap or its byte budget): resend
		// the rest now.
		l.w.inflight, l.w.unacked = nil, 0
	default:
		// An older ack (a duplicate delivery): the batch in flight still
		// waits for its own, or for the timeout.
		return
	}
	l.drain()
	if l.w.inflight == nil {
		l.publishStatus() // outbox empty: say so
	}
}
