package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// metaClockFloor is the latest time the box has vouched for (RFC 3339 text,
// UTC); absent until the first RaiseClockFloor.
var metaClockFloor = []byte("clock_floor")

// ClockFloor is the latest time the store was told the box has seen with a
// trusted clock (RaiseClockFloor); zero if it was never told. A box clock
// before it is wrong: time does not go back.
func (s *Store) ClockFloor() (t time.Time, err error) {
	err = s.view("clock floor", func(tx *bolt.Tx) error {
		t, err = getClockFloor(tx)
		return err
	})
	return t, err
}

// RaiseClockFloor remembers t as a time the box has seen, if it is later
// than the one remembered, and returns the floor now in force. It never
// lowers it. What time it is given, and how often, is the caller's policy
// (smartboxd: its trusted clock, capped by how much time has really passed;
// see cmd/smartboxd/doc.go): the store only keeps the maximum.
func (s *Store) RaiseClockFloor(t time.Time) (floor time.Time, err error) {
	t = t.Round(0).UTC() // wall clock only
	err = s.update("raise clock floor", func(tx *bolt.Tx) error {
		floor, err = getClockFloor(tx)
		if err != nil || !t.After(floor) {
			return err
		}
		v, err := t.MarshalText()
		if err != nil {
			return fmt.Errorf("clock floor %v: %w", t, err)
		}
		floor = t
		return tx.Bucket(bucketMeta).Put(metaClockFloor, v)
	})
	return floor, err
}

func getClockFloor(tx *bolt.Tx) (time.Time, error) {
	var t time.Time
	v := tx.Bucket(bucketMeta).Get(metaClockFloor)
	if v == nil {
		return t, nil
	}
	if err := t.UnmarshalText(v); err != nil {
		return t, fmt.Errorf("%w: meta %s: %v", ErrCorrupt, metaClockFloor, err)
	}
	return t, nil
}
