package cloud

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

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

func (b *bucket) allow(now time.Time, r Rate) bool {
	if b.last.IsZero() {
		b.tokens = float64(r.Burst)
	} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(float64(r.Burst), b.tokens+dt*r.PerSecond)
	}
	b.last = now
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
// registered again with a new key (see RegisterBox).
//
// A batch over the box's EventRate is refused with ErrThrottled and no ack,
// so the box keeps the events and retries later; a batch naming another box
// is refused with wire.ErrWrongBox.
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
	// through is in the box's own numbering (what the ack speaks); the
	// stored seq is base+through (see kSeqBase).
	var through, base uint64
	var fresh []box.Event
	var dups, past uint64
	err = c.update("ingest events", boxID, func(bt *boxTx) error {
		// Reset: bbolt may not, but keep the closure safe to rerun.
		fresh, dups, past = fresh[:0], 0, 0
		base = getU64(bt.meta, kSeqBase)
		if bt.meta.Get(kSeqBasePending) != nil && len(evs) > 0 {
			if evs[0].Seq != 1 {
				base = 0 // the box kept its outbox: same numbering as before
			}
			if err := bt.meta.Put(kSeqBase, u64(base)); err != nil {
				return err
			}
			if err := bt.meta.Delete(kSeqBasePending); err != nil {
				return err
			}
		}
		through = getU64(bt.meta, kHighSeq) - base
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
			through = e.Seq
			e.Seq += base
			v, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("event %d: encoding: %w", e.Seq, err)
			}
			if err := bt.ev.Put(u64(e.Seq), v); err != nil {
				return err
			}
			fresh = append(fresh, e)
		}
		if len(fresh) == 0 {
			return nil
		}
		return bt.meta.Put(kHighSeq, u64(base+through))
	})
	if err != nil {
		return nil, 0, err
	}
	c.stats.duplicateEvents.Add(dups)
	c.stats.eventsPastGap.Add(past)
	if past > 0 {
		c.log.Info("event batch has a gap: stored up to it, the box will resend the rest",
			"box", boxID, "through", through, "not_stored", past)
	}
	ack, err = c.opts.Signer.Sign(wire.KindEventsAck, boxID, wire.EventAck{V: wire.Version, Box: boxID, Through: through})
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
	err := c.view("events", boxID, func(bt *boxTx) error {
		cur := bt.ev.Cursor()
		for k, v := cur.Seek(u64(afterSeq + 1)); k != nil && len(out) < limit; k, v = cur.Next() {
			if afterSeq == ^uint64(0) || binary.BigEndian.Uint64(k) <= afterSeq {
				break
			}
			var e box.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event %d: stored record: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// HighestSeq is the highest event seq stored for the box with none missing.
func (c *Cloud) HighestSeq(boxID string) (seq uint64, err error) {
	err = c.view("highest seq", boxID, func(bt *boxTx) error {
		seq = getU64(bt.meta, kHighSeq)
		return nil
	})
	return seq, err
}
