package sim

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// direction is how the code under test configured a pin.
type direction uint8

const (
	dirNone direction = iota // never configured: an input with no pull
	dirIn
	dirOut
)

// circuit is what a pin is wired to. A pin calls update after the code
// under test changed how the pin drives the wire (Out, In), so that the
// circuit can recompute the levels of every pin it owns.
//
// Lock order: a circuit's lock first, then a pin's lock. A pin never calls
// update while it holds its own lock.
type circuit interface {
	update()
}

// readWatcher is a circuit that wants to see the code under test read its
// pins (Keypad: to know when the scanner has read a key). read returns the
// pin's level; the pin calls it without holding its own lock.
type readWatcher interface {
	read(p *Pin) gpio.Level
}

// Pin is a simulated GPIO line. It implements gpio.PinIO (and pin.PinFunc),
// so the real hal code runs on it unchanged.
//
// The level an input reads is decided by what the pin is wired to: the
// circuit that made it (Keypad, Slots), or, for a pin from NewPin, Drive and
// Undrive. An input nobody drives reads its pull: High with PullUp, Low with
// PullDown, and Low when floating. Reading Low for "undefined" is a choice: a
// forgotten pull-up then shows as a pressed key or a seated fob, which a test
// notices, instead of as a silently working default.
//
// Edges are detected only on an input configured with an edge, filtered by
// the edge kind given to In, and latched until the next WaitForEdge, like the
// kernel does. In and Halt make a waiting WaitForEdge return false.
//
// All methods are safe for concurrent use.
type Pin struct {
	// Immutable.
	name   string
	number int
	dflt   gpio.Pull
	owner  circuit // nil for a free-standing pin

	// Counters for tests: how often the code under test touched the pin.
	reads atomic.Uint64
	waits atomic.Uint64
	edges atomic.Uint64

	mu      sync.Mutex
	dir     direction
	out     gpio.Level // driven level, when dir == dirOut
	pull    gpio.Pull
	edge    gpio.Edge
	ext     gpio.Level // level the outside world (the circuit) puts on the wire
	extOn   bool       // whether the outside world drives the wire at all
	pending bool       // an edge of the configured kind since the last WaitForEdge
	gen     uint64     // bumped by In and Halt to interrupt waiters
	notify  chan struct{}
}

// NewPin returns a free-standing pin: nothing drives it until Drive is called.
func NewPin(name string, number int) *Pin {
	return newPin(name, number, nil)
}

func newPin(name string, number int, owner circuit) *Pin {
	return &Pin{name: name, number: number, dflt: gpio.Float, owner: owner, notify: make(chan struct{})}
}

// Drive makes the outside world drive the wire to l (a button to ground, a
// sensor output). It is meant for free-standing pins; a circuit's pins are
// driven by their circuit.
func (p *Pin) Drive(l gpio.Level) {
	p.setExt(true, l)
}

// Undrive stops the outside world driving the wire: an input then reads its
// pull.
func (p *Pin) Undrive() {
	p.setExt(false, gpio.Low)
}

// setExt sets what the outside world does to the wire and latches an edge if
// the level an input reads changed.
func (p *Pin) setExt(on bool, l gpio.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := p.levelLocked()
	p.extOn, p.ext = on, l
	p.edgeLocked(before, p.levelLocked())
}

// levelLocked is the level on the wire as this pin sees it.
func (p *Pin) levelLocked() gpio.Level {
	switch {
	case p.dir == dirOut:
		return p.out
	case p.extOn:
		return p.ext
	default:
		return gpio.Level(p.pull == gpio.PullUp)
	}
}

// edgeLocked latches an edge and wakes waiters if the change from before to
// after is one the pin listens for.
func (p *Pin) edgeLocked(before, after gpio.Level) {
	if before == after || p.dir != dirIn {
		return
	}
	if !(p.edge == gpio.BothEdges ||
		(p.edge == gpio.RisingEdge && after == gpio.High) ||
		(p.edge == gpio.FallingEdge && after == gpio.Low)) {
		return
	}
	p.edges.Add(1)
	p.pending = true
	p.wakeLocked()
}

func (p *Pin) wakeLocked() {
	close(p.notify)
	p.notify = make(chan struct{})
}

// state is what a circuit needs to know about how the code drives the pin.
func (p *Pin) state() (dir direction, out gpio.Level, pull gpio.Pull) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dir, p.out, p.pull
}

// Level is the level on the wire now, without counting as a Read by the code
// under test.
func (p *Pin) Level() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.levelLocked()
}

// IsOutput reports whether the code under test configured the pin as an output.
func (p *Pin) IsOutput() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dir == dirOut
}

// Reads is the number of Read calls so far.
func (p *Pin) Reads() uint64 { return p.reads.Load() }

// Waits is the number of WaitForEdge calls so far. A call counts once it
// holds the pin's lock and has taken note of the pin's generation, so a
// test that sees the count rise knows that an In or Halt from then on
// interrupts that call (counted earlier, a Halt could land before the
// call looked and the call would wait for ever).
func (p *Pin) Waits() uint64 { return p.waits.Load() }

// Edges is the number of edges latched so far (of the configured kind).
func (p *Pin) Edges() uint64 { return p.edges.Load() }

// String implements conn.Resource.
func (p *Pin) String() string { return p.name }

// Halt implements conn.Resource: it makes a pending WaitForEdge return false,
// as Halt does on periph's gpio cdev lines.
func (p *Pin) Halt() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	p.wakeLocked()
	return nil
}

// Name implements pin.Pin.
func (p *Pin) Name() string { return p.name }

// Number implements pin.Pin.
func (p *Pin) Number() int { return p.number }

// Function implements pin.Pin.
func (p *Pin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc, with periph's names ("In/High", "Out/Low").
func (p *Pin) Func() pin.Func {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.levelLocked()
	switch {
	case p.dir == dirOut && l == gpio.High:
		return gpio.OUT_HIGH
	case p.dir == dirOut:
		return gpio.OUT_LOW
	case l == gpio.High:
		return gpio.IN_HIGH
	default:
		return gpio.IN_LOW
	}
}

// SupportedFuncs implements pin.PinFunc.
func (p *Pin) SupportedFuncs() []pin.Func { return []pin.Func{gpio.IN, gpio.OUT} }

// SetFunc implements pin.PinFunc for IN (keeping the pull) and OUT (Low).
func (p *Pin) SetFunc(f pin.Func) error {
	switch f {
	case gpio.IN:
		return p.In(gpio.PullNoChange, gpio.NoEdge)
	case gpio.OUT, gpio.OUT_LOW:
		return p.Out(gpio.Low)
	case gpio.OUT_HIGH:
		return p.Out(gpio.High)
	default:
		return fmt.Errorf("sim: pin %s: function %q not supported", p.name, f)
	}
}

// In implements gpio.PinIn. It flushes latched edges, including one its own
// pull change causes, and interrupts a waiting WaitForEdge.
func (p *Pin) In(pull gpio.Pull, edge gpio.Edge) error {
	if pull > gpio.PullUp {
		return fmt.Errorf("sim: pin %s: invalid pull %d", p.name, pull)
	}
	if edge < gpio.NoEdge || edge > gpio.BothEdges {
		return fmt.Errorf("sim: pin %s: invalid edge %d", p.name, edge)
	}
	p.mu.Lock()
	p.dir = dirIn
	if pull != gpio.PullNoChange {
		p.pull = pull
	}
	p.edge = edge
	p.pending = false
	p.gen++
	p.wakeLocked()
	p.mu.Unlock()
	if p.owner != nil {
		p.owner.update()
	}
	p.mu.Lock()
	p.pending = false
	p.mu.Unlock()
	return nil
}

// Read implements gpio.PinIn.
func (p *Pin) Read() gpio.Level {
	p.reads.Add(1)
	if w, ok := p.owner.(readWatcher); ok {
		return w.read(p)
	}
	return p.Level()
}

// WaitForEdge implements gpio.PinIn. It returns true at once if an edge was
// latched since the last call, else waits for one. A negative timeout waits
// forever (like periph's sysfs backend; the cdev backend returns at once for
// -1, so hal code must not rely on it), zero only checks. It returns false
// at once if the pin is not an input with edge detection, and when In or Halt
// interrupt it.
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	p.mu.Lock()
	p.waits.Add(1) // under the lock: see Waits
	if p.dir != dirIn || p.edge == gpio.NoEdge {
		p.mu.Unlock()
		return false
	}
	gen := p.gen
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	for {
		if p.pending {
			p.pending = false
			p.mu.Unlock()
			return true
		}
		if p.gen != gen || timeout == 0 {
			p.mu.Unlock()
			return false
		}
		ch := p.notify
		p.mu.Unlock()
		select {
		case <-ch:
		case <-expired:
			return false
		}
		p.mu.Lock()
	}
}

// Pull implements gpio.PinIn.
func (p *Pin) Pull() gpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// DefaultPull implements gpio.PinIn: sim pins float after reset.
func (p *Pin) DefaultPull() gpio.Pull { return p.dflt }

// Out implements gpio.PinOut.
func (p *Pin) Out(l gpio.Level) error {
	p.mu.Lock()
	p.dir = dirOut
	p.out = l
	p.pending = false
	p.mu.Unlock()
	if p.owner != nil {
		p.owner.update()
	}
	return nil
}

// ErrNoPWM is returned by PWM: sim pins model plain GPIO lines.
var ErrNoPWM = errors.New("sim: pin has no PWM")

// PWM implements gpio.PinOut; sim pins have no PWM.
func (p *Pin) PWM(gpio.Duty, physic.Frequency) error {
	return fmt.Errorf("%s: %w", p.name, ErrNoPWM)
}

var (
	_ gpio.PinIO  = (*Pin)(nil)
	_ pin.PinFunc = (*Pin)(nil)
)
