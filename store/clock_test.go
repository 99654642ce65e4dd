package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestClockFloor: the floor only rises, and survives a restart.
func TestClockFloor(t *testing.T) {
	s, clock := newStore(t)
	f, err := s.ClockFloor()
	require.NoError(t, err)
	require.True(t, f.IsZero(), "nothing remembered yet")

	nov := time.Date(2026, 11, 20, 8, 0, 0, 0, time.FixedZone("CET", 3600))
	f, err = s.RaiseClockFloor(nov)
	require.NoError(t, err)
	require.True(t, f.Equal(nov))
	f, err = s.RaiseClockFloor(nov.Add(-time.Hour))
	require.NoError(t, err)
	require.True(t, f.Equal(nov), "never lowered")

	s = reopen(t, s, clock)
	f, err = s.ClockFloor()
	require.NoError(t, err)
	require.True(t, f.Equal(nov), "kept across a restart: %v", f)
	f, err = s.RaiseClockFloor(nov.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, f.Equal(nov.Add(time.Minute)))
}
