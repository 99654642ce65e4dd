package cloud

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultEventRetention is how long the cloud keeps a box's events. The
// bridge acts on events within minutes (bookings, overdue keys) and people
// look back over the last weeks or a quarter's audit; 90 days covers that
// and bounds the store of a box that sends for years.
const DefaultEventRetention = 90 * 24 * time.Hour

// sweepEvery is how often Serve sweeps the events of every box, so that a
// box gone silent has its old events deleted too (a box that sends has its
// own swept on ingest).
const sweepEvery = time.Hour

// day is the cloud's day number of t: events are indexed by the day the
// cloud received them (bDays), never by the box's clock, which may say
// 1970 on a Pi that booted without network.
func day(t time.Time) uint64 { return uint64(max(t.Unix(), 0) / 86400) }

// noteReceived records that events through seq (the cloud's numbering)
// were received on now's day.
func (bt *boxTx) noteReceived(now time.Time, seq uint64) error {
	days, err := bt.daysBucket()
	if err != nil {
		return err
	}
	return days.Put(u64(day(now)), u64(seq))
}

// daysBucket returns the box's received-day index, making it for a store
// made before retention existed. Events stored before then are indexed as
// received now (the index's first entry), so they go one retention after
// the upgrade rather than never.
func (bt *boxTx) daysBucket() (*bolt.Bucket, error) {
	if bt.days != nil {
		return bt.days, nil
	}
	if !bt.b.Writable() {
		return nil, nil
	}
	days, err := bt.b.CreateBucketIfNotExists(bDays)
	if err != nil {
		return nil, err
	}
	bt.days = days
	return days, nil
}

// sweepBox deletes the box's events received on days wholly older than the
// retention: an event is kept at least EventRetention and at most a day
// more. It touches only the index's oldest entries, so it is cheap to run
// on every ingest.
func (c *Cloud) sweepBox(bt *boxTx, now time.Time) (deleted uint64, err error) {
	days, err := bt.daysBucket()
	if err != nil || days == nil {
		return 0, err
	}
	if k, _ := days.Cursor().First(); k == nil && getU64(bt.meta, kHighSeq) > 0 {
		// An old store: index what it holds as received today.
		if err := days.Put(u64(day(now)), u64(getU64(bt.meta, kHighSeq))); err != nil {
			return 0, err
		}
	}
	cutoff := day(now.Add(-c.opts.EventRetention))
	var old [][]byte
	var through uint64
	cur := days.Cursor()
	for k, v := cur.First(); k != nil && binary.BigEndian.Uint64(k) < cutoff; k, v = cur.Next() {
		old = append(old, k)
		through = binary.BigEndian.Uint64(v)
	}
	if len(old) == 0 {
		return 0, nil
	}
	var seqs [][]byte
	ev := bt.ev.Cursor()
	for k, _ := ev.First(); k != nil && binary.BigEndian.Uint64(k) <= through; k, _ = ev.Next() {
		seqs = append(seqs, k)
	}
	for _, k := range seqs {
		if err := bt.ev.Delete(k); err != nil {
			return 0, err
		}
	}
	for _, k := range old {
		if err := days.Delete(k); err != nil {
			return 0, err
		}
	}
	return uint64(len(seqs)), nil
}

// SweepEvents deletes, for every box, the events received more than
// Options.EventRetention ago, and returns how many it deleted. Serve runs
// it every hour; ingest sweeps the sending box on the way.
func (c *Cloud) SweepEvents() (deleted int, err error) {
	ids, err := c.Boxes()
	if err != nil {
		return 0, err
	}
	now := c.opts.Now()
	for _, id := range ids {
		var n uint64
		if err := c.update("sweep events", id, func(bt *boxTx) error {
			n, err = c.sweepBox(bt, now)
			return err
		}); err != nil {
			return deleted, err
		}
		c.stats.eventsExpired.Add(n)
		deleted += int(n)
	}
	if deleted > 0 {
		c.log.Info("old events deleted", "deleted", deleted, "retention", c.opts.EventRetention)
	}
	return deleted, nil
}

// sweepLoop runs SweepEvents every sweepEvery until done is closed.
func (c *Cloud) sweepLoop(done <-chan struct{}) {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			if _, err := c.SweepEvents(); err != nil {
				c.log.Error("sweeping old events", "err", fmt.Sprint(err))
			}
		}
	}
}
