package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
)

// appendEvents gives events the next sequence numbers and writes them to the
// outbox. The last number lives in meta, so numbering goes on after the
// outbox has been emptied by AckEvents.
func appendEvents(tx *bolt.Tx, events []box.Event, now time.Time) ([]box.Event, error) {
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
		if e.Type == "" {
			return nil, fmt.Errorf("events[%d]: no type", i)
		}
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

// Events returns up to limit outbox events with Seq > afterSeq, in sequence
// order. limit <= 0 means all of them.
func (s *Store) Events(afterSeq uint64, limit int) ([]box.Event, error) {
	var out []box.Event
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
		return nil
	})
	return n, err
}

// OutboxDepth is the number of events not yet acknowledged. Acks remove a
// prefix and sequence numbers have no gaps, so it is last - first + 1.
func (s *Store) OutboxDepth() (int, error) {
	n := 0
	err := s.view("outbox depth", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		first, _ := c.First()
		if first == nil {
			return nil
		}
		last, _ := c.Last()
		n = int(seqOf(last) - seqOf(first) + 1)
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
