package keypad

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/smartbox-oss/smartbox/sim"
)

// The tests run in testing/synctest bubbles: these durations pass on the
// bubble's fake clock, which moves only once the scanner and the keypad have
// done all they can at the current instant. A loaded machine makes a test
// slower, never different, and no test waits for real time.
const (
	// hold and gap are a human's key press.
	hold = 100 * time.Millisecond
	gap  = 100 * time.Millisecond
	// quiet is how long a test waits to be sure no (further) key comes.
	quiet = 150 * time.Millisecond
	// long bounds waiting for a key that must come (fake time too: it trips
	// only when the key never comes).
	long = 5 * time.Second
)

// harness runs a Dev on a sim.Keypad and collects the reported keys.
type harness struct {
	kp   *sim.Keypad
	dev  *Dev
	keys chan rune
	stop func() error
}

func start(t testing.TB, opts Options) *harness {
	t.Helper()
	kp := sim.NewKeypad(opts.Layout)
	dev, err := New(kp.Rows(), kp.Cols(), opts)
	require.NoError(t, err)
	h := &harness{kp: kp, dev: dev, keys: make(chan rune, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dev.Run(ctx, func(k rune) { h.keys <- k }) }()
	h.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(long):
			return context.DeadlineExceeded
		}
	})
	t.Cleanup(func() {
		require.NoError(t, h.stop())
		require.Zero(t, kp.Shorts(), "the scanner must never drive two rows against each other")
	})
	// Wait until every column watcher is waiting, so the test starts idle.
	require.Eventually(t, func() bool {
		for _, c := range kp.ColPins() {
			if c.Waits() == 0 {
				return false
			}
		}
		return true
	}, long, time.Millisecond)
	return h
}

func (h *harness) next(t testing.TB) rune {
	t.Helper()
	select {
	case k := <-h.keys:
		return k
	case <-time.After(long):
		t.Fatal("no key reported")
		return 0
	}
}

func (h *harness) none(t testing.TB) {
	t.Helper()
	select {
	case k := <-h.keys:
		t.Fatalf("unexpected key %q", k)
	case <-time.After(quiet):
	}
}

func TestEveryKey(t *testing.T) {
	t.Parallel()
	for _, layout := range [][]string{nil, {"AB", "CD"}, {"123A", "456B", "789C", "*0#D"}} {
		t.Run(strings.Join(layout, "/"), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := start(t, Options{Layout: layout})
				if layout == nil {
					layout = DefaultLayout
				}
				for _, row := range layout {
					for _, k := range row {
						require.NoError(t, h.kp.Tap(k, hold))
						require.Equal(t, k, h.next(t), "key %q", k)
					}
				}
				h.none(t)
			})
		})
	}
}

func TestTypedSequenceInOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{})
		const code = "123456#"
		require.NoError(t, h.kp.Type(code, hold, gap))
		var got []rune
		for range code {
			got = append(got, h.next(t))
		}
		require.Equal(t, code, string(got))
		h.none(t)
	})
}

func TestRepeatedKey(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{})
		require.NoError(t, h.kp.Type("000", hold, gap))
		require.Equal(t, "000", string([]rune{h.next(t), h.next(t), h.next(t)}))
		h.none(t)
	})
}

func TestDebounce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{})
		// Contact bounce: the switch makes and breaks a few times within 5 ms.
		bounce := func(k rune, end bool) {
			for i := range 5 {
				if i%2 == 0 == end {
					require.NoError(t, h.kp.Press(k))
				} else {
					require.NoError(t, h.kp.Release(k))
				}
				time.Sleep(time.Millisecond)
			}
		}
		bounce('7', true) // ends pressed
		time.Sleep(hold)
		bounce('7', false) // ends released
		require.Equal(t, '7', h.next(t))
		h.none(t)
	})
}

func TestHeldKeyReportedOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{})
		require.NoError(t, h.kp.Press('9'))
		require.Equal(t, '9', h.next(t))
		h.none(t) // still held
		require.NoError(t, h.kp.Release('9'))
		h.none(t)
		require.NoError(t, h.kp.Tap('9', hold))
		require.Equal(t, '9', h.next(t))
	})
}

func TestMultipleKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"rollover: second key while first held", func(t *testing.T, h *harness) {
			require.NoError(t, h.kp.Press('1'))
			require.Equal(t, '1', h.next(t))
			require.NoError(t, h.kp.Press('6'))
			require.Equal(t, '6', h.next(t))
			require.NoError(t, h.kp.Release('1'))
			require.NoError(t, h.kp.Release('6'))
			h.none(t)
		}},
		{"two keys at once: ambiguous, none", func(t *testing.T, h *harness) {
			require.NoError(t, h.kp.Press('2'))
			require.NoError(t, h.kp.Press('8'))
			h.none(t)
			require.NoError(t, h.kp.Release('2'))
			require.NoError(t, h.kp.Release('8'))
			h.none(t)
		}},
		{"ghost rectangle: none", func(t *testing.T, h *harness) {
			// 1, 2 and 4 down make 5 read as down too (no diodes).
			require.NoError(t, h.kp.Press('1'))
			require.Equal(t, '1', h.next(t))
			require.NoError(t, h.kp.Press('2'))
			require.Equal(t, '2', h.next(t))
			require.NoError(t, h.kp.Press('4'))
			h.none(t)
			require.NoError(t, h.kp.Release('4'))
			require.NoError(t, h.kp.Release('2'))
			h.none(t)
			require.NoError(t, h.kp.Release('1'))
			h.none(t)
		}},
		{"three in a row: none", func(t *testing.T, h *harness) {
			require.NoError(t, h.kp.Press('3'))
			require.Equal(t, '3', h.next(t))
			require.NoError(t, h.kp.Press('6'))
			require.Equal(t, '6', h.next(t))
			require.NoError(t, h.kp.Press('9'))
			h.none(t)
			for _, k := range "369" {
				require.NoError(t, h.kp.Release(k))
			}
			h.none(t)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := start(t, Options{})
				tt.run(t, h)
				// The keypad works normally afterwards.
				require.NoError(t, h.kp.Tap('0', hold))
				require.Equal(t, '0', h.next(t))
			})
		})
	}
}

func TestIdleIsEdgeDriven(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Options{})
		reads := func() (n uint64) {
			for _, p := range h.kp.ColPins() {
				n += p.Reads()
			}
			return n
		}
		waits := func() (n uint64) {
			for _, p := range h.kp.ColPins() {
				n += p.Waits()
			}
			return n
		}
		r0, w0 := reads(), waits()
		time.Sleep(200 * time.Millisecond)
		require.LessOrEqual(t, reads()-r0, uint64(0), "idle: no column reads")
		require.LessOrEqual(t, waits()-w0, uint64(3*len(h.kp.Cols())), "idle: a few bounded waits per column")

		// After a press and release the scanner settles back to idle.
		require.NoError(t, h.kp.Tap('5', hold))
		require.Equal(t, '5', h.next(t))
		time.Sleep(quiet)
		r0 = reads()
		time.Sleep(200 * time.Millisecond)
		require.LessOrEqual(t, reads()-r0, uint64(0), "idle again after a press")
	})
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := start(t, Options{})
			require.NoError(t, h.stop())
		})
	})
	t.Run("key held", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := start(t, Options{})
			require.NoError(t, h.kp.Press('1'))
			require.Equal(t, '1', h.next(t))
			require.NoError(t, h.stop())
			for _, r := range h.kp.RowPins() {
				require.True(t, r.IsOutput())
				require.Equal(t, gpio.Low, r.Level(), "rows left idle")
			}
		})
	})
	t.Run("already running", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := start(t, Options{})
			require.ErrorIs(t, h.dev.Run(context.Background(), func(rune) {}), ErrRunning)
		})
	})
	t.Run("key down at start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			kp := sim.NewKeypad(nil)
			require.NoError(t, kp.Press('#'))
			dev, err := New(kp.Rows(), kp.Cols(), Options{})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			keys := make(chan rune, 1)
			done := make(chan error, 1)
			go func() { done <- dev.Run(ctx, func(k rune) { keys <- k }) }()
			// The bubble's clock stops when this function returns: Run (and
			// its column watchers' bounded waits) must be over by then.
			defer func() {
				cancel()
				require.NoError(t, <-done)
			}()
			select {
			case k := <-keys:
				require.Equal(t, '#', k)
			case <-time.After(long):
				t.Fatal("a key held at start was not reported")
			}
		})
	})
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	kp := sim.NewKeypad(nil)
	noEdges := []gpio.PinIO{&gpiotest.Pin{N: "C1"}, &gpiotest.Pin{N: "C2"}, &gpiotest.Pin{N: "C3"}}
	tests := []struct {
		name       string
		rows, cols []gpio.PinIO
		opts       Options
		want       string
	}{
		{"rows", kp.Rows()[:3], kp.Cols(), Options{}, "has 4 rows but 3 row pins"},
		{"cols", kp.Rows(), kp.Cols()[:2], Options{}, "row 1 has 3 keys but 2 column pins"},
		{"duplicate", kp.Rows()[:2], kp.Cols(), Options{Layout: []string{"123", "451"}}, `key '1' appears twice`},
		{"nil row", []gpio.PinIO{kp.Rows()[0], nil, kp.Rows()[2], kp.Rows()[3]}, kp.Cols(), Options{}, "row 2: no pin"},
		{"nil col", kp.Rows(), []gpio.PinIO{kp.Cols()[0], kp.Cols()[1], nil}, Options{}, "column 3: no pin"},
		{"no edge support", kp.Rows(), noEdges, Options{}, "column 1 (C1(0)): set input with pull-up and edge detection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.rows, tt.cols, tt.opts)
			require.ErrorContains(t, err, tt.want)
		})
	}
	dev, err := New(kp.Rows(), kp.Cols(), Options{})
	require.NoError(t, err)
	require.Error(t, dev.Run(context.Background(), nil))
}

// TestGPIOTestPins checks the edge wiring on periph's own fake pins: a
// one-row keypad, so that a column held Low means one key whatever row is
// selected (gpiotest pins do not model the matrix).
func TestGPIOTestPins(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		row := &gpiotest.Pin{N: "ROW", Num: 1}
		cols := []*gpiotest.Pin{
			{N: "COL1", Num: 2, EdgesChan: make(chan gpio.Level)},
			{N: "COL2", Num: 3, EdgesChan: make(chan gpio.Level)},
		}
		dev, err := New([]gpio.PinIO{row}, []gpio.PinIO{cols[0], cols[1]}, Options{Layout: []string{"12"}})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		keys := make(chan rune, 10)
		go func() { done <- dev.Run(ctx, func(k rune) { keys <- k }) }()

		press := func(c *gpiotest.Pin) {
			select {
			case c.EdgesChan <- gpio.Low: // WaitForEdge takes it and sets the level
			case <-time.After(long):
				t.Fatal("the scanner is not waiting for an edge")
			}
		}
		release := func(c *gpiotest.Pin) {
			c.Lock()
			c.L = gpio.High
			c.Unlock()
		}
		for _, tc := range []struct {
			col  *gpiotest.Pin
			want rune
		}{{cols[1], '2'}, {cols[0], '1'}, {cols[1], '2'}} {
			press(tc.col)
			select {
			case k := <-keys:
				require.Equal(t, tc.want, k)
			case <-time.After(long):
				t.Fatal("no key reported")
			}
			release(tc.col)
		}
		cancel()
		require.NoError(t, <-done)
		require.Equal(t, gpio.Low, row.Read(), "row left driven Low")
	})
}

// BenchmarkPressToReport measures the time from a key press on the sim
// keypad, from idle, to the press callback. Expect about the debounce time.
func BenchmarkPressToReport(b *testing.B) {
	h := start(b, Options{})
	var total, worst time.Duration
	keys := []rune("123456789*0#")
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		i++
		t0 := time.Now()
		if err := h.kp.Press(k); err != nil {
			b.Fatal(err)
		}
		if got := h.next(b); got != k {
			b.Fatalf("got %q, want %q", got, k)
		}
		d := time.Since(t0)
		total += d
		worst = max(worst, d)
		b.StopTimer()
		if err := h.kp.Release(k); err != nil {
			b.Fatal(err)
		}
		// Let the scanner see the release and go back to idle.
		time.Sleep(3 * DefaultDebounce)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(i)/1000, "ms/press")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
}
