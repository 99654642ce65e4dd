package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxhw"
	"github.com/smartbox-oss/smartbox/cmd/internal/broadcast"
	"github.com/smartbox-oss/smartbox/hal/keypad"
	"github.com/smartbox-oss/smartbox/hal/rfid"
	"github.com/smartbox-oss/smartbox/hal/slots"
	"github.com/smartbox-oss/smartbox/sim"
	simrfid "github.com/smartbox-oss/smartbox/sim/rfid"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/link"
)

// daemon is one running box: store, hardware and controller.
type daemon struct {
	// immutable after newDaemon
	cfg    *boxconfig.Config
	log    *slog.Logger
	store  *store.Store
	ctrl   *box.Controller
	keypad *keypad.Dev
	slots  *slots.Dev
	reader *rfid.Reader
	link   *link.Link   // nil for an offline box (no [cloud])
	clock  box.Clock    // the box clock (the system's, or the simulator's --sim-clock)
	floor  *clockFloor  // the earliest trusted time, kept moving by run
	sim    *simHardware // nil on real hardware
	input  *inputRouter // the controller, or a technician's self-test (socket_selftest.go)
	// hw is the keypad, slots and reader as opened (boxhw): close
	// de-energises every lock through it whatever else failed.
	hw *boxhw.Hardware

	recent recentEvents // what the controller committed lately (console)

	// the local socket (nil: no --socket)
	software string    // version, for Status
	started  time.Time // process start, system clock
	sock     *boxSocket
	changes  broadcast.Signal // notified when the state a socket watcher sees has changed
	// linkSeen is the last event seq linkChanged has remembered.
	linkSeen atomic.Uint64

	// console I/O (sim only)
	stdin        io.Reader
	stdout       io.Writer
	stdinIsTerm  bool
	consoleReady chan struct{} // closed when the console is reading (tests)

	closeOnce sync.Once
}

// simHardware is the simulated side of the pins and the reader: what a
// person (through the console) or a test acts on.
type simHardware struct {
	keypad *sim.Keypad
	slots  *sim.Slots
	reader *simrfid.Reader
	// clock is the simulated board's clock, settable while the box runs;
	// nil when a test gave the daemon a clock of its own.
	clock *offsetClock

	// One person at a time: keys typed by two requests at once would
	// interleave, and two fobs at the reader would collide.
	keypadMu, readerMu sync.Mutex
}

// daemonOptions are the parts of a daemon that do not come from the config.
type daemonOptions struct {
	Log         *slog.Logger
	BuildTime   time.Time // one source of the clock floor (see clockFloor)
	Clock       box.Clock // the box clock; nil: the system's
	Stdin       io.Reader // console input (sim); nil: no console
	Stdout      io.Writer // console output (sim)
	StdinIsTerm bool      // EOF on a terminal means quit; on a pipe or /dev/null it does not
	Software    string    // version for the sync status
	Socket      string    // the local socket's path; empty: none
	SocketGroup string    // the socket's group (mode 0660); empty: mode 0600

	// simSlots are the simulated slots to run on (tests: locks that start
	// energised, as a crash would leave them); nil makes new ones.
	simSlots *sim.Slots
}

// newDaemon opens the store and the hardware named by cfg (already
// validated) and makes the controller.
//
// Fail secure: every lock is de-energised the moment its pin is found,
// before anything else (the other pins, the cloud's files, the store, the
// keypad, the reader, the link) can fail. A daemon that crashed with a slot
// released and now meets a store that will not open (corrupt, held by
// another process, another box's) exits with every lock Low, not in the
// state the crash left. On error, and on a panic, everything opened is
// closed again and every lock found is de-energised (again).
func newDaemon(cfg *boxconfig.Config, opts daemonOptions) (_ *daemon, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &daemon{cfg: cfg, log: log, stdin: opts.Stdin, stdout: opts.Stdout, stdinIsTerm: opts.StdinIsTerm,
		consoleReady: make(chan struct{}), software: opts.Software, started: time.Now()}
	if d.stdout == nil {
		d.stdout = io.Discard
	}
	d.input = newInputRouter(d)
	ok := false
	defer func() {
		// Runs on an error return and while a panic unwinds (which then
		// goes on): either way the box stops shut.
		if !ok {
			d.close()
		}
	}()

	// The hardware first: every lock is de-energised the moment its pin
	// is found (boxhw.Open).
	d.hw, err = boxhw.Open(cfg, boxhw.Options{Log: log, Guard: d.failSecure, SimSlots: opts.simSlots})
	if err != nil {
		return nil, err
	}
	d.keypad, d.slots, d.reader = d.hw.Keypad, d.hw.Slots, d.hw.Reader
	if sh := d.hw.Sim; sh != nil {
		d.sim = &simHardware{keypad: sh.Keypad, slots: sh.Slots, reader: sh.Reader}
		// The simulated board always runs on a settable clock (the
		// socket's PUT /v1/sim/clock), at the system's time unless
		// --sim-clock said otherwise.
		switch c := opts.Clock.(type) {
		case nil:
			d.sim.clock = newOffsetClock(time.Time{})
			opts.Clock = d.sim.clock
		case *offsetClock:
			d.sim.clock = c
		}
	}

	// The cloud's files (password, certificates): a missing file is a
	// config mistake, reported before the store is opened.
	creds, err := cfg.Credentials()
	if err != nil {
		return nil, err
	}

	d.store, err = store.Open(filepath.Join(cfg.DataDir, "box.db"), store.Options{
		BoxID:  cfg.BoxID,
		Slots:  cfg.Hardware.Slots.Count,
		Logger: log.With("part", "store"),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}

	// The clock floor: never none. The source date is always there; the
	// first of equal candidates names the floor's source.
	d.clock = opts.Clock
	if d.clock == nil {
		d.clock = box.SystemClock{}
	}
	d.floor, err = newClockFloor(d.store, d.clock, log.With("part", "clock"),
		floorSource{sourceFloor, "source"}, floorSource{opts.BuildTime, "build_time"}, floorSource{cfg.Clock.Floor, "config"})
	if err != nil {
		return nil, err
	}
	floor, floorFrom := d.floor.Floor()
	now := d.clock.Now()
	log.Info("clock floor", "clock_floor", floor.Format(time.RFC3339), "clock_floor_from", floorFrom,
		"clock", now.UTC().Format(time.RFC3339), "clock_trusted", d.floor.Trusted())
	if !d.floor.Trusted() {
		log.Warn("the box clock is before the earliest time it can be: not trusted until it is set",
			"clock", now.UTC().Format(time.RFC3339), "clock_floor", floor.Format(time.RFC3339), "clock_floor_from", floorFrom,
			"windowed_grants", cfg.Clock.Untrusted)
	}

	var ind box.Indicators
	if d.hw.HasLEDs {
		ind = d.slots
	}
	// The controller commits through kickOnCommit, so that a new event
	// starts the link's drain at once rather than at its next poll.
	// Its BuildTime is the floor at start; run stops the daemon if the
	// clock later goes back below a floor reached since (clockFloor.check).
	d.ctrl, err = box.New(cfg.BoxConfig(floor), d.commitStore(),
		box.Hardware{Locks: d.slots, Sensors: d.slots, LEDs: ind}, d.clock, log.With("part", "box"))
	if err != nil {
		return nil, err
	}
	if err := d.newLink(creds, opts); err != nil {
		return nil, err
	}
	if opts.Socket != "" {
		// Last: a live socket (another smartboxd) is refused before this
		// one serves anything, and nothing after can fail and leave the
		// socket file behind.
		if d.sock, err = listenSocket(opts.Socket, opts.SocketGroup); err != nil {
			return nil, err
		}
	}
	ok = true
	return d, nil
}

// commitStore is the store as the controller (and a self-test session)
// commits to it: see kickOnCommit.
func (d *daemon) commitStore() kickOnCommit {
	return kickOnCommit{Store: d.store, kick: d.kickLink, recent: &d.recent, changed: d.changes.Notify}
}

// failSecure runs f (a goroutine's body). If f panics, every lock is
// de-energised and the store closed before the panic goes on: a panic ends
// the whole process, and only the panicking goroutine's defers run. The
// daemon's own goroutines run under it, and so do the sync link's
// callbacks on paho's goroutines and the link's own (link.Options.Guard),
// and hal/slots' relock timer (slots.Options.Guard).
func (d *daemon) failSecure(f func()) {
	returned := false
	defer func() {
		if !returned {
			d.close()
		}
	}()
	f()
	returned = true
}

// run runs the box until ctx is done (or the console says quit), then
// relocks every slot and closes the store. An error means the box could not
// keep running safely; the caller exits non-zero so that systemd restarts it.
func (d *daemon) run(ctx context.Context) error {
	// Deferred, so it runs on a panic in run too (which then goes on).
	defer d.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		runErrs []error
	)
	fail := func(part string, err error) {
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		d.log.Error("stopping: a part of the box failed", "part", part, "err", err)
		errMu.Lock()
		runErrs = append(runErrs, fmt.Errorf("%s: %w", part, err))
		errMu.Unlock()
		cancel()
	}
	// Every goroutine runs under failSecure: a panic in any of them ends
	// the process, and the locks must be Low when it does.
	// The inputs go through d.input: to the controller, or to a
	// technician's self-test session while one lasts.
	wg.Go(func() { d.failSecure(func() { fail("keypad", d.keypad.Run(ctx, d.input.Press)) }) })
	wg.Go(func() { d.failSecure(func() { fail("reader", d.reader.Run(ctx, d.input.FobScanned)) }) })
	wg.Go(func() { d.failSecure(func() { fail("key sensors", d.slots.Watch(ctx, d.input.KeySensed)) }) })
	wg.Go(func() { d.failSecure(func() { fail("clock", d.floor.Run(ctx)) }) })
	// systemd: READY=1 once the controller answers, the watchdog petted
	// only while it does, STOPPING=1 at stop (notify.go).
	wg.Go(func() { d.failSecure(func() { newNotifier(d.log).run(ctx, d.ctrl.Flush) }) })
	if d.sim != nil && d.stdin != nil {
		// The console is not waited for: a read on stdin cannot be
		// interrupted, and the process ends anyway.
		go d.failSecure(func() { d.console(ctx, cancel) })
	}

	// The link runs on a context of its own: at shutdown it outlives the
	// controller long enough to send box_stopped (see stopLink).
	stopLink := d.startLink(ctx)
	// The socket serves while the box runs; its watchers end with ctx.
	stopSocket := d.serveSocket(ctx)

	// The controller relocks every slot at start and again when ctx ends.
	fail("controller", d.ctrl.Run(ctx))
	cancel()
	wg.Wait()
	// Order: the controller has stopped (every slot relocked), then the
	// socket stops answering, then the link drains and disconnects, then
	// close() closes the store and removes the socket file.
	stopSocket()
	d.input.stop() // a self-test still open: recorded as ended (the controller relocked all)
	stopLink()
	errMu.Lock()
	defer errMu.Unlock()
	return errors.Join(runErrs...)
}

// close releases everything newDaemon opened, locks first: through the
// slots.Dev if there is one, then straight on the pins (there may be no Dev,
// or its Close may have failed half-way). It runs once;
// fields are left as they are, since the console may still hold them (their
// methods then fail with "closed").
func (d *daemon) close() {
	d.closeOnce.Do(func() {
		if d.hw != nil {
			// Close locks all again, turns the LEDs off and closes the
			// simulated reader: whatever happened above, the box stops shut.
			if err := d.hw.Close(); err != nil {
				d.log.Error("closing the hardware", "err", err)
			}
		}
		if d.sock != nil {
			d.sock.close(d.log)
		}
		if d.store != nil {
			if err := d.store.Close(); err != nil {
				d.log.Error("closing the store", "err", err)
			}
		}
	})
}
