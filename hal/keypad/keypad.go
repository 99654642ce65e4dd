package keypad

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// DefaultLayout is the SmartBox v1 4x3 keypad, row by row.
var DefaultLayout = []string{"123", "456", "789", "*0#"}

const (
	// DefaultDebounce is how long a key must read the same before it counts.
	// Keypad dome and membrane switches bounce for a few milliseconds; 20 ms
	// is the usual figure and still far below a human press (50-150 ms).
	DefaultDebounce = 20 * time.Millisecond

	// DefaultSettle is the pause between selecting a row and reading the
	// columns. A column is pulled up by the SoC's internal resistor (about
	// 50 kΩ on a Raspberry Pi); with some 100 pF of keypad cable that is an
	// RC of about 5 µs to rise after the previous row lets go of it, and
	// reading earlier would see the previous row's key in this row.
	DefaultSettle = 20 * time.Microsecond

	// edgeWait bounds each WaitForEdge. Never -1: on periph's gpio cdev
	// backend it returns at once (periph/host#78). Long enough that idle
	// costs a few wake-ups a second, short enough that Run returns soon after
	// its context is done.
	edgeWait = 200 * time.Millisecond

	// maxKeys is the size of the key set bitmask.
	maxKeys = 64
)

// Options tunes a Dev. The zero value is the SmartBox v1 keypad.
type Options struct {
	Layout   []string      // one string per row, one rune per key; nil: DefaultLayout
	Debounce time.Duration // 0: DefaultDebounce
	Settle   time.Duration // 0: DefaultSettle
	Logger   *slog.Logger  // nil: slog.Default()
}

// Dev scans a matrix keypad. See the package documentation.
type Dev struct {
	// Immutable.
	rows      []gpio.PinIO
	cols      []gpio.PinIO
	keys      []rune // keys[r*len(cols)+c]
	debounce  time.Duration
	settle    time.Duration
	scanEvery time.Duration
	log       *slog.Logger

	// Mutable.
	running atomic.Bool
}

// ErrRunning is returned by Run when another Run is in progress.
var ErrRunning = errors.New("keypad: already running")

// New checks the wiring against the layout and configures the pins: every
// row driven Low, every column an input with pull-up and falling-edge
// detection.
func New(rows []gpio.PinIO, cols []gpio.PinIO, opts Options) (*Dev, error) {
	layout := opts.Layout
	if len(layout) == 0 {
		layout = DefaultLayout
	}
	d := &Dev{
		rows:     rows,
		cols:     cols,
		debounce: opts.Debounce,
		settle:   opts.Settle,
		log:      opts.Logger,
	}
	if d.debounce <= 0 {
		d.debounce = DefaultDebounce
	}
	if d.settle <= 0 {
		d.settle = DefaultSettle
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	// Scan a few times per debounce period, but no faster than every
	// millisecond and no slower than every 10 ms: this only runs while a key
	// is down.
	d.scanEvery = min(max(d.debounce/4, time.Millisecond), 10*time.Millisecond)

	if len(rows) != len(layout) {
		return nil, fmt.Errorf("keypad: layout %q has %d rows but %d row pins are wired", layout, len(layout), len(rows))
	}
	seen := map[rune]bool{}
	for i, row := range layout {
		keys := []rune(row)
		if len(keys) != len(cols) {
			return nil, fmt.Errorf("keypad: layout %q row %d has %d keys but %d column pins are wired", layout, i+1, len(keys), len(cols))
		}
		for _, k := range keys {
			if seen[k] {
				return nil, fmt.Errorf("keypad: layout %q: key %q appears twice", layout, k)
			}
			seen[k] = true
		}
		d.keys = append(d.keys, keys...)
	}
	if len(d.keys) == 0 || len(d.keys) > maxKeys {
		return nil, fmt.Errorf("keypad: layout %q has %d keys, want 1..%d", layout, len(d.keys), maxKeys)
	}
	for i, p := range rows {
		if p == nil {
			return nil, fmt.Errorf("keypad: row %d: no pin", i+1)
		}
	}
	for i, p := range cols {
		if p == nil {
			return nil, fmt.Errorf("keypad: column %d: no pin", i+1)
		}
		// Falling edge: a press pulls an idle (High) column Low. Release is
		// found by polling while a key is down, so rising edges would only
		// wake the scanner for nothing.
		if err := p.In(gpio.PullUp, gpio.FallingEdge); err != nil {
			return nil, fmt.Errorf("keypad: column %d (%s): set input with pull-up and edge detection: %w", i+1, p, err)
		}
	}
	if err := d.idle(); err != nil {
		return nil, err
	}
	return d, nil
}

// Run scans the keypad until ctx is done, calling press once for each key
// press (from Run's goroutine: press should return quickly, the keypad is
// not scanned meanwhile). It returns nil when ctx is done, and an error if a
// pin fails.
func (d *Dev) Run(ctx context.Context, press func(key rune)) error {
	if press == nil {
		return errors.New("keypad: Run needs a press callback")
	}
	if !d.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer d.running.Store(false)
	if err := d.idle(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wake := make(chan struct{}, 1)
	for i, c := range d.cols {
		wg.Go(func() { d.watchColumn(ctx, i, c, wake) })
	}

	for {
		// Idle: every row is Low, so any press pulls its column Low. One
		// read catches a key pressed before the watchers were waiting (or
		// whose edge was flushed); after that only an edge wakes us.
		if !d.anyColumnLow() {
			select {
			case <-ctx.Done():
				return nil
			case <-wake:
			}
		}
		if err := d.active(ctx, press); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		// Scanning toggled the columns of the keys that were down; forget
		// the wake-ups that caused. A late one costs one empty scan.
		select {
		case <-wake:
		default:
		}
	}
}

// watchColumn turns edges on one column into wake-ups of Run.
func (d *Dev) watchColumn(ctx context.Context, i int, c gpio.PinIO, wake chan<- struct{}) {
	warned := false
	for ctx.Err() == nil {
		start := time.Now()
		if c.WaitForEdge(edgeWait) {
			select {
			case wake <- struct{}{}:
			default:
			}
			continue
		}
		if time.Since(start) >= edgeWait/2 {
			continue
		}
		// WaitForEdge gave up long before its timeout: edge detection does
		// not work on this pin (driver, or a pin without an edge). Degrade
		// to a slow poll rather than spinning a core, and say so once.
		if !warned {
			d.log.Warn("keypad: edge detection not working, polling instead", "column", i+1, "pin", c.String())
			warned = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(edgeWait):
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
}

// active scans while any key may be down and reports presses. It returns
// once no key has been down for the debounce time, or when ctx is done.
func (d *Dev) active(ctx context.Context, press func(rune)) error {
	var stable, raw uint64
	rawSince := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		cur, err := d.scan()
		if err != nil {
			return err
		}
		now := time.Now()
		if cur != raw {
			raw, rawSince = cur, now
		}
		settled := now.Sub(rawSince)
		if settled >= d.debounce {
			if raw != stable {
				if k, ok := d.newPress(stable, raw); ok {
					press(k)
				}
				stable = raw
			}
			if stable == 0 {
				return nil
			}
		}
		// Scan again after scanEvery, or exactly when the current reading
		// will have been stable for the debounce time if that is sooner, so
		// a press is reported about one debounce time after it happens.
		next := d.scanEvery
		if raw != stable {
			next = min(next, d.debounce-settled)
		}
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// newPress decides which key, if any, a debounced change of the set of keys
// down from old to cur is a press of. A key counts if it is the only key
// added and at most two keys are down: a diode-less matrix reads two keys
// exactly (so a quick typist may press the next key before releasing the
// last), but three keys on the corners of a rectangle make the fourth read
// as pressed, so with three or more down nothing is trusted or reported.
func (d *Dev) newPress(old, cur uint64) (rune, bool) {
	added := cur &^ old
	if bits.OnesCount64(added) != 1 || bits.OnesCount64(cur) > 2 {
		return 0, false
	}
	return d.keys[bits.TrailingZeros64(added)], true
}

// scan reads the whole matrix and returns the set of keys down (bit
// r*cols+c). It selects one row at a time by driving it Low; the other rows
// are inputs with pull-up (high impedance) rather than outputs driven High:
// with two keys down in one column, a High row and the Low row would be
// shorted through them. It leaves the keypad idle (all rows Low).
func (d *Dev) scan() (uint64, error) {
	for i, r := range d.rows {
		if err := r.In(gpio.PullUp, gpio.NoEdge); err != nil {
			return 0, fmt.Errorf("keypad: row %d (%s): release: %w", i+1, r, err)
		}
	}
	var set uint64
	for i, r := range d.rows {
		if err := r.Out(gpio.Low); err != nil {
			return 0, fmt.Errorf("keypad: row %d (%s): select: %w", i+1, r, err)
		}
		settle(d.settle)
		for j, c := range d.cols {
			if c.Read() == gpio.Low {
				set |= 1 << (i*len(d.cols) + j)
			}
		}
		if err := r.In(gpio.PullUp, gpio.NoEdge); err != nil {
			return 0, fmt.Errorf("keypad: row %d (%s): release: %w", i+1, r, err)
		}
	}
	return set, d.idle()
}

// idle drives every row Low, so that any press pulls its column Low.
func (d *Dev) idle() error {
	for i, r := range d.rows {
		if err := r.Out(gpio.Low); err != nil {
			return fmt.Errorf("keypad: row %d (%s): drive Low: %w", i+1, r, err)
		}
	}
	return nil
}

func (d *Dev) anyColumnLow() bool {
	for _, c := range d.cols {
		if c.Read() == gpio.Low {
			return true
		}
	}
	return false
}

// frozenSpins is how many clock reads settle's spin makes before it decides
// the clock is not moving. A real monotonic clock moves between any two of
// them; a testing/synctest bubble's fake clock moves only while every
// goroutine of the bubble sleeps, so a spin there would never end.
const frozenSpins = 100

// settle waits d. Below a millisecond it spins: time.Sleep rounds short
// sleeps up to about a millisecond on Linux, which would make a 4-row scan
// cost 4 ms instead of 100 µs. It only runs while a key is down. On a clock
// that does not move while it spins (a synctest bubble, where the tests run)
// it sleeps instead, which on that clock takes exactly d.
func settle(d time.Duration) {
	if d >= time.Millisecond {
		time.Sleep(d)
		return
	}
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		if i == frozenSpins && time.Since(start) == 0 {
			time.Sleep(d)
			return
		}
	}
}
