package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Errors of the slot mechanics.
var (
	ErrLatched  = errors.New("the lock is not released: the latch holds the key")
	ErrEmpty    = errors.New("no key in the slot")
	ErrOccupied = errors.New("a key is already seated in the slot")
	// ErrJammed: the lock is energised but the latch is stuck shut (Jam).
	ErrJammed = errors.New("the latch is jammed: it stays shut though the lock is released")
)

// Slots models N key slots electrically and mechanically. Slot i (1-based)
// has:
//   - a lock pin, an output of the code under test: High energises the
//     solenoid, which releases the latch; Low (or not an output at all) leaves
//     it latched;
//   - a key-present sensor pin, an input of the code under test: a switch to
//     ground that closes while a fob is seated, so it reads Low with a key and
//     its pull (High with a pull-up) without one;
//   - an LED pin, an output: High lights it.
//
// The latch holds a seated key, and the same latch is in the way when a key
// is pushed back in: a key can leave (Take) or be seated (PutBack) only while
// the lock is released. The sensor follows the key at once (no contact
// bounce; tests that want bounce can drive it themselves through Take and
// PutBack).
//
// Slots records how long each lock stays energised (Pulses), to check the
// hard maximum that protects the coil.
//
// Two faults can be set per slot, for the simulator to break things on
// purpose: a jammed latch (Jam: the lock pin is energised, the latch stays
// shut, so Take and PutBack fail with ErrJammed) and a dead key sensor
// (KillSensor: the switch's wire is cut, so the pin reads its pull, High
// with the pull-up, "no key", whatever is seated).
type Slots struct {
	// Immutable.
	locks, sensors, leds []*Pin

	mu       sync.Mutex
	occupied []bool
	since    []time.Time // when the lock was energised; zero if it is not
	pulses   [][]time.Duration
	jammed   []bool
	dead     []bool        // the key sensor's wire is cut
	changed  chan struct{} // closed and replaced on every change
}

// NewSlots returns n slots, each holding a key if occupied. It panics if
// n < 1 (a program constant, not outside input).
func NewSlots(n int, occupied bool) *Slots {
	if n < 1 {
		panic(fmt.Sprintf("sim: NewSlots(%d): need at least one slot", n))
	}
	keys := make([]bool, n)
	for i := range keys {
		keys[i] = occupied
	}
	return NewSlotsHolding(keys)
}

// NewSlotsHolding returns len(keys) slots, slot i+1 holding a key if keys[i]:
// the simulator carries the physical world across a power cut. It panics if
// keys is empty (a program constant, not outside input).
func NewSlotsHolding(keys []bool) *Slots {
	n := len(keys)
	if n < 1 {
		panic("sim: NewSlotsHolding: need at least one slot")
	}
	s := &Slots{
		occupied: slices.Clone(keys),
		since:    make([]time.Time, n),
		pulses:   make([][]time.Duration, n),
		jammed:   make([]bool, n),
		dead:     make([]bool, n),
		changed:  make(chan struct{}),
	}
	for i := range n {
		s.locks = append(s.locks, newPin(fmt.Sprintf("SLOT%d_LOCK", i+1), 3*i, s))
		s.sensors = append(s.sensors, newPin(fmt.Sprintf("SLOT%d_KEY", i+1), 3*i+1, s))
		s.leds = append(s.leds, newPin(fmt.Sprintf("SLOT%d_LED", i+1), 3*i+2, s))
	}
	s.update()
	return s
}

// N is the number of slots.
func (s *Slots) N() int { return len(s.locks) }

// LockPins returns the lock pins, slot 1 first.
func (s *Slots) LockPins() []gpio.PinIO { return pinIOs(s.locks) }

// SensorPins returns the key-present sensor pins, slot 1 first.
func (s *Slots) SensorPins() []gpio.PinIO { return pinIOs(s.sensors) }

// LEDPins returns the LED pins, slot 1 first.
func (s *Slots) LEDPins() []gpio.PinIO { return pinIOs(s.leds) }

// SensorPin returns slot's sensor pin with its test counters.
func (s *Slots) SensorPin(slot int) (*Pin, error) {
	i, err := s.index(slot)
	if err != nil {
		return nil, err
	}
	return s.sensors[i], nil
}

// Take pulls the key out of slot. It fails if the slot is empty or its lock
// is not released.
func (s *Slots) Take(slot int) error {
	return s.move(slot, "take the key from", true)
}

// PutBack seats a key in slot. It fails if the slot already has one or its
// lock is not released.
func (s *Slots) PutBack(slot int) error {
	return s.move(slot, "put a key back in", false)
}

func (s *Slots) move(slot int, what string, out bool) error {
	i, err := s.index(slot)
	if err != nil {
		return err
	}
	s.mu.Lock()
	switch {
	case !s.releasedLocked(i):
		err = ErrLatched
	case s.jammed[i]:
		err = ErrJammed
	case out && !s.occupied[i]:
		err = ErrEmpty
	case !out && s.occupied[i]:
		err = ErrOccupied
	default:
		s.occupied[i] = !out
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sim: %s slot %d: %w", what, slot, err)
	}
	s.update()
	return nil
}

// Released reports whether slot's lock is energised (released) now. It is
// false for a slot out of range.
func (s *Slots) Released(slot int) bool {
	i, err := s.index(slot)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.releasedLocked(i)
}

func (s *Slots) releasedLocked(i int) bool { return !s.since[i].IsZero() }

// Occupied reports whether a key is seated in slot.
func (s *Slots) Occupied(slot int) bool {
	i, err := s.index(slot)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.occupied[i]
}

// LED reports whether slot's LED is lit.
func (s *Slots) LED(slot int) bool {
	i, err := s.index(slot)
	if err != nil {
		return false
	}
	dir, out, _ := s.leds[i].state()
	return dir == dirOut && out == gpio.High
}

// Jam sets (on) or clears slot's jammed latch: while jammed, the latch stays
// shut though the lock is energised, so Take and PutBack fail with ErrJammed.
// Released still reports the lock pin, which is what the code drives.
func (s *Slots) Jam(slot int, on bool) error {
	return s.setFault(slot, s.jammed, on)
}

// KillSensor cuts (dead) or mends slot's key sensor wire: while cut, the
// sensor pin reads its pull (High with the pull-up: "no key"), whatever is
// seated.
func (s *Slots) KillSensor(slot int, dead bool) error {
	return s.setFault(slot, s.dead, dead)
}

func (s *Slots) setFault(slot int, faults []bool, on bool) error {
	i, err := s.index(slot)
	if err != nil {
		return err
	}
	s.mu.Lock()
	faults[i] = on
	s.mu.Unlock()
	s.update()
	return nil
}

// Jammed reports whether slot's latch is jammed (Jam).
func (s *Slots) Jammed(slot int) bool { return s.fault(slot, s.jammed) }

// SensorDead reports whether slot's key sensor wire is cut (KillSensor).
func (s *Slots) SensorDead(slot int) bool { return s.fault(slot, s.dead) }

func (s *Slots) fault(slot int, faults []bool) bool {
	i, err := s.index(slot)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return faults[i]
}

// Pulses returns how long each completed energising of slot's lock lasted,
// oldest first.
func (s *Slots) Pulses(slot int) []time.Duration {
	i, err := s.index(slot)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pulses[i])
}

// Changed returns a channel that is closed at the next change of any slot:
// a lock, an LED, a key or a fault. Call it again after each change.
func (s *Slots) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// WaitReleased waits until slot's lock is released or ctx is done.
func (s *Slots) WaitReleased(ctx context.Context, slot int) error {
	return s.wait(ctx, slot, true)
}

// WaitLocked waits until slot's lock is de-energised or ctx is done.
func (s *Slots) WaitLocked(ctx context.Context, slot int) error {
	return s.wait(ctx, slot, false)
}

func (s *Slots) wait(ctx context.Context, slot int, released bool) error {
	i, err := s.index(slot)
	if err != nil {
		return err
	}
	for {
		s.mu.Lock()
		ok, ch := s.releasedLocked(i) == released, s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			state := "locked"
			if released {
				state = "released"
			}
			return fmt.Errorf("sim: waiting for slot %d to be %s: %w", slot, state, ctx.Err())
		}
	}
}

func (s *Slots) index(slot int) (int, error) {
	if slot < 1 || slot > len(s.locks) {
		return 0, fmt.Errorf("sim: slot %d out of range 1..%d", slot, len(s.locks))
	}
	return slot - 1, nil
}

// update recomputes the mechanics and the sensor levels after a pin or a key
// changed.
func (s *Slots) update() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for i := range s.locks {
		dir, out, _ := s.locks[i].state()
		energised := dir == dirOut && out == gpio.High
		switch {
		case energised && s.since[i].IsZero():
			s.since[i] = now
		case !energised && !s.since[i].IsZero():
			s.pulses[i] = append(s.pulses[i], now.Sub(s.since[i]))
			s.since[i] = time.Time{}
		}
		// The seated fob closes the sensor switch to ground; without it (or
		// with the wire cut) the pin is left to its pull.
		if s.occupied[i] && !s.dead[i] {
			s.sensors[i].setExt(true, gpio.Low)
		} else {
			s.sensors[i].setExt(false, gpio.Low)
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}
