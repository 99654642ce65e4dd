package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/buildinfo"
	"github.com/smartbox-oss/smartbox/store"
)

// sourceFloor is a day this code was written (buildinfo defines it, for
// every binary): a clock earlier than this is wrong whatever else is missing.
var sourceFloor = buildinfo.SourceFloor

const (
	// floorWriteInterval is how often a running box whose clock is trusted
	// has the store remember the time (and once at start and at stop). It
	// weighs flash wear against how far back a power cut can take the clock
	// unnoticed: a clock that comes back at most this much before the last
	// write passes. A write is one bbolt commit and fdatasync, 28 KiB
	// written to the disk (measured with /proc/self/io over 200 writes on
	// ext4): every 5 minutes is 288 a day, 8 MB a day, 3 GB a year, which a
	// wear-levelled 16 GB card (tens of TB of endurance) does not notice,
	// while a board with fake-hwclock (which saves the time hourly) or a
	// flat RTC battery comes back well over 5 minutes behind and is caught.
	floorWriteInterval = 5 * time.Minute
	// floorCheckInterval is how often the running box checks that its clock
	// has not gone back below the floor it has reached (a reading of the
	// clock, no I/O).
	floorCheckInterval = time.Second
	// floorTolerance is how far below the floor the clock may step before
	// the box treats it as gone back: NTP steps a clock that ran ahead by
	// fractions of a second, which is no reason to restart.
	floorTolerance = time.Minute
)

// floorSource is one candidate for the clock floor and where it came from.
type floorSource struct {
	t    time.Time
	from string // "build_time", "source", "config", "store"
}

// clockFloor is the earliest time the box clock may say and be trusted: the
// latest of the build time, the source date, the config's clock.floor and
// the latest time the store remembers the box having seen. It also keeps
// the store's remembered time moving while the box runs (Run).
//
// The guard against a clock that jumped into the future being remembered
// (it would make the corrected clock untrusted until that future date, with
// no way back but editing the store): the time remembered is the box clock,
// but never more than the floor at start plus the time that has really
// passed since (Go's monotonic clock, which a change of the wall clock does
// not move). If every floor source was true when the daemon started, the
// floor stays at or behind the true time, so the remembered floor can never
// make a correct clock untrusted. The price: the floor does not learn the
// time a box spent switched off, so it lags the true time by the box's
// total downtime; a clock set back by less than that lag still passes.
type clockFloor struct {
	st      *store.Store
	clock   box.Clock
	log     *slog.Logger
	base    time.Time            // the floor at start: what the controller was given
	elapsed func() time.Duration // real time since start (monotonic)

	mu     sync.Mutex
	floor  time.Time
	from   string
	stored time.Time // what the store remembers
}

// newClockFloor reads the store's remembered time and takes the latest of
// it and sources (zero times are absent).
func newClockFloor(st *store.Store, clock box.Clock, log *slog.Logger, sources ...floorSource) (*clockFloor, error) {
	stored, err := st.ClockFloor()
	if err != nil {
		return nil, fmt.Errorf("reading the clock floor: %w", err)
	}
	f := &clockFloor{st: st, clock: clock, log: log, stored: stored}
	for _, s := range append(sources, floorSource{stored, "store"}) {
		if s.t.After(f.floor) {
			f.floor, f.from = s.t.Round(0).UTC(), s.from
		}
	}
	if f.floor.IsZero() {
		// Only if a caller passed nothing: the daemon always passes
		// sourceFloor.
		f.floor, f.from = sourceFloor, "source"
	}
	f.base = f.floor
	started := time.Now()
	f.elapsed = func() time.Duration { return time.Since(started) }
	return f, nil
}

// Floor is the floor in force and where it came from.
func (f *clockFloor) Floor() (time.Time, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.floor, f.from
}

// Trusted reports whether the box clock can be believed now.
func (f *clockFloor) Trusted() bool {
	floor, _ := f.Floor()
	return !f.clock.Now().Before(floor)
}

// remember has the store remember the time the box has seen, if its clock
// is trusted: the clock, capped at base plus the real time since start.
func (f *clockFloor) remember() error {
	now := f.clock.Now().Round(0)
	f.mu.Lock()
	floor, stored := f.floor, f.stored
	f.mu.Unlock()
	if now.Before(floor) {
		return nil // an untrusted clock vouches for nothing
	}
	seen := now
	if limit := f.base.Add(f.elapsed()); seen.After(limit) {
		seen = limit
	}
	if !seen.After(stored) {
		return nil
	}
	got, err := f.st.RaiseClockFloor(seen)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stored = got
	if got.After(f.floor) {
		f.floor, f.from = got, "store"
	}
	return nil
}

// errClockWentBack ends a daemon whose clock went back below its floor
// while the controller (which checks against the floor at start) would
// still trust it: the restarted daemon starts from the new floor.
var errClockWentBack = errors.New("the box clock went back")

// check returns errClockWentBack if the clock is now well below the floor
// reached while running but not below the one the controller started with.
func (f *clockFloor) check() error {
	now := f.clock.Now().Round(0)
	floor, _ := f.Floor()
	if now.Before(f.base) || !now.Before(floor.Add(-floorTolerance)) {
		return nil
	}
	return fmt.Errorf("%w to %s, %s before the %s it had already seen: stopping so that the restarted box checks its clock against that",
		errClockWentBack, now.UTC().Format(time.RFC3339), floor.Sub(now).Round(time.Second), floor.UTC().Format(time.RFC3339))
}

// Run remembers the time at start, every floorWriteInterval and when ctx
// ends, and checks the clock every floorCheckInterval; it returns
// errClockWentBack (wrapped) if the clock goes back below what it saw. A
// failing write is logged, not fatal: the floor is a safeguard, and the
// keypad matters more.
func (f *clockFloor) Run(ctx context.Context) error {
	write := func() {
		if err := f.remember(); err != nil {
			f.log.Error("remembering the clock floor", "err", err)
		}
	}
	write()
	writes := time.NewTicker(floorWriteInterval)
	defer writes.Stop()
	checks := time.NewTicker(floorCheckInterval)
	defer checks.Stop()
	for {
		select {
		case <-ctx.Done():
			write()
			return nil
		case <-writes.C:
			write()
		case <-checks.C:
			if err := f.check(); err != nil {
				return err
			}
		}
	}
}

// offsetClock is the system clock moved by an offset: the simulated
// board's clock. The sim profile always runs on one; --sim-clock sets where
// it starts (a board without an RTC battery boots in 1970) and the socket's
// PUT /v1/sim/clock moves it while the box runs. Its readings keep their
// monotonic part, moved by the same offset.
type offsetClock struct {
	box.SystemClock
	offset atomic.Int64 // time.Duration
}

// newOffsetClock returns a clock that says start now (zero: the system's
// time).
func newOffsetClock(start time.Time) *offsetClock {
	c := &offsetClock{}
	if !start.IsZero() {
		c.Set(start)
	}
	return c
}

func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Set makes the clock say t now and run on from there.
func (c *offsetClock) Set(t time.Time) { c.offset.Store(int64(time.Until(t))) }

// Reset puts the clock back on the system's time.
func (c *offsetClock) Reset() { c.offset.Store(0) }
