package procstat

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOwnProcess: this test process has used some CPU and holds some
// memory; a pid that is not there is an error, not a zero.
func TestOwnProcess(t *testing.T) {
	// Burn a little CPU so that utime is past 0 even on a fresh process.
	x := 0
	for i := range 50_000_000 {
		x ^= i
	}
	_ = x
	ticks, err := CPUTicks(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, ticks)
	rss, err := RSSKiB(os.Getpid(), os.Getpid())
	require.NoError(t, err)
	one, err := RSSKiB(os.Getpid())
	require.NoError(t, err)
	require.Greater(t, one, 1024, "a Go test process holds over a MiB")
	require.InDelta(t, 2*one, rss, float64(one)/2, "two pids are summed")

	_, err = CPUTicks(1 << 30)
	require.Error(t, err)
	_, err = RSSKiB(1 << 30)
	require.Error(t, err)
}
