package slots

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"periph.io/x/conn/v3/gpio"
)

const (
	// DefaultHardMax bounds how long a lock stays energised, whatever
	// Release asks. Solenoid locks on a box are rated for intermittent duty:
	// held on for long they overheat (and a slot left open is not secure).
	DefaultHardMax = 10 * time.Second

	// DefaultDebounce is how long a key sensor must stay quiet before its
	// level counts. A fob dropped into a slot rattles its switch for a few
	// tens of milliseconds.
	DefaultDebounce = 50 * time.Millisecond

	// edgeWait bounds each WaitForEdge. Never -1: on periph's gpio cdev
	// backend it returns at once (periph/host#78).
	edgeWait = 200 * time.Millisecond

	// maxChatter bounds debouncing a sensor that never settles (a broken
	// switch): its level is then taken as it is.
	maxChatter = time.Second
)

// Options tunes a Dev. The zero value is the SmartBox v1 profile.
type Options struct {
	HardMax  time.Duration // a lock is never energised longer than this; 0: DefaultHardMax
	Debounce time.Duration // key sensor debounce; 0: DefaultDebounce
	Logger   *slog.Logger  // nil: slog.Default()
	// Guard runs the automatic relock (a timer goroutine of Dev's own), so
	// that a panic there reaches the caller's fail-secure handler (smartboxd
	// de-energises every lock) before it ends the process. nil: run it.
	Guard func(func())
}

// Errors.
var (
	ErrClosed   = errors.New("slots: closed")
	ErrWatching = errors.New("slots: already watching")
	// ErrHardMax is returned by Release when the lock has already been
	// energised for the hard maximum without a break.
	ErrHardMax = errors.New("lock energised for its hard maximum")
)

// Dev drives the slots' locks and LEDs and reads their key sensors. See the
// package documentation.
type Dev struct {
	// Immutable.
	locks, sensors, leds []gpio.PinIO
	hardMax, debounce    time.Duration
	log                  *slog.Logger
	guard                func(func())

	// Mutable.
	watching atomic.Bool

	mu     sync.Mutex
	closed bool
	state  []lockState
	// told is what Present last said of each sensor (0: never asked, 1:
	// no key, 2: a key): Watch reports a baseline that differs from it.
	told []uint8
}

type lockState struct {
	since time.Time   // when the lock was energised; zero while de-energised
	timer *time.Timer // pending automatic relock
	gen   uint64      // bumped by every Release and Lock, to void stale timers
}

var (
	_ box.Locks      = (*Dev)(nil)
	_ box.KeySensors = (*Dev)(nil)
	_ box.Indicators = (*Dev)(nil)
)

// DeEnergise drives every lock pin Low (latched), slot 1 first, carrying on
// past a pin that fails so that one bad pin leaves no other slot open; the
// failures come back joined. New calls it before anything else. A program
// that has found its lock pins but has no Dev (yet, or any more: it failed
// to start) calls it to fail secure.
func DeEnergise(locks []gpio.PinIO) error {
	var errs []error
	for i, p := range locks {
		if p == nil {
			errs = append(errs, fmt.Errorf("slots: slot %d lock: no pin", i+1))
			continue
		}
		if err := p.Out(gpio.Low); err != nil {
			errs = append(errs, fmt.Errorf("slots: slot %d lock (%s): de-energise: %w", i+1, p, err))
		}
	}
	return errors.Join(errs...)
}

// New takes the pins of slots 1..N: slot i+1 uses locks[i], sensors[i] and,
// if leds is not nil, leds[i]. Before anything else, even checking the
// arguments, it de-energises every lock it was given: a box must come up
// locked (fail secure). Then it configures the sensors (input, pull-up, both
// edges) and turns the LEDs off.
func New(locks []gpio.PinIO, sensors []gpio.PinIO, leds []gpio.PinIO, opts Options) (*Dev, error) {
	if err := DeEnergise(locks); err != nil {
		return nil, err
	}
	switch {
	case len(locks) == 0:
		return nil, errors.New("slots: no lock pins: a box needs at least one slot")
	case len(sensors) != len(locks):
		return nil, fmt.Errorf("slots: %d lock pins but %d key sensor pins: need one of each per slot", len(locks), len(sensors))
	case leds != nil && len(leds) != len(locks):
		return nil, fmt.Errorf("slots: %d lock pins but %d LED pins: need one LED per slot, or none", len(locks), len(leds))
	}
	d := &Dev{
		locks:    locks,
		sensors:  sensors,
		leds:     leds,
		hardMax:  opts.HardMax,
		debounce: opts.Debounce,
		log:      opts.Logger,
		guard:    opts.Guard,
		state:    make([]lockState, len(locks)),
		told:     make([]uint8, len(sensors)),
	}
	if d.hardMax <= 0 {
		d.hardMax = DefaultHardMax
	}
	if d.debounce <= 0 {
		d.debounce = DefaultDebounce
	}
	if d.guard == nil {
		d.guard = func(f func()) { f() }
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	for i, p := range sensors {
		if p == nil {
			return nil, fmt.Errorf("slots: slot %d key sensor: no pin", i+1)
		}
		// The sensor is a switch to ground, closed while a fob is seated:
		// the pull-up makes an empty slot read High.
		if err := p.In(gpio.PullUp, gpio.BothEdges); err != nil {
			return nil, fmt.Errorf("slots: slot %d key sensor (%s): set input with pull-up and edge detection: %w", i+1, p, err)
		}
	}
	for i, p := range leds {
		if p == nil {
			return nil, fmt.Errorf("slots: slot %d LED: no pin", i+1)
		}
		if err := p.Out(gpio.Low); err != nil {
			return nil, fmt.Errorf("slots: slot %d LED (%s): turn off: %w", i+1, p, err)
		}
	}
	return d, nil
}

// N is the number of slots.
func (d *Dev) N() int { return len(d.locks) }

func (d *Dev) index(slot int) (int, error) {
	if slot < 1 || slot > len(d.locks) {
		return 0, fmt.Errorf("slots: slot %d out of range 1..%d", slot, len(d.locks))
	}
	return slot - 1, nil
}

// Release energises slot's lock (drives it High), which releases the latch,
// and de-energises it by itself after dur, or after HardMax if that is
// sooner. Releasing a released slot restarts the time, but a lock is never
// energised for longer than HardMax in one go: the relock stays due at most
// HardMax after the lock was first energised (and if that moment has come,
// Release relocks and returns an error wrapping ErrHardMax). There is no
// enforced rest between two energisings: a controller that keeps re-opening
// a slot gets pulses of at most HardMax each.
func (d *Dev) Release(slot int, dur time.Duration) error {
	i, err := d.index(slot)
	if err != nil {
		return err
	}
	if dur <= 0 {
		return fmt.Errorf("slots: release slot %d for %s: the time must be positive", slot, dur)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("slots: release slot %d: %w", slot, ErrClosed)
	}
	s := &d.state[i]
	now := time.Now()
	since := s.since
	if since.IsZero() {
		since = now
	}
	left := min(dur, since.Add(d.hardMax).Sub(now))
	if left <= 0 {
		err := d.lockLocked(i)
		return errors.Join(fmt.Errorf("slots: release slot %d: %w (%s)", slot, ErrHardMax, d.hardMax), err)
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.gen++
	if err := d.locks[i].Out(gpio.High); err != nil {
		// The line's state is unknown: make sure it is off.
		return errors.Join(fmt.Errorf("slots: slot %d lock (%s): energise: %w", slot, d.locks[i], err), d.lockLocked(i))
	}
	s.since = since
	gen := s.gen
	s.timer = time.AfterFunc(left, func() { d.guard(func() { d.expire(i, gen) }) })
	return nil
}

// expire relocks slot i when its release time is up, unless a later Release
// or Lock superseded the timer.
func (d *Dev) expire(i int, gen uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state[i].gen != gen {
		return
	}
	if err := d.lockLocked(i); err != nil {
		d.log.Error("slots: relock after release time", "slot", i+1, "err", err)
	}
}

// Lock de-energises slot's lock now.
func (d *Dev) Lock(slot int) error {
	i, err := d.index(slot)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lockLocked(i)
}

func (d *Dev) lockLocked(i int) error {
	s := &d.state[i]
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.gen++
	s.since = time.Time{}
	if err := d.locks[i].Out(gpio.Low); err != nil {
		return fmt.Errorf("slots: slot %d lock (%s): de-energise: %w", i+1, d.locks[i], err)
	}
	return nil
}

// LockAll de-energises every lock, trying them all even if some fail.
func (d *Dev) LockAll() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lockAllLocked()
}

func (d *Dev) lockAllLocked() error {
	var errs []error
	for i := range d.locks {
		errs = append(errs, d.lockLocked(i))
	}
	return errors.Join(errs...)
}

// Present reads slot's key sensor now: true when a fob is seated (the sensor
// reads Low). It is not debounced: Watch is.
func (d *Dev) Present(slot int) (bool, error) {
	i, err := d.index(slot)
	if err != nil {
		return false, err
	}
	present := d.sensors[i].Read() == gpio.Low
	d.mu.Lock()
	d.told[i] = toldValue(present)
	d.mu.Unlock()
	return present, nil
}

func toldValue(present bool) uint8 {
	if present {
		return 2
	}
	return 1
}

// SetSlot lights (High) or darkens slot's LED. Without LEDs it does nothing.
func (d *Dev) SetSlot(slot int, on bool) error {
	i, err := d.index(slot)
	if err != nil {
		return err
	}
	if d.leds == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("slots: slot %d LED: %w", slot, ErrClosed)
	}
	if err := d.leds[i].Out(gpio.Level(on)); err != nil {
		return fmt.Errorf("slots: slot %d LED (%s): %w", slot, d.leds[i], err)
	}
	return nil
}

// Watch calls changed each time a slot's debounced key sensor changes, until
// ctx is done; it then returns nil. The state when Watch starts is the
// baseline and is not reported (read it with Present), except where it
// differs from what Present last said of that sensor: a caller that read
// Present first (a controller starting) is told of a key that moved before
// Watch took its baseline, rather than believing the old state until the
// next change. Calls to changed never overlap. Only one Watch may run at a
// time.
//
// It is edge-driven: one goroutine per sensor waits for an edge, then waits
// until the sensor has been quiet for the debounce time and reads it.
func (d *Dev) Watch(ctx context.Context, changed func(slot int, present bool)) error {
	if changed == nil {
		return errors.New("slots: Watch needs a callback")
	}
	if !d.watching.CompareAndSwap(false, true) {
		return ErrWatching
	}
	defer d.watching.Store(false)
	var (
		wg   sync.WaitGroup
		cbMu sync.Mutex
	)
	for i, p := range d.sensors {
		last := p.Read() == gpio.Low
		d.mu.Lock()
		stale := d.told[i] != 0 && d.told[i] != toldValue(last)
		d.mu.Unlock()
		if stale {
			cbMu.Lock()
			changed(i+1, last)
			cbMu.Unlock()
		}
		wg.Go(func() {
			d.watchSensor(ctx, i, p, last, func(present bool) {
				cbMu.Lock()
				defer cbMu.Unlock()
				changed(i+1, present)
			})
		})
	}
	wg.Wait()
	return nil
}

func (d *Dev) watchSensor(ctx context.Context, i int, p gpio.PinIO, last bool, report func(bool)) {
	warned := false
	for ctx.Err() == nil {
		start := time.Now()
		if !p.WaitForEdge(edgeWait) {
			if time.Since(start) < edgeWait/2 {
				// Edge detection does not work on this pin: fall back to a
				// slow poll instead of spinning a core; say so once.
				if !warned {
					d.log.Warn("slots: key sensor edge detection not working, polling instead", "slot", i+1, "pin", p.String())
					warned = true
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(edgeWait):
				}
			}
			// Backstop for a lost edge (the cdev's kernel event buffer can
			// overflow; sysfs edges were unreliable on some kernels): one
			// read per timeout is free.
			if (p.Read() == gpio.Low) == last {
				continue
			}
		}
		// Debounce: wait until the switch has been quiet for the debounce
		// time, then take its level.
		for deadline := time.Now().Add(maxChatter); p.WaitForEdge(d.debounce) && time.Now().Before(deadline); {
			if ctx.Err() != nil {
				return
			}
		}
		if present := p.Read() == gpio.Low; present != last {
			last = present
			report(present)
		}
	}
}

// Close de-energises every lock and turns the LEDs off (fail secure). Later
// Release and SetSlot calls fail with ErrClosed; Lock and LockAll still work.
func (d *Dev) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	errs := []error{d.lockAllLocked()}
	for i, p := range d.leds {
		if err := p.Out(gpio.Low); err != nil {
			errs = append(errs, fmt.Errorf("slots: slot %d LED (%s): turn off: %w", i+1, p, err))
		}
	}
	return errors.Join(errs...)
}
