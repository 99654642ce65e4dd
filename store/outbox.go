package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
)

// DefaultOutboxQuota is how many unacknowledged events the outbox holds
// before refusal-class events stop being stored one by one (see
// box.EventType.Refusal and doc.go). A busy box (12 slots, a hundred takes
// and returns a day, six to eight events each) makes under 1,000 events a
// day, so 50,000 is seven weeks offline of normal traffic. On disk it is
// about 34 MB (measured: 50,000 code_refused events grew a file by 33.7 MB,
// 674 bytes an event with bbolt's pages and growth steps), a few per cent of
// the smallest SD card, where the unbounded outbox let someone typing codes
// for a week (one every 2 s) add 300,000 events, 200 MB.
const DefaultOutboxQuota = 50_000

// mergedRefusals counts the refusal-class events not stored because the
// outbox was at its quota, until one refusals_merged stands for them.
type mergedRefusals struct {
	Count          int                   `json:"count"`
	ByType         map[box.EventType]int `json:"by_type"`
	First          time.Time             `json:"first"`
	Last           time.Time             `json:"last"`
	ClockUntrusted bool                  `json:"clock_untrusted,omitempty"`
}

func (m *mergedRefusals) add(e box.Event, now time.Time) {
	n := 1
	if e.Type == box.EventRefusalsMerged && e.Count > 0 {
		n = e.Count // already a merge of n
	}
	if m.ByType == nil {
		m.ByType = map[box.EventType]int{}
	}
	m.Count += n
	m.ByType[e.Type] += n
	t := e.Time
	if t.IsZero() {
		t = now
	}
	if m.First.IsZero() || t.Before(m.First) {
		m.First = t
	}
	if t.After(m.Last) {
		m.Last = t
	}
	m.ClockUntrusted = m.ClockUntrusted || e.ClockUntrusted
}

// event is the refusals_merged that stands for m.
func (m *mergedRefusals) event(now time.Time, quota int) box.Event {
	types := slices.Sorted(maps.Keys(m.ByType))
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, m.ByType[t])
	}
	return box.Event{Type: box.EventRefusalsMerged, Time: now, Count: m.Count, ClockUntrusted: m.ClockUntrusted,
		Detail: fmt.Sprintf("outbox at its quota of %d events: %d refusals counted, not stored (%s), %s to %s",
			quota, m.Count, strings.Join(parts, ", "), m.First.UTC().Format(time.RFC3339), m.Last.UTC().Format(time.RFC3339))}
}

func getMerged(tx *bolt.Tx) (mergedRefusals, error) {
	var m mergedRefusals
	v := tx.Bucket(bucketMeta).Get(metaMergedRefusals)
	if v == nil {
		return m, nil
	}
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("%w: meta %s does not decode: %v", ErrCorrupt, metaMergedRefusals, err)
	}
	return m, nil
}

func putMerged(tx *bolt.Tx, m mergedRefusals) error {
	if m.Count == 0 {
		return tx.Bucket(bucketMeta).Delete(metaMergedRefusals)
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(metaMergedRefusals, v)
}

// outboxDepth is the number of events not yet acknowledged (see OutboxDepth).
func outboxDepth(tx *bolt.Tx) int {
	c := tx.Bucket(bucketOutbox).Cursor()
	first, _ := c.First()
	if first == nil {
		return 0
	}
	last, _ := c.Last()
	return int(seqOf(last) - seqOf(first) + 1)
}

// appendEvents gives events the next sequence numbers and writes them to the
// outbox, and returns the ones written. The last number lives in meta, so
// numbering goes on after the outbox has been emptied by AckEvents.
//
// The quota: while the outbox holds s.quota events or more, a refusal-class
// event is not written but counted (in meta, in this transaction); the first
// call that finds room writes one refusals_merged for all of them, before
// its own events. Every other event is written whatever the depth. Nothing
// written is ever renumbered or dropped: sequence numbers stay gap-free.
func (s *Store) appendEvents(tx *bolt.Tx, events []box.Event, now time.Time) ([]box.Event, error) {
	for i, e := range events {
		if e.Type == "" {
			return nil, fmt.Errorf("events[%d]: no type", i)
		}
	}
	merged, err := getMerged(tx)
	if err != nil {
		return nil, err
	}
	before := merged.Count
	depth := outboxDepth(tx)
	var keep []box.Event
	if merged.Count > 0 && depth < s.quota {
		keep = append(keep, merged.event(now, s.quota))
		merged, depth = mergedRefusals{}, depth+1
	}
	flushed := before > 0 && merged.Count == 0
	for _, e := range events {
		if e.Type.Refusal() && depth >= s.quota {
			merged.add(e, now)
			continue
		}
		keep = append(keep, e)
		depth++
	}
	if merged.Count != before || flushed {
		if merged.Count > 0 && !flushed {
			s.log.Warn("store: outbox at its quota: refusals counted, not stored", "quota", s.quota,
				"counted", merged.Count-before, "pending", merged.Count)
		}
		if err := putMerged(tx, merged); err != nil {
			return nil, err
		}
	}
	return writeEvents(tx, keep, now)
}

// writeEvents numbers events and puts them in the outbox.
func writeEvents(tx *bolt.Tx, events []box.Event, now time.Time) ([]box.Event, error) {
	if len(events) == 0 {
		return nil, nil
	}
	last, err := getU64(tx, metaLastSeq)
	if err != nil {
		return nil, err
	}
	outbox := tx.Bucket(bucketOutbox)
	out := make([]box.Event, len(events))
	for i, e := range events {
		last++
		e.Seq = last
		if e.Time.IsZero() {
			e.Time = now
		}
		v, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("events[%d] (%s): encoding: %w", i, e.Type, err)
		}
		if err := outbox.Put(u64(last), v); err != nil {
			return nil, err
		}
		out[i] = e
	}
	if err := tx.Bucket(bucketMeta).Put(metaLastSeq, u64(last)); err != nil {
		return nil, err
	}
	return out, nil
}

// RefusalsPending is how many refusal-class events the outbox quota has
// counted and not yet written as a refusals_merged.
func (s *Store) RefusalsPending() (n int, err error) {
	err = s.view("refusals pending", func(tx *bolt.Tx) error {
		m, err := getMerged(tx)
		n = m.Count
		return err
	})
	return n, err
}

// Events returns up to limit outbox events with Seq > afterSeq, in sequence
// order. limit <= 0 means all of them.
func (s *Store) Events(afterSeq uint64, limit int) ([]box.Event, error) {
	var out []box.Event
	if afterSeq == math.MaxUint64 {
		return nil, nil // nothing is after the last seq there can be (afterSeq+1 would wrap to 0: every event)
	}
	err := s.view("events", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.Seek(u64(afterSeq + 1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			var e box.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: outbox event %d does not decode: %v", ErrCorrupt, seqOf(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

func seqOf(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// AckEvents removes the events with Seq <= throughSeq (the cloud has them
// for good) and returns how many went. Acknowledging a number the store
// never gave out is an error: the cloud is talking about another box's, or
// another file's, events.
func (s *Store) AckEvents(throughSeq uint64) (int, error) {
	n := 0
	err := s.update("ack events", func(tx *bolt.Tx) error {
		last, err := getU64(tx, metaLastSeq)
		if err != nil {
			return err
		}
		if throughSeq > last {
			return fmt.Errorf("ack through seq %d, but the last seq given out is %d", throughSeq, last)
		}
		outbox := tx.Bucket(bucketOutbox)
		// Collect first: deleting under a moving cursor can skip entries.
		var done [][]byte
		c := outbox.Cursor()
		for k, _ := c.First(); k != nil && seqOf(k) <= throughSeq; k, _ = c.Next() {
			done = append(done, append([]byte(nil), k...))
		}
		for _, k := range done {
			if err := outbox.Delete(k); err != nil {
				return err
			}
		}
		n = len(done)
		// Room again: the refusals counted at the quota become one event
		// (an empty append writes just that, if there is anything to write).
		_, err = s.appendEvents(tx, nil, s.now())
		return err
	})
	return n, err
}

// OutboxDepth is the number of events not yet acknowledged. Acks remove a
// prefix and sequence numbers have no gaps, so it is last - first + 1.
func (s *Store) OutboxDepth() (int, error) {
	n := 0
	err := s.view("outbox depth", func(tx *bolt.Tx) error {
		n = outboxDepth(tx)
		return nil
	})
	return n, err
}

// LastSeq is the sequence number of the last event committed (0: none yet).
func (s *Store) LastSeq() (seq uint64, err error) {
	err = s.view("last seq", func(tx *bolt.Tx) error {
		seq, err = getU64(tx, metaLastSeq)
		return err
	})
	return seq, err
}
