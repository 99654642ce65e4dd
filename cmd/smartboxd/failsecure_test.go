package main

import (
	"bytes"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxhw"
	"github.com/smartbox-oss/smartbox/hal/pins"
	"github.com/smartbox-oss/smartbox/sim"
	"github.com/smartbox-oss/smartbox/store"
)

// energisedSlots are simulated slots whose locks are all energised, as a
// daemon that crashed mid-release would leave them.
func energisedSlots(t *testing.T, n int) *sim.Slots {
	t.Helper()
	sl := sim.NewSlots(n, true)
	for i, p := range sl.LockPins() {
		require.NoError(t, p.Out(gpio.High))
		require.True(t, sl.Released(i+1))
	}
	return sl
}

func requireAllLocked(t *testing.T, sl *sim.Slots) {
	t.Helper()
	for i, p := range sl.LockPins() {
		require.Equal(t, gpio.Low, p.Read(), "slot %d lock pin", i+1)
		require.False(t, sl.Released(i+1), "slot %d", i+1)
	}
}

// TestFailSecureStoreWillNotOpen: a store that will not open (corrupt, held
// by another process, another box's card) ends the daemon with an error and
// every lock de-energised, though the store comes before the slot driver.
func TestFailSecureStoreWillNotOpen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  error
	}{
		{"corrupt", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "box.db"), bytes.Repeat([]byte("not a bbolt file "), 1000), 0o600))
		}, store.ErrCorrupt},
		{"in use", func(t *testing.T, dir string) {
			seedStore(t, dir, "demo-box")
			s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{Logger: testLogger(t)})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
		}, store.ErrInUse},
		{"wrong box", func(t *testing.T, dir string) { seedStore(t, dir, "other-box") }, store.ErrWrongBox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			sl := energisedSlots(t, 12)
			d, err := newDaemon(simConfig(t, dir), daemonOptions{Log: testLogger(t), simSlots: sl})
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, d)
			requireAllLocked(t, sl)
		})
	}
}

// TestFailSecureLocksBeforeOtherPins: on smartbox-v1, a lock found is
// de-energised before a later pin (here a keypad row) is found missing.
func TestFailSecureLocksBeforeOtherPins(t *testing.T) {
	require.NoError(t, pins.Init())
	var locks []*gpiotest.Pin
	var names []string
	for i := range 12 {
		name := "FAILSECURE_LOCK" + string(rune('A'+i))
		if gpioreg.ByName(name) == nil { // registered once per process (-count)
			require.NoError(t, gpioreg.Register(&gpiotest.Pin{N: name}))
		}
		p, ok := gpioreg.ByName(name).(*gpiotest.Pin)
		require.True(t, ok)
		require.NoError(t, p.Out(gpio.High)) // energised, as a crash left it
		locks = append(locks, p)
		names = append(names, p.N)
	}
	cfg, err := boxconfig.LoadConfig("smartboxd.example.toml")
	require.NoError(t, err)
	cfg.Hardware.Slots.Locks = names
	cfg.Hardware.Keypad.Rows = []string{"NO_SUCH_ROW_1", "NO_SUCH_ROW_2", "NO_SUCH_ROW_3", "NO_SUCH_ROW_4"}
	cfg.DataDir = t.TempDir()
	require.NoError(t, cfg.Validate())
	_, err = newDaemon(cfg, daemonOptions{Log: testLogger(t)})
	require.ErrorContains(t, err, `keypad row 1: no GPIO pin named "NO_SUCH_ROW_1"`)
	for i, p := range locks {
		require.Equal(t, gpio.Low, p.Read(), "slot %d lock", i+1)
	}
	_, err = os.Stat(filepath.Join(cfg.DataDir, "box.db"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing past the pins was opened")
}

// TestFailSecureOnPanic: a goroutine of the daemon that panics takes the
// process down with it, but not before every lock is de-energised.
func TestFailSecureOnPanic(t *testing.T) {
	sl := energisedSlots(t, 3)
	d := &daemon{log: testLogger(t), hw: boxhw.LocksOnly(sl.LockPins()...)}
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		d.failSecure(func() { panic("boom") })
	}()
	require.Equal(t, "boom", recovered, "the panic goes on")
	requireAllLocked(t, sl)

	// A body that returns leaves the locks alone.
	sl = energisedSlots(t, 3)
	d = &daemon{log: testLogger(t), hw: boxhw.LocksOnly(sl.LockPins()...)}
	d.failSecure(func() {})
	require.True(t, sl.Released(1))
}
