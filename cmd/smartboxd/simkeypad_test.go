package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The sim profile's keypad confirms every tap with the scanner, using the
// debounce the scanner really gets (the config's, default filled in), so
// the console's type command and the daemon tests cannot lose a digit to a
// late scanner.
func TestDaemonSimKeypadConfirmsTaps(t *testing.T) {
	cfg := simConfig(t, t.TempDir())
	d, err := newDaemon(cfg, daemonOptions{Log: testLogger(t)})
	require.NoError(t, err)
	defer d.close()
	require.NotZero(t, cfg.Hardware.Keypad.Debounce.Duration)
	require.Equal(t, cfg.Hardware.Keypad.Debounce.Duration, d.sim.keypad.ConfirmDebounce())
}
