package sim_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/hal/keypad"
	"github.com/smartbox-oss/smartbox/hal/slots"
	"github.com/smartbox-oss/smartbox/sim"
	"github.com/smartbox-oss/smartbox/store"
)

// A whole box on simulated pins: the real keypad scanner, controller, store
// and lock driver, with only the pins simulated. This is the path a driver's
// '#' takes on a SmartBox, and the benchmark below times it.

type simBox struct {
	keypad *sim.Keypad
	slots  *sim.Slots
	st     *store.Store
	ctrl   *box.Controller
}

// vanFob is the fob on van-1's key ring.
const vanFob = "01000734E0"

func startSimBox(tb testing.TB, cfg box.Config) *simBox {
	tb.Helper()
	st, err := store.Open(filepath.Join(tb.TempDir(), "box.db"), store.Options{BoxID: "sim-box", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(tb, err)
	tb.Cleanup(func() { st.Close() })
	_, err = st.Apply(store.Batch{
		Keys:   []box.Key{{ID: "van-1", FobUID: vanFob, Slot: 1}},
		Grants: []box.GrantPut{{Grant: box.Grant{ID: "b1", Kind: box.KindBooking, KeyIDs: []string{"van-1"}}, Code: "123456"}},
	})
	require.NoError(tb, err)

	kp := sim.NewKeypad(sim.DefaultLayout)
	kp.ConfirmScans(keypad.DefaultDebounce) // the scanner below has the default
	ss := sim.NewSlots(12, true)
	scanner, err := keypad.New(kp.Rows(), kp.Cols(), keypad.Options{})
	require.NoError(tb, err)
	dev, err := slots.New(ss.LockPins(), ss.SensorPins(), ss.LEDPins(), slots.Options{})
	require.NoError(tb, err)
	ctrl, err := box.New(cfg, st, box.Hardware{Locks: dev, Sensors: dev, LEDs: dev}, box.SystemClock{}, nil)
	require.NoError(tb, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	go func() { done <- ctrl.Run(ctx) }()
	go func() { done <- scanner.Run(ctx, ctrl.Press) }()
	go func() { done <- dev.Watch(ctx, ctrl.KeySensed) }()
	tb.Cleanup(func() {
		cancel()
		for range 3 {
			require.NoError(tb, <-done)
		}
		require.NoError(tb, dev.Close())
	})
	ctrl.Flush()
	return &simBox{keypad: kp, slots: ss, st: st, ctrl: ctrl}
}

// waitFor bounds waiting for what must happen on the simulated box. The
// test waits on the slot and the store, not on the clock, and the taps are
// confirmed with the scanner, so the bound only ends a hung test: long,
// because packages run in parallel with -race on two busy cores.
const waitFor = time.Minute

func TestPINOnSimulatedPinsOpensTheSlot(t *testing.T) {
	b := startSimBox(t, box.Config{})
	require.NoError(t, b.keypad.Type("123456#", 40*time.Millisecond, 40*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, b.slots.WaitReleased(ctx, 1))
	require.True(t, b.slots.LED(1))
	require.NoError(t, b.slots.Take(1))
	require.NoError(t, b.slots.WaitLocked(ctx, 1))
	require.Eventually(t, func() bool {
		evs, err := b.st.Events(0, 100)
		require.NoError(t, err)
		for _, e := range evs {
			if e.Type == box.EventKeyTaken && e.KeyID == "van-1" {
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond)
	require.False(t, b.slots.Released(1))
}

// BenchmarkHashToLockOutput times a driver's '#' press, on the pins, to the
// lock output of the slot going high: keypad debounce (20 ms), the scan, the
// code lookup among the box's grants, the commit of the use and its events
// (fsync), and the lock driver. Between presses, untimed, the driver takes
// the key and returns it by fob, as a real one does: a slot released again
// and again with nothing moved rests (box/doc.go, the cool-down) and would
// refuse the third press.
func BenchmarkHashToLockOutput(b *testing.B) {
	sb := startSimBox(b, box.Config{ReleaseTime: 2 * time.Second})
	// A person's key press lasts 100 ms or more; 60 ms keeps the run short
	// and stays well above the 20 ms debounce on a loaded machine.
	const hold = 60 * time.Millisecond
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		require.NoError(b, sb.keypad.Type("123456", hold, hold))
		time.Sleep(hold)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b.StartTimer()
		start := time.Now()
		require.NoError(b, sb.keypad.Press('#'))
		err := sb.slots.WaitReleased(ctx, 1)
		d := time.Since(start)
		b.StopTimer()
		if err != nil {
			evs, _ := sb.st.Events(0, 1000)
			b.Fatalf("slot 1 not released after '#': %v; events: %+v", err, evs)
		}
		worst = max(worst, d)
		require.NoError(b, sb.keypad.Release('#'))
		require.NoError(b, sb.slots.Take(1))
		require.NoError(b, sb.slots.WaitLocked(ctx, 1))
		sb.ctrl.FobScanned(vanFob)
		require.NoError(b, sb.slots.WaitReleased(ctx, 1), "released for the key's return by fob")
		require.NoError(b, sb.slots.PutBack(1))
		require.NoError(b, sb.slots.WaitLocked(ctx, 1))
		cancel()
		b.StartTimer()
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
}
