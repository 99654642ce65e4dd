package link

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The wait for an ack doubles with each batch in a row that got none, up to
// the cap, so a box the cloud throttles backs off instead of resending the
// same batch every AckTimeout.
func TestAckWaitBacksOff(t *testing.T) {
	var got []time.Duration
	for n := range 8 {
		got = append(got, AckWait(10*time.Second, 5*time.Minute, n))
	}
	require.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}, got)
	require.Equal(t, 5*time.Minute, AckWait(10*time.Second, 5*time.Minute, 1<<30), "no overflow")
}
