package sim_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/hal/keypad"
	"github.com/smartbox-oss/smartbox/sim"
)

// startScanner runs the real hal scanner on kp's pins until the test ends.
// Each press is sent on the returned channel; stall, if not zero, is how long
// the press callback then keeps the scanner from scanning (a slow consumer,
// or a starved goroutine).
func startScanner(t *testing.T, kp *sim.Keypad, debounce, stall time.Duration) <-chan rune {
	t.Helper()
	dev, err := keypad.New(kp.Rows(), kp.Cols(), keypad.Options{Debounce: debounce, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	presses := make(chan rune, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dev.Run(ctx, func(r rune) {
			presses <- r
			time.Sleep(stall) // the stall is the point: the scanner is busy
		})
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.Zero(t, kp.Shorts())
	})
	return presses
}

// reported is every press sent so far, without waiting.
func reported(presses <-chan rune) string {
	var got []rune
	for {
		select {
		case r := <-presses:
			got = append(got, r)
		default:
			return string(got)
		}
	}
}

// The tests run in testing/synctest bubbles: holds, stalls and the scanner's
// debounce pass on the bubble's fake clock, so "a plain 5 ms tap is lost" is
// as true on a loaded machine as on an idle one.

// Keys held far shorter than the scanner's debounce, or while the scanner is
// stalled, are lost by plain taps; confirmed taps hold each key until the
// scanner has debounced it, so every key is reported, in order, repeated
// digits as separate presses, and all of them by the time Type returns.
func TestConfirmedTypeReportsEveryKey(t *testing.T) {
	const code = "112233#"
	const hold = 5 * time.Millisecond
	setups := []struct {
		name     string
		debounce time.Duration // the scanner's, as given to keypad.New
		confirm  time.Duration // the same as the scanner uses it
		stall    time.Duration
	}{
		{"scanner debounce 20x the hold", 100 * time.Millisecond, 100 * time.Millisecond, 0},
		{"scanner stalled after each press", 0, keypad.DefaultDebounce, 50 * time.Millisecond},
	}
	for _, s := range setups {
		t.Run(s.name+"/confirmed", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				kp := sim.NewKeypad(nil)
				presses := startScanner(t, kp, s.debounce, s.stall)
				kp.ConfirmScans(s.confirm)
				require.NoError(t, kp.Type(code, hold, hold))
				require.Equal(t, code, reported(presses))
				require.Empty(t, kp.Down())
			})
		})
		t.Run(s.name+"/unconfirmed", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				kp := sim.NewKeypad(nil)
				presses := startScanner(t, kp, s.debounce, s.stall)
				require.NoError(t, kp.Type(code, hold, hold))
				// A confirmed '5' afterwards: once it is reported, the scanner
				// has reported all it ever will of the code.
				kp.ConfirmScans(s.confirm)
				require.NoError(t, kp.Tap('5', hold))
				got := reported(presses)
				require.NotEmpty(t, got)
				require.Equal(t, '5', rune(got[len(got)-1]))
				require.NotEqual(t, code, got[:len(got)-1], "the mode matters: plain taps this short lose keys")
			})
		})
	}
}

// A confirmed tap still holds the key for at least the time it is given.
func TestConfirmedTapHoldsAtLeastHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kp := sim.NewKeypad(nil)
		presses := startScanner(t, kp, time.Millisecond, 0)
		kp.ConfirmScans(time.Millisecond)
		const hold = 80 * time.Millisecond
		start := time.Now()
		require.NoError(t, kp.Tap('8', hold))
		require.GreaterOrEqual(t, time.Since(start), hold)
		require.Equal(t, "8", reported(presses))
	})
}
