package slots

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/smartbox-oss/smartbox/sim"
)

// The timing tests run in testing/synctest bubbles: relock timers, debounce
// waits and the durations below pass on the bubble's fake clock, which moves
// only once every goroutine of the test is blocked, so a loaded machine makes
// them slower, never different.
const (
	long  = 5 * time.Second        // bound for what must happen
	quiet = 200 * time.Millisecond // wait to be sure nothing (more) happens
	// slack is how late a relock timer may fire. On the fake clock it fires
	// on time; the bound stays as the assertion a real clock would need.
	slack = 500 * time.Millisecond
)

func newSim(t *testing.T, n int, occupied bool, opts Options) (*sim.Slots, *Dev) {
	t.Helper()
	s := sim.NewSlots(n, occupied)
	d, err := New(s.LockPins(), s.SensorPins(), s.LEDPins(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Close()) })
	return s, d
}

func waitLocked(t *testing.T, s *sim.Slots, slot int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()
	require.NoError(t, s.WaitLocked(ctx, slot))
}

func TestNewDeEnergisesFirst(t *testing.T) {
	t.Parallel()
	t.Run("sim", func(t *testing.T) {
		s := sim.NewSlots(3, true)
		for _, p := range s.LockPins() {
			require.NoError(t, p.Out(gpio.High)) // left energised by a crashed daemon
		}
		_, err := New(s.LockPins(), s.SensorPins(), s.LEDPins(), Options{})
		require.NoError(t, err)
		for slot := 1; slot <= 3; slot++ {
			require.False(t, s.Released(slot))
		}
	})
	t.Run("even when the rest is miswired", func(t *testing.T) {
		s := sim.NewSlots(3, true)
		for _, p := range s.LockPins() {
			require.NoError(t, p.Out(gpio.High))
		}
		_, err := New(s.LockPins(), s.SensorPins()[:2], nil, Options{})
		require.ErrorContains(t, err, "3 lock pins but 2 key sensor pins")
		for slot := 1; slot <= 3; slot++ {
			require.False(t, s.Released(slot))
		}
	})
	t.Run("gpiotest", func(t *testing.T) {
		locks := []*gpiotest.Pin{{N: "L1", L: gpio.High}, {N: "L2", L: gpio.High}}
		sensors := []*gpiotest.Pin{{N: "S1", EdgesChan: make(chan gpio.Level)}, {N: "S2", EdgesChan: make(chan gpio.Level)}}
		leds := []*gpiotest.Pin{{N: "D1", L: gpio.High}, {N: "D2", L: gpio.High}}
		d, err := New(ios(locks), ios(sensors), ios(leds), Options{})
		require.NoError(t, err)
		for i := range 2 {
			require.Equal(t, gpio.Low, locks[i].Read())
			require.Equal(t, gpio.Low, leds[i].Read())
			require.Equal(t, gpio.PullUp, sensors[i].P)
			present, err := d.Present(i + 1)
			require.NoError(t, err)
			require.False(t, present, "pull-up: empty slot reads High")
		}
	})
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	s := sim.NewSlots(2, true)
	noEdges := []gpio.PinIO{&gpiotest.Pin{N: "S1"}, &gpiotest.Pin{N: "S2"}}
	tests := []struct {
		name                 string
		locks, sensors, leds []gpio.PinIO
		want                 string
	}{
		{"no slots", nil, nil, nil, "at least one slot"},
		{"leds", s.LockPins(), s.SensorPins(), s.LEDPins()[:1], "2 lock pins but 1 LED pins"},
		{"nil lock", []gpio.PinIO{s.LockPins()[0], nil}, s.SensorPins(), nil, "slot 2 lock: no pin"},
		{"nil sensor", s.LockPins(), []gpio.PinIO{nil, s.SensorPins()[1]}, nil, "slot 1 key sensor: no pin"},
		{"no edge support", s.LockPins(), noEdges, nil, "slot 1 key sensor (S1(0)): set input with pull-up and edge detection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.locks, tt.sensors, tt.leds, Options{})
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestReleaseRelocks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		hardMax time.Duration
		dur     time.Duration
		want    time.Duration
	}{
		{"asked time", time.Second, 80 * time.Millisecond, 80 * time.Millisecond},
		{"capped by hard max", 120 * time.Millisecond, time.Hour, 120 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s, d := newSim(t, 2, true, Options{HardMax: tt.hardMax})
				require.NoError(t, d.Release(2, tt.dur))
				require.True(t, s.Released(2))
				require.False(t, s.Released(1))
				waitLocked(t, s, 2)
				p := s.Pulses(2)
				require.Len(t, p, 1)
				require.GreaterOrEqual(t, p[0], tt.want)
				require.Less(t, p[0], tt.want+slack)
			})
		})
	}
}

func TestRepeatedReleaseCannotExceedHardMax(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const hardMax = 300 * time.Millisecond
		s, d := newSim(t, 1, true, Options{HardMax: hardMax})
		start := time.Now()
		// Keep asking for more before each release time is up: the coil still
		// gets no more than hardMax in one go.
		for time.Since(start) < 2*hardMax {
			err := d.Release(1, 200*time.Millisecond)
			if err != nil {
				require.ErrorIs(t, err, ErrHardMax)
			}
			time.Sleep(50 * time.Millisecond)
		}
		require.NoError(t, d.Lock(1))
		p := s.Pulses(1)
		require.GreaterOrEqual(t, len(p), 2, "the first pulse was cut at hardMax")
		require.GreaterOrEqual(t, p[0], hardMax)
		for _, p := range p {
			require.Less(t, p, hardMax+slack)
		}
	})
}

func TestLockAndLockAll(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, d := newSim(t, 3, true, Options{})
		for slot := 1; slot <= 3; slot++ {
			require.NoError(t, d.Release(slot, time.Hour))
		}
		require.NoError(t, d.Lock(2))
		require.True(t, s.Released(1))
		require.False(t, s.Released(2))
		require.NoError(t, d.LockAll())
		for slot := 1; slot <= 3; slot++ {
			require.False(t, s.Released(slot))
		}
		// The stale relock timers of the releases must not touch a later one.
		require.NoError(t, d.Release(1, time.Hour))
		require.NoError(t, d.Lock(1))
		require.NoError(t, d.Release(1, 150*time.Millisecond))
		time.Sleep(50 * time.Millisecond)
		require.True(t, s.Released(1))
		waitLocked(t, s, 1)
	})
}

func TestSlotRange(t *testing.T) {
	t.Parallel()
	_, d := newSim(t, 2, true, Options{})
	for _, slot := range []int{0, 3, -1} {
		require.ErrorContains(t, d.Release(slot, time.Second), "out of range 1..2")
		require.ErrorContains(t, d.Lock(slot), "out of range 1..2")
		_, err := d.Present(slot)
		require.ErrorContains(t, err, "out of range 1..2")
		require.ErrorContains(t, d.SetSlot(slot, true), "out of range 1..2")
	}
	require.ErrorContains(t, d.Release(1, 0), "must be positive")
	require.Equal(t, 2, d.N())
}

func TestPresentFollowsKey(t *testing.T) {
	t.Parallel()
	s, d := newSim(t, 2, true, Options{})
	present := func(slot int) bool {
		p, err := d.Present(slot)
		require.NoError(t, err)
		return p
	}
	require.True(t, present(1))
	require.ErrorIs(t, s.Take(1), sim.ErrLatched)
	require.NoError(t, d.Release(1, time.Hour))
	require.NoError(t, s.Take(1))
	require.False(t, present(1))
	require.True(t, present(2))
	require.NoError(t, s.PutBack(1))
	require.True(t, present(1))
}

func TestLEDs(t *testing.T) {
	t.Parallel()
	s, d := newSim(t, 2, true, Options{})
	require.NoError(t, d.SetSlot(2, true))
	require.True(t, s.LED(2))
	require.False(t, s.LED(1))
	require.NoError(t, d.SetSlot(2, false))
	require.False(t, s.LED(2))

	// Without LEDs, SetSlot is a no-op.
	s2 := sim.NewSlots(1, true)
	d2, err := New(s2.LockPins(), s2.SensorPins(), nil, Options{})
	require.NoError(t, err)
	require.NoError(t, d2.SetSlot(1, true))
	require.False(t, s2.LED(1))
}

func TestClose(t *testing.T) {
	t.Parallel()
	s := sim.NewSlots(2, true)
	d, err := New(s.LockPins(), s.SensorPins(), s.LEDPins(), Options{})
	require.NoError(t, err)
	require.NoError(t, d.Release(1, time.Hour))
	require.NoError(t, d.SetSlot(2, true))
	require.NoError(t, d.Close())
	require.False(t, s.Released(1))
	require.False(t, s.LED(2))
	require.ErrorIs(t, d.Release(1, time.Second), ErrClosed)
	require.ErrorIs(t, d.SetSlot(1, true), ErrClosed)
	require.NoError(t, d.LockAll())
	require.NoError(t, d.Close(), "Close twice is fine")
}

type change struct {
	slot    int
	present bool
}

func watch(t *testing.T, d *Dev) (<-chan change, func()) {
	t.Helper()
	ch := make(chan change, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Watch(ctx, func(slot int, present bool) { ch <- change{slot, present} }) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(long):
			t.Error("Watch did not return after cancel")
		}
	})
	t.Cleanup(stop)
	return ch, stop
}

func next(t *testing.T, ch <-chan change) change {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(long):
		t.Fatal("no change reported")
		return change{}
	}
}

func none(t *testing.T, ch <-chan change) {
	t.Helper()
	select {
	case c := <-ch:
		t.Fatalf("unexpected change %+v", c)
	case <-time.After(quiet):
	}
}

func TestWatchTakeAndReturn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, d := newSim(t, 3, true, Options{})
		ch, stop := watch(t, d)
		// Let every sensor watcher start waiting.
		require.Eventually(t, func() bool {
			for slot := 1; slot <= 3; slot++ {
				if p, _ := s.SensorPin(slot); p.Waits() == 0 {
					return false
				}
			}
			return true
		}, long, time.Millisecond)

		require.NoError(t, d.Release(2, time.Hour))
		require.NoError(t, s.Take(2))
		require.Equal(t, change{2, false}, next(t, ch))
		require.NoError(t, s.PutBack(2))
		require.Equal(t, change{2, true}, next(t, ch))
		none(t, ch)

		// Bounce: a fob rattling in and out within a few ms is one change.
		require.NoError(t, d.Release(3, time.Hour))
		for range 3 {
			require.NoError(t, s.Take(3))
			time.Sleep(2 * time.Millisecond)
			require.NoError(t, s.PutBack(3))
			time.Sleep(2 * time.Millisecond)
		}
		require.NoError(t, s.Take(3))
		require.Equal(t, change{3, false}, next(t, ch))
		none(t, ch)

		// A blip shorter than the debounce time is no change at all.
		require.NoError(t, s.PutBack(3))
		require.NoError(t, s.Take(3))
		none(t, ch)

		require.ErrorIs(t, d.Watch(context.Background(), func(int, bool) {}), ErrWatching)
		stop()
	})
}

func TestWatchIdleIsEdgeDriven(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, d := newSim(t, 2, true, Options{})
		_, _ = watch(t, d)
		p, err := s.SensorPin(1)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return p.Waits() > 0 }, long, time.Millisecond)
		w0 := p.Waits()
		time.Sleep(400 * time.Millisecond)
		// Bounded waits of 200 ms: a couple per 400 ms, not a busy loop.
		require.LessOrEqual(t, p.Waits()-w0, uint64(4))
	})
}

func TestWatchGPIOTest(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sensor := &gpiotest.Pin{N: "S1", EdgesChan: make(chan gpio.Level)}
		d, err := New([]gpio.PinIO{&gpiotest.Pin{N: "L1"}}, []gpio.PinIO{sensor}, nil, Options{Debounce: 20 * time.Millisecond})
		require.NoError(t, err)
		ch, _ := watch(t, d)
		for _, l := range []gpio.Level{gpio.Low, gpio.High} {
			select {
			case sensor.EdgesChan <- l: // WaitForEdge takes it and sets the level
			case <-time.After(long):
				t.Fatal("Watch is not waiting for an edge")
			}
			require.Equal(t, change{1, l == gpio.Low}, next(t, ch))
		}
	})
}

func ios(pins []*gpiotest.Pin) []gpio.PinIO {
	out := make([]gpio.PinIO, len(pins))
	for i, p := range pins {
		out[i] = p
	}
	return out
}

// TestDeEnergise: every lock goes Low, even past a slot whose pin is
// missing, and the missing one is reported.
func TestDeEnergise(t *testing.T) {
	a, c := &gpiotest.Pin{N: "L1", L: gpio.High}, &gpiotest.Pin{N: "L3", L: gpio.High}
	err := DeEnergise([]gpio.PinIO{a, nil, c})
	require.ErrorContains(t, err, "slot 2 lock: no pin")
	require.Equal(t, gpio.Low, a.Read())
	require.Equal(t, gpio.Low, c.Read())
}

// The automatic relock runs on a timer goroutine of Dev's own: it goes
// through Options.Guard, so that smartboxd's fail-secure handler sees a
// panic there before it ends the process.
func TestRelockRunsUnderGuard(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		guarded := make(chan struct{}, 1)
		s, d := newSim(t, 1, true, Options{Guard: func(f func()) {
			f()
			guarded <- struct{}{}
		}})
		require.NoError(t, d.Release(1, 20*time.Millisecond))
		select {
		case <-guarded:
		case <-time.After(long):
			t.Fatal("the relock did not run under the guard")
		}
		require.False(t, s.Released(1), "relocked inside the guard")
	})
}

// TestWatchTellsOfAMoveBeforeItsBaseline: a caller that read Present (a
// controller starting) before Watch took its baseline is told of a key that
// left in between; a sensor Present was never asked about, or that did not
// move, is not reported.
func TestWatchTellsOfAMoveBeforeItsBaseline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, d := newSim(t, 3, true, Options{})
		for slot := 1; slot <= 2; slot++ {
			present, err := d.Present(slot)
			require.NoError(t, err)
			require.True(t, present)
		}
		require.NoError(t, s.KillSensor(1, true)) // slot 1's wire cut before Watch starts
		ch, _ := watch(t, d)
		require.Equal(t, change{1, false}, next(t, ch))
		none(t, ch)
	})
}
