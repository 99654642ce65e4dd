package bookings

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTrivialPIN(t *testing.T) {
	for _, tc := range []struct {
		pin     string
		trivial bool
	}{
		{"000000", true}, {"999999", true}, {"123456", true}, {"654321", true}, {"890123", true},
		{"321098", true}, {"121212", true}, {"123123", true}, {"909090", true},
		{"482913", false}, {"120934", false}, {"112233", false}, {"123457", false},
	} {
		t.Run(tc.pin, func(t *testing.T) { require.Equal(t, tc.trivial, TrivialPIN(tc.pin)) })
	}
}

func TestNewPIN(t *testing.T) {
	seen := map[string]bool{}
	counts := [10]int{}
	for range 2000 {
		p, err := NewPIN(nil, PINLength)
		require.NoError(t, err)
		require.Len(t, p, PINLength)
		require.False(t, TrivialPIN(p), p)
		for _, c := range []byte(p) {
			require.True(t, c >= '0' && c <= '9')
			counts[c-'0']++
		}
		seen[p] = true
	}
	require.Greater(t, len(seen), 1950, "PINs should rarely repeat")
	for d, c := range counts {
		require.InDelta(t, 1200, c, 250, "digit %d", d)
	}

	// A source that only yields trivial or rejected bytes gives an error.
	_, err := NewPIN(bytes.NewReader(bytes.Repeat([]byte{1}, 10000)), 6)
	require.Error(t, err)
	_, err = NewPIN(bytes.NewReader(nil), 6)
	require.Error(t, err)
	_, err = NewPIN(nil, 3)
	require.ErrorIs(t, err, ErrInvalid)
	// Bytes >= 250 are skipped, not folded into 0..5.
	p, err := NewPIN(bytes.NewReader([]byte{250, 4, 255, 8, 2, 9, 1, 3}), 6)
	require.NoError(t, err)
	require.Equal(t, "482913", p)
}
