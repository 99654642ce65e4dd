package box

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLockoutGrowth(t *testing.T) {
	cfg, err := Config{}.WithDefaults()
	require.NoError(t, err)
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 0}, {1, 0}, {4, 0},
		{5, 30 * time.Second},
		{6, time.Minute},
		{7, 2 * time.Minute},
		{9, 8 * time.Minute},
		{10, 15 * time.Minute}, // 16m capped
		{50, 15 * time.Minute},
		{1 << 20, 15 * time.Minute}, // no overflow however long the run
	} {
		require.Equal(t, tc.want, cfg.lockoutFor(tc.failures), "failures=%d", tc.failures)
	}
}

func TestConfigDefaultsAndLimits(t *testing.T) {
	cfg, err := Config{ReleaseTime: 20 * time.Second}.WithDefaults()
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, cfg.ReleaseTime, "release time is capped by the hard maximum")
	require.Equal(t, 12, cfg.Slots)
	require.Equal(t, ClockRefuse, cfg.UntrustedClock)

	for name, bad := range map[string]Config{
		"too many slots":      {Slots: 1000},
		"release max too big": {MaxReleaseTime: time.Hour},
		"lockout max < base":  {LockoutBase: time.Hour, LockoutMax: time.Minute},
		"bad clock policy":    {UntrustedClock: "maybe"},
		"entry length":        {MaxEntryLength: 2},
	} {
		_, err := bad.WithDefaults()
		require.Error(t, err, name)
	}
}

func TestGrantUsable(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		g    Grant
		ok   bool
		why  Reason
	}{
		{"no window", Grant{}, true, ""},
		{"starts now", Grant{From: now}, true, ""},
		{"starts in 1ns", Grant{From: now.Add(1)}, false, ReasonNotYetValid},
		{"ends now", Grant{Until: now}, false, ReasonExpired},
		{"ends in 1ns", Grant{Until: now.Add(1)}, true, ""},
		{"uses left", Grant{MaxUses: 2, Uses: 1}, true, ""},
		{"used up", Grant{MaxUses: 2, Uses: 2}, false, ReasonUsedUp},
		{"revoked", Grant{Revoked: true}, false, ReasonRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := tc.g.Usable(now)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.why, why)
		})
	}
}

func TestNormalizeFobUID(t *testing.T) {
	for in, want := range map[string]string{
		"01000734E0":     "01000734E0",
		"01 00 07 34 e0": "01000734E0",
		"01:00:07:34:E0": "01000734E0",
	} {
		got, ok := NormalizeFobUID(in)
		require.True(t, ok, in)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"", "0100073", "01000734E0FF", "0100073XE0"} {
		_, ok := NormalizeFobUID(bad)
		require.False(t, ok, bad)
	}
}

func TestValidate(t *testing.T) {
	require.NoError(t, Key{ID: "k1", FobUID: "01000734E0", Slot: 3}.Validate(12))
	require.ErrorIs(t, Key{ID: "k1", FobUID: "01000734E0", Slot: 13}.Validate(12), ErrInvalidRecord)
	require.ErrorIs(t, Key{ID: "", FobUID: "01000734E0", Slot: 1}.Validate(12), ErrInvalidRecord)
	require.ErrorIs(t, Key{ID: "k", FobUID: "zz", Slot: 1}.Validate(12), ErrInvalidRecord)

	now := time.Now()
	require.NoError(t, Grant{ID: "g", Kind: KindBooking, KeyIDs: []string{"k1"}}.Validate())
	require.ErrorIs(t, Grant{ID: "g", Kind: KindBooking}.Validate(), ErrInvalidRecord)
	require.ErrorIs(t, Grant{ID: "g", Kind: "vip", KeyIDs: []string{"k"}}.Validate(), ErrInvalidRecord)
	require.ErrorIs(t, Grant{ID: "g", Kind: KindDriverCode}.Validate(), ErrInvalidRecord)
	require.ErrorIs(t, Grant{ID: "g", Kind: KindBooking, KeyIDs: []string{"k"}, From: now, Until: now}.Validate(), ErrInvalidRecord)

	require.NoError(t, ValidCode("123456"))
	require.Error(t, ValidCode("123"))
	require.Error(t, ValidCode("12345a"))
	require.Error(t, ValidCode("12345678901234567"))
}
