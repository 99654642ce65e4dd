package sim

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// DefaultLayout is the SmartBox v1 4x3 keypad, row by row.
var DefaultLayout = []string{"123", "456", "789", "*0#"}

// DefaultHold is how long Tap and Type hold a key, and Type waits between
// keys, when given 0: about a brisk human press.
const DefaultHold = 60 * time.Millisecond

// Keypad is a matrix keypad modelled electrically. Each key is a switch
// between its row wire and its column wire. The hal scanner drives the row
// pins and reads the column pins.
//
// The model is a net list: wires joined by closed switches form one node. A
// node is Low if any output on it drives Low, else High if any output drives
// High, else it follows the pulls of its inputs (pull-up only: High; none, or
// pull-ups fighting pull-downs: Low). So a column reads Low iff a pressed key
// joins it to a row driven Low, and three pressed keys on the corners of a
// rectangle show the fourth as a phantom (ghost) key, as a real diode-less
// keypad does. Outputs driving opposite levels onto one node are a short
// circuit on real hardware: the model resolves them Low and counts them (see
// Shorts), so a test can assert the scanner never does it.
type Keypad struct {
	// Immutable.
	layout [][]rune
	rows   []*Pin
	cols   []*Pin

	shorts atomic.Uint64

	mu      sync.Mutex
	pressed map[rune]bool
}

// NewKeypad returns a keypad with the given layout (nil: DefaultLayout), one
// string per row, one rune per key. Every row must have the same number of
// keys and no key may appear twice; NewKeypad panics otherwise, as the layout
// is a constant of the program, not outside input.
func NewKeypad(layout []string) *Keypad {
	if len(layout) == 0 {
		layout = DefaultLayout
	}
	k := &Keypad{pressed: map[rune]bool{}}
	seen := map[rune]bool{}
	for i, row := range layout {
		keys := []rune(row)
		if len(keys) == 0 || (i > 0 && len(keys) != len(k.layout[0])) {
			panic(fmt.Sprintf("sim: keypad layout %q: row %d has %d keys, want %d", layout, i+1, len(keys), len(k.layout[0])))
		}
		for _, r := range keys {
			if seen[r] {
				panic(fmt.Sprintf("sim: keypad layout %q: key %q appears twice", layout, r))
			}
			seen[r] = true
		}
		k.layout = append(k.layout, keys)
	}
	for i := range k.layout {
		k.rows = append(k.rows, newPin(fmt.Sprintf("KP_ROW%d", i+1), i, k))
	}
	for j := range k.layout[0] {
		k.cols = append(k.cols, newPin(fmt.Sprintf("KP_COL%d", j+1), len(k.layout)+j, k))
	}
	k.update()
	return k
}

// Rows returns the row pins, top row first (outputs of the scanner).
func (k *Keypad) Rows() []gpio.PinIO { return pinIOs(k.rows) }

// Cols returns the column pins, left column first (inputs of the scanner).
func (k *Keypad) Cols() []gpio.PinIO { return pinIOs(k.cols) }

// RowPins and ColPins return the same pins with their test counters.
func (k *Keypad) RowPins() []*Pin { return slices.Clone(k.rows) }

// ColPins: see RowPins.
func (k *Keypad) ColPins() []*Pin { return slices.Clone(k.cols) }

// Shorts counts the updates that found outputs driving opposite levels onto
// one node: on real hardware, two GPIO outputs shorted through the keys.
func (k *Keypad) Shorts() uint64 { return k.shorts.Load() }

// Press closes key r's switch. Pressing a pressed key is a no-op.
func (k *Keypad) Press(r rune) error { return k.set(r, true) }

// Release opens key r's switch. Releasing a released key is a no-op.
func (k *Keypad) Release(r rune) error { return k.set(r, false) }

// Down returns the keys pressed now, in layout order.
func (k *Keypad) Down() []rune {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []rune
	for _, row := range k.layout {
		for _, r := range row {
			if k.pressed[r] {
				out = append(out, r)
			}
		}
	}
	return out
}

// Tap presses r, holds it for hold (0: DefaultHold) and releases it.
func (k *Keypad) Tap(r rune, hold time.Duration) error {
	if hold <= 0 {
		hold = DefaultHold
	}
	if err := k.Press(r); err != nil {
		return err
	}
	time.Sleep(hold)
	return k.Release(r)
}

// Type taps each key of s in turn, holding each for hold and waiting gap
// between keys (0: DefaultHold for either). It checks every key of s before
// pressing any.
func (k *Keypad) Type(s string, hold, gap time.Duration) error {
	if gap <= 0 {
		gap = DefaultHold
	}
	for _, r := range s {
		if _, _, ok := k.find(r); !ok {
			return fmt.Errorf("sim: keypad: type %q: no key %q", s, r)
		}
	}
	for i, r := range []rune(s) {
		if i > 0 {
			time.Sleep(gap)
		}
		if err := k.Tap(r, hold); err != nil {
			return err
		}
	}
	return nil
}

func (k *Keypad) find(r rune) (row, col int, ok bool) {
	for i, keys := range k.layout {
		if j := slices.Index(keys, r); j >= 0 {
			return i, j, true
		}
	}
	return 0, 0, false
}

func (k *Keypad) set(r rune, down bool) error {
	if _, _, ok := k.find(r); !ok {
		return fmt.Errorf("sim: keypad: no key %q", r)
	}
	k.mu.Lock()
	k.pressed[r] = down
	k.mu.Unlock()
	k.update()
	return nil
}

// update recomputes every wire's level from the pressed keys and from how
// the scanner drives the pins, and pushes it to the pins (which latch edges).
func (k *Keypad) update() {
	k.mu.Lock()
	defer k.mu.Unlock()
	nr, nc := len(k.rows), len(k.cols)
	all := append(slices.Clone(k.rows), k.cols...)
	// Union-find over the wires: rows are 0..nr-1, columns nr..nr+nc-1.
	parent := make([]int, nr+nc)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for i, keys := range k.layout {
		for j, r := range keys {
			if k.pressed[r] {
				parent[find(i)] = find(nr + j)
			}
		}
	}
	type node struct{ low, high, up, down bool }
	nodes := make(map[int]*node)
	for i, p := range all {
		root := find(i)
		n := nodes[root]
		if n == nil {
			n = &node{}
			nodes[root] = n
		}
		dir, out, pull := p.state()
		switch {
		case dir == dirOut && out == gpio.Low:
			n.low = true
		case dir == dirOut:
			n.high = true
		case pull == gpio.PullUp:
			n.up = true
		case pull == gpio.PullDown:
			n.down = true
		}
	}
	for _, n := range nodes {
		if n.low && n.high {
			k.shorts.Add(1)
		}
	}
	for i, p := range all {
		n := nodes[find(i)]
		level := gpio.Low
		switch {
		case n.low:
		case n.high:
			level = gpio.High
		case n.up && !n.down:
			level = gpio.High
		}
		p.setExt(true, level)
	}
}

func pinIOs(pins []*Pin) []gpio.PinIO {
	out := make([]gpio.PinIO, len(pins))
	for i, p := range pins {
		out[i] = p
	}
	return out
}
