package box

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDoubling(t *testing.T) {
	huge := time.Duration(math.MaxInt64)
	for _, tc := range []struct {
		base, limit time.Duration
		n           int
		want        time.Duration
	}{
		{time.Second, time.Minute, -1, time.Second},
		{time.Second, time.Minute, 0, time.Second},
		{time.Second, time.Minute, 1, 2 * time.Second},
		{time.Second, time.Minute, 5, 32 * time.Second},
		{time.Second, time.Minute, 6, time.Minute},
		{time.Second, time.Minute, math.MaxInt, time.Minute},
		{time.Hour, time.Minute, 0, time.Minute}, // base above the cap
		{time.Second, huge, 200, huge},           // never overflows
		{0, time.Minute, 10, 0},
	} {
		require.Equal(t, tc.want, Doubling(tc.base, tc.limit, tc.n), "%v %v %d", tc.base, tc.limit, tc.n)
	}
}
