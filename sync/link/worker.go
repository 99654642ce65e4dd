package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/internal/retry"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Refusal events (sync_refused) are rate limited: a flood of forged
// messages must not fill the outbox. Ten at once, then one a minute; the
// next one says how many were left out.
const (
	refusalBurst = 10
	refusalEvery = time.Minute
)

// flight is the event batch waiting for its ack.
type flight struct {
	first, last uint64
	sentAt      time.Time
}

// workerState is what the worker goroutine alone reads and writes.
type workerState struct {
	online   bool    // the worker has seen the connection come up
	inflight *flight // nil: no event batch waiting for an ack
	unacked  int     // event batches in a row that got no ack (see AckWait)
	syncHave uint64  // have of the last SyncRequest
	syncAt   time.Time
	// syncPending: the last SyncRequest has had no answer yet (a verified
	// records batch, see answered); unanswered counts the requests in a
	// row that got none (see periodic).
	syncPending bool
	unanswered  int
	resync      bool   // a resync command: take a snapshot even at the revision held
	stageTo     uint64 // a snapshot being staged, waiting for more chunks
	lastChunkAt time.Time
}

// work is the worker loop: every store read and write of the link happens
// here, one at a time.
func (l *Link) work(ctx context.Context) {
	// Poll the outbox as a safety net for a missed Kick, and check the ack
	// timer; often enough for short test timeouts, rarely enough to cost
	// nothing on a box.
	poll := min(time.Second, l.opts.AckTimeout/4)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.in.ready:
			items, dropped := l.in.take()
			for _, it := range items {
				if ctx.Err() != nil {
					return
				}
				l.handle(it)
			}
			if dropped > 0 {
				l.log.Warn("sync: inbox full, messages dropped", "dropped", dropped)
				l.requestSync("inbox_overflow", false)
			}
		case <-l.kick:
			l.drain()
		case nonce := <-l.probeSend:
			l.sendProbe(nonce)
		case <-tick.C:
			l.periodic()
		}
	}
}

func (l *Link) handle(it item) {
	defer l.changed() // whatever it was, the link's state may have moved
	switch it.event {
	case evConnected:
		l.onConnect()
		return
	case evLost:
		l.w.online = false
		l.connected.Store(false)
		return
	}
	boxID, leaf, err := wire.ParseTopic(it.topic)
	switch {
	case err != nil:
		l.refuse("message", fmt.Errorf("topic %q: %w", it.topic, err))
		return
	case boxID != l.opts.BoxID:
		l.refuse("message", fmt.Errorf("%w: topic %q", wire.ErrWrongBox, it.topic))
		return
	}
	switch leaf {
	case wire.LeafRecords:
		l.onRecords(it.payload)
	case wire.LeafEventsAck:
		l.onAck(it.payload)
	case wire.LeafCommand:
		l.onCommand(it.payload)
	default:
		// Our own status or requests echoed by a wildcard subscription of
		// someone's making: not for us.
		l.log.Debug("sync: ignoring message", "topic", it.topic)
	}
}

func (l *Link) onConnect() {
	l.w.online = true
	l.log.Info("sync: connected", "broker", l.opts.BrokerURL)
	l.publishStatus()
	subs := map[string]byte{
		l.topic(wire.LeafRecords):   1,
		l.topic(wire.LeafEventsAck): 1,
		l.topic(wire.LeafCommand):   1,
	}
	// nil callback: messages go to the default publish handler, the one
	// route into the inbox. The persistent session usually has these
	// already; subscribing again is harmless and covers a broker that lost
	// it.
	tok := l.client.SubscribeMultiple(subs, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		l.log.Warn("sync: subscribe", "err", tok.Error())
	}
	l.connected.Store(l.client.IsConnectionOpen())
	// A batch in flight before the drop may be lost: start again from the
	// oldest unacked event (the cloud de-duplicates).
	l.w.inflight = nil
	l.requestSync("connect", true)
	l.drain()
}

// periodic runs on every tick.
func (l *Link) periodic() {
	now := l.now()
	if f := l.w.inflight; f != nil && now.Sub(f.sentAt) >= AckWait(l.opts.AckTimeout, l.opts.MaxAckWait, l.w.unacked) {
		l.w.unacked++
		l.log.Info("sync: no ack, resending events", "first", f.first, "last", f.last,
			"next_wait", AckWait(l.opts.AckTimeout, l.opts.MaxAckWait, l.w.unacked))
		l.w.inflight = nil
	}
	l.drain()
	if !l.w.online {
		return
	}
	switch {
	case l.w.syncPending:
		if now.Sub(l.w.syncAt) < AckWait(l.opts.AckTimeout, l.opts.MaxAckWait, l.w.unanswered) {
			break
		}
		// The replica that took the request may have been killed before it
		// answered (the cloud answers every request, a current box too):
		// ask again, each request in a row without an answer waiting twice
		// as long as the last, by the ack wait's rule and cap (MaxAckWait,
		// 5 minutes by default, under syncEvery): a box whose cloud is down
		// asks at that rate, no faster.
		l.w.unanswered++
		l.log.Info("sync: no answer, asking again", "have", l.w.syncHave,
			"next_wait", AckWait(l.opts.AckTimeout, l.opts.MaxAckWait, l.w.unanswered))
		reason := "no_answer"
		if l.w.stageTo != 0 {
			reason = "snapshot_incomplete"
		}
		l.requestSync(reason, true)
	case l.w.stageTo != 0 && now.Sub(l.w.lastChunkAt) >= l.opts.AckTimeout:
		// Chunks of a snapshot went missing (a broker restart): ask again.
		l.w.lastChunkAt = now
		l.requestSync("snapshot_incomplete", true)
	}
	if now.Sub(l.lastStatus) >= statusEvery {
		l.publishStatus()
	}
	if now.Sub(l.lastSync) >= syncEvery {
		l.requestSync("periodic", true)
	}
}

// AckWait is how long the box waits for the ack of an event batch after
// unacked batches in a row got none: AckTimeout, doubling with each batch
// that got no ack, up to max. A cloud that holds a box's events back (over
// its byte budget, ErrThrottled, with no ack) is not sent the same
// megabyte every AckTimeout; an ack of any part resets the wait. The events
// stay in the outbox throughout. sync/loadbox waits by the same rule, so
// that a load test resends as boxes do.
func AckWait(timeout, max time.Duration, unacked int) time.Duration {
	// The ceiling, not a draw: the wait is recomputed at every poll.
	return retry.Policy{Base: timeout, Cap: max}.Ceiling(unacked + 1)
}

// requestSync sends a SyncRequest for the revision the box holds. Unless
// force, a request for the same revision within AckTimeout of the last is
// left out: a burst of deltas after a gap, or of forged batches, makes one
// request, not one each.
func (l *Link) requestSync(reason string, force bool) {
	l.sendSync(reason, force, false)
}

func (l *Link) sendSync(reason string, force, fromZero bool) {
	if !l.w.online {
		return // the connect handshake will ask
	}
	have, err := l.st.Revision()
	if err != nil {
		l.log.Error("sync: reading the revision", "err", err)
		return
	}
	if fromZero {
		have = 0
	}
	now := l.now()
	if !force && have == l.w.syncHave && now.Sub(l.w.syncAt) < l.opts.AckTimeout {
		return
	}
	l.w.syncHave, l.w.syncAt, l.lastSync = have, now, now
	l.w.syncPending = true
	msg, err := json.Marshal(wire.SyncRequest{V: wire.Version, Box: l.opts.BoxID, Have: have, Reason: reason})
	if err != nil {
		return
	}
	l.log.Debug("sync: request", "have", have, "reason", reason)
	l.publish(wire.LeafSyncRequest, false, msg)
}

// answered notes that the cloud answered: a verified records batch came
// (applied, staged, or one the box holds already, the current answer). Any
// batch will do, not only the answer to the last request: a cloud that
// sends one is up, and the box is where the batch left it. A delta lost
// after one that applied leaves the box behind with nothing pending; the
// status it publishes after applying makes the cloud send the rest.
func (l *Link) answered() {
	l.w.syncPending, l.w.unanswered = false, 0
}

// statusMessage is the box's status now.
func (l *Link) statusMessage(online bool) ([]byte, error) {
	st := wire.Status{V: wire.Version, Box: l.opts.BoxID, Online: online, Software: l.opts.Software,
		Clock: l.opts.Now().UTC(), ClockTrusted: l.opts.ClockTrusted()}
	var err error
	if st.Revision, err = l.st.Revision(); err != nil {
		return nil, fmt.Errorf("link: status: %w", err)
	}
	if st.OutboxDepth, err = l.st.OutboxDepth(); err != nil {
		return nil, fmt.Errorf("link: status: %w", err)
	}
	if st.LastSeq, err = l.st.LastSeq(); err != nil {
		return nil, fmt.Errorf("link: status: %w", err)
	}
	return json.Marshal(st)
}

func (l *Link) publishStatus() {
	if !l.w.online {
		return
	}
	msg, err := l.statusMessage(true)
	if err != nil {
		l.log.Error("sync: status", "err", err)
		return
	}
	l.lastStatus = time.Now()
	l.publish(wire.LeafStatus, true, msg)
}

// refuse records a refused message as a sync_refused event (rate limited)
// and asks the cloud again for the records, so that a box fed garbage by a
// broker or a neighbour still gets the real batch.
func (l *Link) refuse(what string, err error) {
	l.log.Warn("sync: refused", "what", what, "err", err)
	l.noteRefused(fmt.Sprintf("%s: %v", what, err))
	if ok, suppressed := l.refusals.allow(time.Now()); ok {
		detail := fmt.Sprintf("%s: %v", what, err)
		if suppressed > 0 {
			detail += fmt.Sprintf(" (%d more refused and not recorded)", suppressed)
		}
		if len(detail) > 500 {
			detail = detail[:500]
		}
		l.record(box.Event{Type: box.EventSyncRefused, Detail: detail})
	}
	l.requestSync("refused", false)
}

// record commits events and kicks the drain.
func (l *Link) record(events ...box.Event) {
	now := l.opts.Now()
	for i := range events {
		events[i].Time = now
		events[i].ClockUntrusted = !l.opts.ClockTrusted()
	}
	if _, err := l.st.Commit(box.Change{Events: events}); err != nil {
		l.log.Error("sync: recording events", "err", err)
		return
	}
	l.Kick()
}

// storeRefusal says whether a store error is the batch's fault (a refusal,
// a security event) rather than the disk's.
func storeRefusal(err error) bool {
	return !errors.Is(err, store.ErrCorrupt) && !errors.Is(err, store.ErrRevisionMismatch)
}
