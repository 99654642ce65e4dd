package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/hal/keypad"
	"github.com/smartbox-oss/smartbox/hal/pins"
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
	cfg    *Config
	log    *slog.Logger
	store  *store.Store
	ctrl   *box.Controller
	keypad *keypad.Dev
	slots  *slots.Dev
	reader *rfid.Reader
	link   *link.Link   // nil for an offline box (no [cloud])
	sim    *simHardware // nil on real hardware

	recent recentEvents // what the controller committed lately (console)

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
}

// daemonOptions are the parts of a daemon that do not come from the config.
type daemonOptions struct {
	Log         *slog.Logger
	BuildTime   time.Time
	Stdin       io.Reader // console input (sim); nil: no console
	Stdout      io.Writer // console output (sim)
	StdinIsTerm bool      // EOF on a terminal means quit; on a pipe or /dev/null it does not
	Software    string    // version for the sync status
}

// newDaemon opens the store and the hardware named by cfg (already
// validated) and makes the controller. On error everything opened is closed
// again and every lock it reached is de-energised.
func newDaemon(cfg *Config, opts daemonOptions) (_ *daemon, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &daemon{cfg: cfg, log: log, stdin: opts.Stdin, stdout: opts.Stdout, stdinIsTerm: opts.StdinIsTerm,
		consoleReady: make(chan struct{})}
	if d.stdout == nil {
		d.stdout = io.Discard
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()

	// The cloud's files (password, certificates) and the hardware pins
	// first: a missing file or a misnamed pin is a config mistake and should
	// be reported before anything else is opened.
	creds, err := cfg.cloudCredentials()
	if err != nil {
		return nil, err
	}
	hw := cfg.Hardware
	var rows, cols, locks, sensors, leds []gpio.PinIO
	var port string
	switch hw.Profile {
	case ProfileSmartBoxV1:
		if err := pins.Init(); err != nil {
			return nil, fmt.Errorf("loading GPIO drivers: %w", err)
		}
		lookups := []struct {
			role  string
			names []string
			out   *[]gpio.PinIO
		}{
			{"keypad row", hw.Keypad.Rows, &rows},
			{"keypad column", hw.Keypad.Cols, &cols},
			{"slot lock", hw.Slots.Locks, &locks},
			{"slot sensor", hw.Slots.Sensors, &sensors},
			{"slot LED", hw.Slots.LEDs, &leds},
		}
		for _, l := range lookups {
			for i, name := range l.names {
				p, err := pins.ByName(fmt.Sprintf("%s %d", l.role, i+1), name)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", cfg.name(), err)
				}
				*l.out = append(*l.out, p)
			}
		}
		port = hw.Reader.Port
	case ProfileSim:
		sh := &simHardware{
			keypad: sim.NewKeypad(hw.Keypad.Layout),
			// Every slot starts with its key seated, as a stocked box.
			slots: sim.NewSlots(hw.Slots.Count, true),
		}
		variant := simrfid.RDM6300
		if hw.Reader.Variant == VariantID12 {
			variant = simrfid.ID12
		}
		sh.reader, err = simrfid.New(variant)
		if err != nil {
			return nil, fmt.Errorf("starting the simulated reader: %w", err)
		}
		d.sim = sh
		sh.keypad.ConfirmScans(hw.Keypad.Debounce.Duration) // what keypad.New gets below, default filled in
		rows, cols = sh.keypad.Rows(), sh.keypad.Cols()
		locks, sensors, leds = sh.slots.LockPins(), sh.slots.SensorPins(), sh.slots.LEDPins()
		port = sh.reader.Path()
	default:
		return nil, fmt.Errorf("hardware profile %q is not %q or %q", hw.Profile, ProfileSmartBoxV1, ProfileSim)
	}

	d.store, err = store.Open(filepath.Join(cfg.DataDir, "box.db"), store.Options{
		BoxID:  cfg.BoxID,
		Slots:  hw.Slots.Count,
		Logger: log.With("part", "store"),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}

	// slots.New de-energises every lock before anything else (fail secure).
	d.slots, err = slots.New(locks, sensors, leds, slots.Options{
		HardMax:  hw.Slots.HardMax.Duration,
		Debounce: hw.Slots.Debounce.Duration,
		Logger:   log.With("part", "slots"),
	})
	if err != nil {
		return nil, fmt.Errorf("slots: %w", err)
	}
	d.keypad, err = keypad.New(rows, cols, keypad.Options{
		Layout:   hw.Keypad.Layout,
		Debounce: hw.Keypad.Debounce.Duration,
		Logger:   log.With("part", "keypad"),
	})
	if err != nil {
		return nil, fmt.Errorf("keypad: %w", err)
	}
	d.reader = rfid.New(rfid.Config{Port: port, Baud: hw.Reader.Baud}, log.With("part", "reader"))

	var ind box.Indicators
	if len(leds) > 0 {
		ind = d.slots
	}
	// The controller commits through kickOnCommit, so that a new event
	// starts the link's drain at once rather than at its next poll.
	d.ctrl, err = box.New(cfg.BoxConfig(opts.BuildTime), kickOnCommit{Store: d.store, kick: d.kickLink, recent: &d.recent},
		box.Hardware{Locks: d.slots, Sensors: d.slots, LEDs: ind}, box.SystemClock{}, log.With("part", "box"))
	if err != nil {
		return nil, err
	}
	if err := d.newLink(creds, opts); err != nil {
		return nil, err
	}
	return d, nil
}

// run runs the box until ctx is done (or the console says quit), then
// relocks every slot and closes the store. An error means the box could not
// keep running safely; the caller exits non-zero so that systemd restarts it.
func (d *daemon) run(ctx context.Context) error {
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
	wg.Go(func() { fail("keypad", d.keypad.Run(ctx, d.ctrl.Press)) })
	wg.Go(func() { fail("reader", d.reader.Run(ctx, d.ctrl.FobScanned)) })
	wg.Go(func() { fail("key sensors", d.slots.Watch(ctx, d.ctrl.KeySensed)) })
	if d.sim != nil && d.stdin != nil {
		// The console is not waited for: a read on stdin cannot be
		// interrupted, and the process ends anyway.
		go d.console(ctx, cancel)
	}

	// The link runs on a context of its own: at shutdown it outlives the
	// controller long enough to send box_stopped (see stopLink).
	stopLink := d.startLink(ctx)

	// The controller relocks every slot at start and again when ctx ends.
	fail("controller", d.ctrl.Run(ctx))
	cancel()
	wg.Wait()
	// Order: the controller has stopped (every slot relocked), then the
	// link drains and disconnects, then close() closes the store.
	stopLink()
	errMu.Lock()
	defer errMu.Unlock()
	return errors.Join(runErrs...)
}

// close releases everything newDaemon opened, locks first. It runs once;
// fields are left as they are, since the console may still hold them (their
// methods then fail with "closed").
func (d *daemon) close() {
	d.closeOnce.Do(func() {
		if d.slots != nil {
			// Close locks all again and turns the LEDs off: whatever
			// happened above, the box stops shut.
			if err := d.slots.Close(); err != nil {
				d.log.Error("closing slots", "err", err)
			}
		}
		if d.sim != nil && d.sim.reader != nil {
			_ = d.sim.reader.Close()
		}
		if d.store != nil {
			if err := d.store.Close(); err != nil {
				d.log.Error("closing the store", "err", err)
			}
		}
	})
}
