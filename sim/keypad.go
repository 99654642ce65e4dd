package sim

import (
	"errors"
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

// ConfirmTimeout bounds each wait of a confirmed Tap (see ConfirmScans) for
// the scanner to read a key down, or up again. A scanner slowed by the race
// detector on a loaded 2-core machine is late by tens of milliseconds, so 5 s
// is a hundred times that: a Tap that still times out found a scanner that
// does not run or does not read that key, a real failure, and the test
// learns it in seconds rather than at its own timeout.
const ConfirmTimeout = 5 * time.Second

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
//
// The keypad also watches the scanner read it: a column Read while exactly
// one row is driven Low is a reading of the key where they cross, and one
// while every row is driven Low is an idle check. ConfirmScans uses this to
// make Tap wait for the scanner instead of for the clock.
type Keypad struct {
	// Immutable.
	layout [][]rune
	rows   []*Pin
	cols   []*Pin

	shorts  atomic.Uint64
	confirm atomic.Int64 // the scanner's debounce for confirmed taps; 0: off

	// confirmTimeout is ConfirmTimeout; tests of the timeout shorten it
	// before the keypad is used.
	confirmTimeout time.Duration

	mu      sync.Mutex
	pressed map[rune]bool
	scanned map[rune]*keyReads // how the scanner has read each key lately
	// idleReads counts column reads with every row driven Low and no key
	// pressed: the hal scanner makes them only once it has left its active
	// scan loop with no key down.
	idleReads uint64
	// readSignal, when a confirmed Tap waits, is closed (and cleared) by the
	// next reading of a key or idle read.
	readSignal chan struct{}
}

// keyReads is the latest run of the scanner's readings of one key that all
// saw it the same way (down or up), since the key last changed.
type keyReads struct {
	down   bool      // what the run saw
	n      int       // readings in the run
	second time.Time // when the run's second reading was taken
	last   time.Time // when its latest reading was taken
	// idleMark is idleReads when the key last changed: a later idle read
	// means the scanner went idle since.
	idleMark uint64
}

// settled reports whether the run shows the scanner has debounced the key
// as down (or up): its readings saw the key that way in scans spanning at
// least debounce on the scanner's own clock.
//
// The hal scanner takes its timestamp after each whole scan, so the time
// of scan i, T(i), lies after reading i and before reading i+1. The
// scanner counts a reading as stable from T(1) or earlier; T(n) - T(1) is
// more than last - second, so a run whose second to last readings span
// debounce is stable on the scanner's clock too, however late its
// goroutine ran. This assumes no other key changes during the run (which
// would restart the scanner's count); Tap changes only its own key.
func (r *keyReads) settled(down bool, debounce time.Duration) bool {
	return r.down == down && r.n >= 3 && r.last.Sub(r.second) >= debounce
}

// NewKeypad returns a keypad with the given layout (nil: DefaultLayout), one
// string per row, one rune per key. Every row must have the same number of
// keys and no key may appear twice; NewKeypad panics otherwise, as the layout
// is a constant of the program, not outside input.
func NewKeypad(layout []string) *Keypad {
	if len(layout) == 0 {
		layout = DefaultLayout
	}
	k := &Keypad{pressed: map[rune]bool{}, scanned: map[rune]*keyReads{}, confirmTimeout: ConfirmTimeout}
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
	for _, row := range k.layout {
		for _, r := range row {
			k.scanned[r] = &keyReads{}
		}
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

// ConfirmScans turns confirmed taps on: from now on Tap (and so Type) holds
// a key down for its hold and also until the scanner has read it down in
// scans spanning debounce, and after releasing it waits until the scanner
// has read it up for debounce or has gone idle. debounce must be the
// scanner's debounce as the scanner uses it (hal/keypad: Options.Debounce,
// or its default for 0). A press then cannot be too short for the scanner
// however late its goroutine runs, and "11" is two presses. Each wait is
// bounded by ConfirmTimeout; a Tap that times out returns an error saying
// the scanner never read the key.
//
// debounce <= 0 turns confirmed taps off: Tap holds for the time given and
// no longer, which is what tests of the scanner's timing need. Press and
// Release never wait.
func (k *Keypad) ConfirmScans(debounce time.Duration) {
	k.confirm.Store(int64(max(debounce, 0)))
}

// ConfirmDebounce is the debounce ConfirmScans was last given; 0: confirmed
// taps are off.
func (k *Keypad) ConfirmDebounce() time.Duration { return time.Duration(k.confirm.Load()) }

// Tap presses r, holds it for hold (0: DefaultHold) and releases it. With
// ConfirmScans on, it holds r at least hold and until the scanner read it,
// and returns once the scanner has seen it released.
func (k *Keypad) Tap(r rune, hold time.Duration) error {
	if hold <= 0 {
		hold = DefaultHold
	}
	if err := k.Press(r); err != nil {
		return err
	}
	debounce := k.ConfirmDebounce()
	if debounce <= 0 {
		time.Sleep(hold)
		return k.Release(r)
	}
	pressed := time.Now()
	if err := k.awaitScanned(r, true, debounce); err != nil {
		return errors.Join(err, k.Release(r))
	}
	time.Sleep(hold - time.Since(pressed))
	if err := k.Release(r); err != nil {
		return err
	}
	return k.awaitScanned(r, false, debounce)
}

// awaitScanned waits until the scanner's readings of key r show it down (or
// up, or the scanner idle) for debounce, at most k.confirmTimeout.
func (k *Keypad) awaitScanned(r rune, down bool, debounce time.Duration) error {
	timeout := time.NewTimer(k.confirmTimeout)
	defer timeout.Stop()
	k.mu.Lock()
	defer k.mu.Unlock()
	for {
		reads := k.scanned[r]
		if reads.settled(down, debounce) || (!down && k.idleReads > reads.idleMark) {
			return nil
		}
		if k.readSignal == nil {
			k.readSignal = make(chan struct{})
		}
		signal := k.readSignal
		k.mu.Unlock()
		select {
		case <-signal:
			k.mu.Lock()
		case <-timeout.C:
			k.mu.Lock()
			what := "pressed, the scanner never read it down"
			if !down {
				what = "released, the scanner never read it up or went idle"
			}
			return fmt.Errorf("sim: keypad: key %q %s for %v within %v (its latest run: %d readings, down=%v)",
				r, what, debounce, k.confirmTimeout, k.scanned[r].n, k.scanned[r].down)
		}
	}
}

// read is a Read of one of the keypad's pins by the code under test. It
// takes the level under the keypad's lock, so that it matches the keys
// pressed and the rows' drive exactly, and notes what the scanner learnt.
func (k *Keypad) read(p *Pin) gpio.Level {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := p.Level()
	col := slices.Index(k.cols, p)
	if col < 0 {
		return l // a row: not how the scanner reads keys
	}
	selected, low := -1, 0
	for i, row := range k.rows {
		if dir, out, _ := row.state(); dir == dirOut && out == gpio.Low {
			selected = i
			low++
		}
	}
	switch {
	case low == 1:
		k.noteLocked(k.layout[selected][col], l == gpio.Low)
	case low == len(k.rows) && !k.anyPressedLocked():
		k.idleReads++
	default:
		return l
	}
	if k.readSignal != nil {
		close(k.readSignal)
		k.readSignal = nil
	}
	return l
}

func (k *Keypad) anyPressedLocked() bool {
	for _, down := range k.pressed {
		if down {
			return true
		}
	}
	return false
}

// noteLocked adds a reading of key r to its run.
func (k *Keypad) noteLocked(r rune, down bool) {
	reads := k.scanned[r]
	now := time.Now()
	if reads.n == 0 || reads.down != down {
		reads.down, reads.n = down, 0
	}
	reads.n++
	if reads.n == 2 {
		reads.second = now
	}
	reads.last = now
}

// Type taps each key of s in turn, holding each for hold and waiting gap
// between keys (0: DefaultHold for either). It checks every key of s before
// pressing any. With ConfirmScans on, each tap waits for the scanner as Tap
// says.
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
	defer k.mu.Unlock()
	if k.pressed[r] != down {
		// The scanner's readings of r from before the change say nothing
		// about it now.
		k.scanned[r] = &keyReads{idleMark: k.idleReads}
	}
	k.pressed[r] = down
	k.updateLocked()
	return nil
}

// update recomputes every wire's level from the pressed keys and from how
// the scanner drives the pins, and pushes it to the pins (which latch edges).
func (k *Keypad) update() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.updateLocked()
}

func (k *Keypad) updateLocked() {
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
