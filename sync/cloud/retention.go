package cloud

import (
	"fmt"
	"time"
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
// cloud received them (the received-day index), never by the box's clock,
// which may say 1970 on a Pi that booted without network.
func day(t time.Time) uint64 { return uint64(max(t.Unix(), 0) / 86400) }

// sweepBox deletes the box's events received on days wholly older than the
// retention: an event is kept at least EventRetention and at most a day
// more. It touches only the index's oldest entries, so it is cheap to run
// on every ingest.
//
// A store made before retention existed has no index: events stored before
// then are indexed as received now (the index's first entry), so they go
// one retention after the upgrade rather than never.
func (c *Cloud) sweepBox(bt boxTx, now time.Time) (deleted uint64, err error) {
	has, err := bt.hasDays()
	if err != nil {
		return 0, err
	}
	if high := bt.meta().HighSeq; !has && high > 0 {
		if err := bt.putDay(day(now), high); err != nil {
			return 0, err
		}
	}
	cutoff := day(now.Add(-c.opts.EventRetention))
	var old int
	var through uint64
	if err := bt.forEachDayBefore(cutoff, func(_, seq uint64) error {
		old++
		through = max(through, seq)
		return nil
	}); err != nil {
		return 0, err
	}
	if old == 0 {
		return 0, nil
	}
	if deleted, err = bt.deleteEventsThrough(through); err != nil {
		return 0, err
	}
	return deleted, bt.deleteDaysBefore(cutoff)
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
		if err := c.update("sweep events", id, func(bt boxTx) error {
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
