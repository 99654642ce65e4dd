// Package boxhw opens a box's hardware from its config: the keypad, the
// slots (locks, key sensors, LEDs) and the fob reader, on the SmartBox v1
// board's GPIO or on the simulator's pins. smartboxd and smartboxctl
// selftest (on a stopped box) share this one definition.
//
// Fail secure: every lock is de-energised the moment its pin is found,
// before anything else can fail; on an error Open de-energises every lock
// found (again) and closes what it opened, and Close de-energises too.
package boxhw

import (
	"errors"
	"fmt"
	"log/slog"

	"periph.io/x/conn/v3/gpio"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/hal/keypad"
	"github.com/smartbox-oss/smartbox/hal/pins"
	"github.com/smartbox-oss/smartbox/hal/rfid"
	"github.com/smartbox-oss/smartbox/hal/slots"
	"github.com/smartbox-oss/smartbox/sim"
	simrfid "github.com/smartbox-oss/smartbox/sim/rfid"
)

// Options are the parts of the hardware that do not come from the config.
type Options struct {
	Log *slog.Logger // nil: discarded
	// Guard runs hal/slots' relock timer (slots.Options.Guard).
	Guard func(func())
	// SimSlots are the simulated slots to run on (tests: locks that start
	// energised, as a crash would leave them); nil makes new ones with
	// every key seated, as a stocked box.
	SimSlots *sim.Slots
}

// Hardware is a box's opened hardware.
type Hardware struct {
	Keypad *keypad.Dev
	Slots  *slots.Dev
	Reader *rfid.Reader
	// HasLEDs: the board has slot LEDs (the controller's indicators).
	HasLEDs bool
	// Sim is the simulated side (what a person or a test acts on); nil on
	// real hardware.
	Sim *Sim

	// lockPins are the locks as found, before Slots owns them: Close
	// de-energises them whatever else failed.
	lockPins []gpio.PinIO
}

// Sim is the simulated side of the pins and the reader.
type Sim struct {
	Keypad *sim.Keypad
	Slots  *sim.Slots
	Reader *simrfid.Reader
}

// Open opens the hardware cfg names (cfg already validated). On error
// every lock found is de-energised and everything opened closed.
func Open(cfg *boxconfig.Config, opts Options) (_ *Hardware, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hardware{}
	ok := false
	defer func() {
		// On an error return and while a panic unwinds: the box stays shut.
		if !ok {
			err = errors.Join(err, h.Close())
		}
	}()
	hw := cfg.Hardware
	var rows, cols, locks, sensors, leds []gpio.PinIO
	var port string
	switch hw.Profile {
	case boxconfig.ProfileSmartBoxV1:
		if err := pins.Init(); err != nil {
			return nil, fmt.Errorf("loading GPIO drivers: %w", err)
		}
		// The locks first: a misnamed keypad or LED pin must not keep a
		// lock found before it energised.
		lookups := []struct {
			role  string
			names []string
			out   *[]gpio.PinIO
		}{
			{"slot lock", hw.Slots.Locks, &locks},
			{"keypad row", hw.Keypad.Rows, &rows},
			{"keypad column", hw.Keypad.Cols, &cols},
			{"slot sensor", hw.Slots.Sensors, &sensors},
			{"slot LED", hw.Slots.LEDs, &leds},
		}
		for _, l := range lookups {
			for i, name := range l.names {
				p, err := pins.ByName(fmt.Sprintf("%s %d", l.role, i+1), name)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", cfg.Name(), err)
				}
				*l.out = append(*l.out, p)
				if l.out == &locks {
					if err := h.deEnergise(p); err != nil {
						return nil, err
					}
				}
			}
		}
		port = hw.Reader.Port
	case boxconfig.ProfileSim:
		sh := &Sim{Keypad: sim.NewKeypad(hw.Keypad.Layout), Slots: opts.SimSlots}
		if sh.Slots == nil {
			sh.Slots = sim.NewSlots(hw.Slots.Count, true)
		}
		h.Sim = sh
		locks = sh.Slots.LockPins()
		if err := h.deEnergise(locks...); err != nil {
			return nil, err
		}
		variant := simrfid.RDM6300
		if hw.Reader.Variant == boxconfig.VariantID12 {
			variant = simrfid.ID12
		}
		sh.Reader, err = simrfid.New(variant)
		if err != nil {
			return nil, fmt.Errorf("starting the simulated reader: %w", err)
		}
		sh.Keypad.ConfirmScans(hw.Keypad.Debounce.Duration) // what keypad.New gets below, default filled in
		rows, cols = sh.Keypad.Rows(), sh.Keypad.Cols()
		sensors, leds = sh.Slots.SensorPins(), sh.Slots.LEDPins()
		port = sh.Reader.Path()
	default:
		return nil, fmt.Errorf("hardware profile %q is not %q or %q", hw.Profile, boxconfig.ProfileSmartBoxV1, boxconfig.ProfileSim)
	}

	// slots.New de-energises every lock again before anything else.
	h.Slots, err = slots.New(locks, sensors, leds, slots.Options{
		HardMax:  hw.Slots.HardMax.Duration,
		Debounce: hw.Slots.Debounce.Duration,
		Logger:   log.With("part", "slots"),
		Guard:    opts.Guard, // a panic in the relock timer de-energises every lock first
	})
	if err != nil {
		return nil, fmt.Errorf("slots: %w", err)
	}
	h.HasLEDs = len(leds) > 0
	h.Keypad, err = keypad.New(rows, cols, keypad.Options{
		Layout:   hw.Keypad.Layout,
		Debounce: hw.Keypad.Debounce.Duration,
		Logger:   log.With("part", "keypad"),
	})
	if err != nil {
		return nil, fmt.Errorf("keypad: %w", err)
	}
	h.Reader = rfid.New(rfid.Config{Port: port, Baud: hw.Reader.Baud}, log.With("part", "reader"))
	ok = true
	return h, nil
}

// deEnergise drives lock pins Low at once and keeps them, so that Close
// can do it again even when no slots.Dev was made.
func (h *Hardware) deEnergise(locks ...gpio.PinIO) error {
	h.lockPins = append(h.lockPins, locks...)
	if err := slots.DeEnergise(locks); err != nil {
		return fmt.Errorf("de-energising the slot locks: %w", err)
	}
	return nil
}

// Close de-energises every lock (through the slots.Dev, then straight on
// the pins: there may be no Dev, or its Close may have failed half-way),
// turns the LEDs off and closes the simulated reader. Call it once; the
// devices' methods fail with "closed" after.
func (h *Hardware) Close() error {
	var errs []error
	if h.Slots != nil {
		if err := h.Slots.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing slots: %w", err))
		}
	}
	if err := slots.DeEnergise(h.lockPins); err != nil {
		errs = append(errs, fmt.Errorf("de-energising the slot locks: %w", err))
	}
	if h.Sim != nil && h.Sim.Reader != nil {
		_ = h.Sim.Reader.Close()
	}
	return errors.Join(errs...)
}

// LocksOnly is a Hardware holding only lock pins, before any device is
// made: its Close de-energises them (fail-secure paths and their tests).
func LocksOnly(locks ...gpio.PinIO) *Hardware {
	return &Hardware{lockPins: locks}
}
