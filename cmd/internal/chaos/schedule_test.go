package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestScheduleReplays: the same seed gives the same schedule, another seed
// another, and every kind of fault is in it.
func TestScheduleReplays(t *testing.T) {
	a := Schedule(42, 6, time.Minute)
	require.Equal(t, a, Schedule(42, 6, time.Minute))
	require.NotEqual(t, a, Schedule(43, 6, time.Minute))
	kinds := map[FaultKind]bool{}
	for _, p := range a {
		kinds[p.Kind] = true
		require.Less(t, p.At, time.Minute)
		if p.Box >= 0 {
			require.Less(t, p.Box, 6)
		}
	}
	require.Len(t, kinds, len(AllFaults))
}
