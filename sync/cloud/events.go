package cloud

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// DefaultEventsLimit is what Events returns when asked for limit <= 0.
const DefaultEventsLimit = 1000

// bucket is a token bucket (see Rate).
type bucket struct {
	tokens float64
	last   time.Time
}

// refill adds the tokens earned since the last call (a new bucket starts
// full).
func (b *bucket) refill(now time.Time, r Rate) {
	if b.last.IsZero() {
		b.tokens = float64(r.Burst)
	} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(float64(r.Burst), b.tokens+dt*r.PerSecond)
	}
	if now.After(b.last) {
		b.last = now
	}
}

func (b *bucket) allow(now time.Time, r Rate) bool {
	b.refill(now, r)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (c *Cloud) allow(m map[string]*bucket, boxID string, r Rate) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := m[boxID]
	if b == nil {
		b = &bucket{}
		m[boxID] = b
	}
	return b.allow(c.opts.Now(), r)
}

// OnEvents adds a hook called with the events of each batch that stored
// new ones, after they are durably stored, in sequence order. It runs on
// the goroutine that ingested them: keep it short, or hand the work on.
func (c *Cloud) OnEvents(fn func(boxID string, evs []box.Event)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks = append(c.hooks, fn)
}

// IngestEvents stores the events of a batch from boxID that the cloud has
// not seen, all in one transaction, and returns the signed ack to send back
// and how many events were new.
//
// Only the run of events that continues the box's highest stored sequence
// number without a gap is stored: an event after a missing one waits for
// the box to resend from the gap (it does, from its oldest unacked event).
// Duplicates are skipped. The ack says "through the highest seq stored with
// nothing missing before it", which is what lets the box forget them.
//
// Seqs in the ack are the box's own; the events stored (and given to the
// hooks and Events) carry the cloud's, which differ only after the box was
// registered again with a new key (see RegisterBox). The ack is signed for
// the key the box is registered with (wire.Audience).
//
// Bounds, each counted in Stats and logged as a security line at most once
// per box and SecurityLogWindow:
//   - an event over MaxEventDetail or MaxEventSize is stored cut short (see
//     capEvent) and acked like any other, so the box's outbox moves on;
//   - the events stored count against the box's EventBytes budget: the run
//     that fits is stored and acked, the rest is not (the box resends it),
//     and a batch of which nothing fits is refused with ErrThrottled;
//   - a batch over the box's EventRate is refused with ErrThrottled.
//
// A refused batch gets no ack, so the box keeps its events and retries
// later; a batch naming another box is refused with wire.ErrWrongBox.
func (c *Cloud) IngestEvents(boxID string, batch wire.EventBatch) (ack []byte, stored int, err error) {
	if batch.V != wire.Version {
		c.stats.malformed.Add(1)
		return nil, 0, fmt.Errorf("cloud: events of box %s: %w: v=%d", boxID, wire.ErrVersion, batch.V)
	}
	if batch.Box != boxID {
		c.stats.wrongBox.Add(1)
		return nil, 0, fmt.Errorf("cloud: events of box %s: %w: the batch says box %q", boxID, wire.ErrWrongBox, batch.Box)
	}
	if !c.allow(c.events, boxID, c.opts.EventRate) {
		c.stats.eventsThrottled.Add(1)
		return nil, 0, fmt.Errorf("cloud: events of box %s: %w (%g batches/s, burst %d)", boxID, ErrThrottled,
			c.opts.EventRate.PerSecond, c.opts.EventRate.Burst)
	}
	evs := slices.Clone(batch.Events)
	slices.SortStableFunc(evs, func(a, b box.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	now := c.opts.Now()
	budget := c.byteBudget(boxID, now)
	// through is in the box's own numbering (what the ack speaks); the
	// stored seq is base+through (see boxMeta.SeqBase).
	var through, base uint64
	var fresh []box.Event
	var dups, past, cut, overBudget, spent, expired uint64
	var pub []byte
	err = c.update("ingest events", boxID, func(bt boxTx) error {
		// Reset: the engine may run this again (PostgreSQL, after a
		// conflict).
		fresh, dups, past, cut, overBudget, spent = fresh[:0], 0, 0, 0, 0, 0
		m := bt.meta()
		pub = bytes.Clone(m.Pub)
		base = m.SeqBase
		if m.SeqBasePending && len(evs) > 0 {
			if evs[0].Seq != 1 {
				base = 0 // the box kept its outbox: same numbering as before
			}
			m.SeqBase, m.SeqBasePending = base, false
		}
		through = m.HighSeq - base
		for i, e := range evs {
			switch {
			case e.Seq <= through:
				dups++
				continue
			case e.Seq != through+1:
				past = uint64(len(evs) - i)
			}
			if past > 0 {
				break
			}
			e.Seq += base
			e, v, wasCut, err := capEvent(e)
			if err != nil {
				return err
			}
			if spent+uint64(len(v)) > budget {
				overBudget = uint64(len(evs) - i)
				break
			}
			if wasCut {
				cut++
			}
			spent += uint64(len(v))
			through = e.Seq - base
			if err := bt.putEvent(e.Seq, v); err != nil {
				return err
			}
			fresh = append(fresh, e)
		}
		if len(fresh) > 0 {
			m.HighSeq = base + through
			if err := bt.putDay(day(now), m.HighSeq); err != nil {
				return err
			}
		}
		if err := bt.setMeta(m); err != nil {
			return err
		}
		var err error
		expired, err = c.sweepBox(bt, now)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	c.spendBytes(boxID, now, spent)
	c.stats.duplicateEvents.Add(dups)
	c.stats.eventsPastGap.Add(past)
	c.stats.eventsOversize.Add(cut)
	c.stats.eventsOverBudget.Add(overBudget)
	c.stats.eventsExpired.Add(expired)
	if cut > 0 || overBudget > 0 {
		c.securityNote(boxID, now, cut, overBudget)
	}
	if past > 0 {
		c.log.Info("event batch has a gap: stored up to it, the box will resend the rest",
			"box", boxID, "through", through, "not_stored", past)
	}
	if overBudget > 0 && len(fresh) == 0 {
		c.stats.eventsThrottled.Add(1)
		return nil, 0, fmt.Errorf("cloud: events of box %s: %w (%d event bytes an hour, burst %d)", boxID, ErrThrottled,
			int64(c.opts.EventBytes.PerSecond*3600), c.opts.EventBytes.Burst)
	}
	ack, err = c.opts.Signer.Sign(wire.KindEventsAck, boxID, pub, wire.EventAck{V: wire.Version, Box: boxID, Through: through})
	if err != nil {
		return nil, len(fresh), fmt.Errorf("cloud: events of box %s: %w", boxID, err)
	}
	if len(fresh) > 0 {
		c.mu.Lock()
		hooks := slices.Clone(c.hooks)
		c.mu.Unlock()
		for _, h := range hooks {
			h(boxID, fresh)
		}
	}
	return ack, len(fresh), nil
}

// Events returns up to limit stored events of a box with seq > afterSeq,
// in sequence order.
func (c *Cloud) Events(boxID string, afterSeq uint64, limit int) ([]box.Event, error) {
	if limit <= 0 {
		limit = DefaultEventsLimit
	}
	var out []box.Event
	err := c.view("events", boxID, func(bt boxTx) error {
		return bt.forEachEvent(afterSeq, limit, func(seq uint64, v []byte) error {
			var e box.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event %d: stored record: %w", seq, err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// HighestSeq is the highest event seq stored for the box with none missing.
func (c *Cloud) HighestSeq(boxID string) (seq uint64, err error) {
	err = c.view("highest seq", boxID, func(bt boxTx) error {
		seq = bt.meta().HighSeq
		return nil
	})
	return seq, err
}

// Bounds on what one event may take in the cloud's store. Events are short
// records for people and the bridge: a type, ids of at most 128 bytes, a
// line of detail.
const (
	// MaxEventDetail bounds an event's Detail as stored, in bytes. The box's
	// longest details are the link's own sync_refused lines, which it cuts
	// at 500 bytes, and a remote release's "command ID by WHO: REASON";
	// 512 keeps those whole. Longer is cut, with a marker saying how much
	// was left out.
	MaxEventDetail = 512
	// MaxEventSize bounds one event as stored (its JSON). An event with
	// every field at its bound (three 128-byte ids, a 512-byte detail)
	// encodes in about 1.1 KiB; 2 KiB leaves room for JSON escapes. An event
	// still over it after its detail is cut is stored as an event_dropped
	// placeholder with its seq and time.
	MaxEventSize = 2 << 10
)

// EventDropped is the type of the placeholder stored for an event too big
// to keep (see MaxEventSize). It is the cloud's, never sent by a box: the
// box's seq stays in the cloud's numbering with no gap, and the box gets
// its ack and moves on.
const EventDropped box.EventType = "event_dropped"

// cutMarker ends a Detail that was cut to MaxEventDetail.
const cutMarker = " [cut by the cloud: %d bytes]"

// capEvent bounds e to MaxEventDetail and MaxEventSize and returns it with
// its stored encoding; cut says whether it had to be changed.
func capEvent(e box.Event) (_ box.Event, v []byte, cut bool, err error) {
	if len(e.Detail) > MaxEventDetail {
		n := len(e.Detail)
		keep := MaxEventDetail - len(fmt.Sprintf(cutMarker, n))
		for keep > 0 && !utf8.RuneStart(e.Detail[keep]) {
			keep-- // cut between characters, not inside one
		}
		e.Detail = e.Detail[:keep] + fmt.Sprintf(cutMarker, n)
		cut = true
	}
	if v, err = json.Marshal(e); err != nil {
		return e, nil, false, fmt.Errorf("event %d: encoding: %w", e.Seq, err)
	}
	if len(v) <= MaxEventSize {
		return e, v, cut, nil
	}
	e = box.Event{Seq: e.Seq, Time: e.Time, ClockUntrusted: e.ClockUntrusted, Type: EventDropped,
		Detail: fmt.Sprintf("a %.40q event of %d bytes, over the cloud's %d", e.Type, len(v), MaxEventSize)}
	if v, err = json.Marshal(e); err != nil {
		return e, nil, false, fmt.Errorf("event %d: encoding: %w", e.Seq, err)
	}
	return e, v, true, nil
}

// DefaultEventBytes is each box's budget of stored event bytes. A busy box
// (12 keys each taken and returned ten times a day, 8 events a round, 100
// records_applied) sends about 1,060 events a day of 126 bytes on average:
// 134 KB a day (TestBusyBoxUnaffected measures it), perhaps 40 KB in its
// busiest hour. 1 MiB an hour is 25 times that busiest hour; the 8 MiB
// burst takes back a month of such a box's outbox (4 MB) at once after an
// outage. A box flooding made-up events stores at most 8 MiB and then
// 24 MiB a day, not the hundreds of MB one password could push before.
var DefaultEventBytes = Rate{PerSecond: (1 << 20) / 3600.0, Burst: 8 << 20}

// SecurityLogWindow is how often at most the cloud logs a security line
// per box about events it cut or held back: a flood makes one line a
// window with the counts, not one per event.
const SecurityLogWindow = 10 * time.Minute

// byteBudget is how many event bytes boxID may store now.
func (c *Cloud) byteBudget(boxID string, now time.Time) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.eventBytes[boxID]
	if b == nil {
		b = &bucket{}
		c.eventBytes[boxID] = b
	}
	b.refill(now, c.opts.EventBytes)
	return uint64(max(b.tokens, 0))
}

// spendBytes takes n stored bytes from boxID's budget.
func (c *Cloud) spendBytes(boxID string, now time.Time, n uint64) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.eventBytes[boxID]
	b.refill(now, c.opts.EventBytes)
	b.tokens -= float64(n)
}

// securityWindow is what a box did since its last security line.
type securityWindow struct {
	logged          time.Time
	cut, overBudget uint64
}

// securityNote counts events of boxID cut short or held back by the byte
// budget, and logs a security line with the counts at most once per
// SecurityLogWindow.
func (c *Cloud) securityNote(boxID string, now time.Time, cut, overBudget uint64) {
	c.mu.Lock()
	w := c.secWindows[boxID]
	if w == nil {
		w = &securityWindow{}
		c.secWindows[boxID] = w
	}
	w.cut += cut
	w.overBudget += overBudget
	if !w.logged.IsZero() && now.Sub(w.logged) < SecurityLogWindow {
		c.mu.Unlock()
		return
	}
	cut, overBudget = w.cut, w.overBudget
	since := w.logged
	w.logged, w.cut, w.overBudget = now, 0, 0
	c.mu.Unlock()
	c.log.Warn("security: a box sends events over the cloud's bounds", "security", true, "box", boxID,
		"events_cut", cut, "events_over_budget", overBudget, "since", since,
		"max_event_bytes", MaxEventSize, "max_detail_bytes", MaxEventDetail,
		"budget_bytes_per_hour", int64(c.opts.EventBytes.PerSecond*3600))
}
