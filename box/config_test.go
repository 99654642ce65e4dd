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
		{8, 4 * time.Minute},
		{9, 5 * time.Minute}, // 8m capped
		{50, 5 * time.Minute},
		{1 << 20, 5 * time.Minute}, // no overflow however long the run
	} {
		require.Equal(t, tc.want, cfg.lockoutFor(tc.failures), "failures=%d", tc.failures)
	}
}

// TestLockoutBoundsOfTheDefaults pins the figures box/doc.go states.
func TestLockoutBoundsOfTheDefaults(t *testing.T) {
	cfg, err := Config{}.WithDefaults()
	require.NoError(t, err)
	require.Equal(t, 9, cfg.failureCap(), "the wait reaches its 5m cap at the 9th wrong code")
	require.Equal(t, 9, cfg.GreedyGuesses(10*time.Minute))
	require.Equal(t, 8, cfg.GreedyGuesses(3*time.Minute+30*time.Second), "the 8th, which raises keypad_attack, at 3m30s")
	require.Equal(t, 295, cfg.GreedyGuesses(24*time.Hour))
	require.Equal(t, 9+96+288+2, cfg.MaxGuesses(24*time.Hour))
	require.Equal(t, 5*time.Minute, cfg.LockoutMax, "the longest a driver is kept out")
}

func TestCurrentLockout(t *testing.T) {
	cfg, err := Config{}.WithDefaults()
	require.NoError(t, err)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		lo   Lockout
		at   time.Duration // after now
		want Lockout
	}{
		{"nothing to forgive", Lockout{}, time.Hour, Lockout{}},
		{"not a full step", Lockout{Failures: 3, Since: now}, 14 * time.Minute, Lockout{Failures: 3, Since: now}},
		{"one step", Lockout{Failures: 3, Since: now}, 15 * time.Minute, Lockout{Failures: 2, Since: now.Add(15 * time.Minute)}},
		{"two steps and a bit", Lockout{Failures: 3, Since: now}, 31 * time.Minute, Lockout{Failures: 1, Since: now.Add(30 * time.Minute)}},
		{"all forgiven", Lockout{Failures: 3, Since: now, Until: now.Add(time.Minute)}, 45 * time.Minute, Lockout{Until: now.Add(time.Minute)}},
		{"clock went back: nothing forgiven", Lockout{Failures: 3, Since: now.Add(time.Hour)}, 0, Lockout{Failures: 3, Since: now}},
		{"written before decay: counts from now", Lockout{Failures: 3}, 0, Lockout{Failures: 3, Since: now}},
		{"wait clamped to the cap", Lockout{Failures: 9, Since: now, Until: now.Add(365 * 24 * time.Hour)}, 0,
			Lockout{Failures: 9, Since: now, Until: now.Add(5 * time.Minute)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, _ := cfg.currentLockout(tc.lo, now.Add(tc.at), tc.at)
			require.Equal(t, tc.want, lo)
		})
	}
}

// TestCurrentLockoutCreditsOnlyRealTime: the decay credits the lesser of the
// wall clock's and the real time passed (finding 10: a clock stepped forward
// forgave every wrong code).
func TestCurrentLockoutCreditsOnlyRealTime(t *testing.T) {
	cfg, err := Config{}.WithDefaults()
	require.NoError(t, err)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	years := 10 * 365 * 24 * time.Hour
	for _, tc := range []struct {
		name       string
		wall, real time.Duration
		want       Lockout
		served     time.Duration
	}{
		{"wall clock stepped forward", years, 20 * time.Minute,
			Lockout{Failures: 2, Since: now.Add(years - 5*time.Minute)}, 5 * time.Minute},
		{"box was off", 8 * time.Hour, 0, Lockout{Failures: 3, Since: now.Add(8 * time.Hour)}, 0},
		{"wall clock slower than real time", 20 * time.Minute, time.Hour,
			Lockout{Failures: 2, Since: now.Add(15 * time.Minute)}, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, served := cfg.currentLockout(Lockout{Failures: 3, Since: now}, now.Add(tc.wall), tc.real)
			require.Equal(t, tc.want, lo)
			require.Equal(t, tc.served, served)
		})
	}
}

func TestConfigDefaultsAndLimits(t *testing.T) {
	cfg, err := Config{ReleaseTime: 20 * time.Second}.WithDefaults()
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, cfg.ReleaseTime, "release time is capped by the hard maximum")
	require.Equal(t, 12, cfg.Slots)
	require.Equal(t, ClockRefuse, cfg.UntrustedClock)

	// Defaults that depend on the rest: a longer cap decays no faster than
	// it, and the alert threshold stays within what a guesser can reach.
	cfg, err = Config{LockoutMax: 30 * time.Minute}.WithDefaults()
	require.NoError(t, err)
	require.Equal(t, 30*time.Minute, cfg.LockoutDecay)
	cfg, err = Config{LockoutThreshold: 1, LockoutBase: 5 * time.Minute, LockoutMax: 10 * time.Minute}.WithDefaults()
	require.NoError(t, err)
	require.Equal(t, 2, cfg.AttackThreshold, "a guesser gets codes at 0 and 5m, then 15m: 2 within 10m")
	cfg, err = Config{LockoutThreshold: 1 << 30}.WithDefaults() // the bounds are computed, not simulated
	require.NoError(t, err)
	require.Equal(t, 8, cfg.AttackThreshold)

	for name, bad := range map[string]Config{
		"too many slots":            {Slots: 1000},
		"release max too big":       {MaxReleaseTime: time.Hour},
		"lockout max < base":        {LockoutBase: time.Hour, LockoutMax: time.Minute},
		"bad clock policy":          {UntrustedClock: "maybe"},
		"entry length":              {MaxEntryLength: 2},
		"lockout max too big":       {LockoutMax: 48 * time.Hour, LockoutDecay: 48 * time.Hour},
		"decay faster than the cap": {LockoutDecay: time.Minute},
		"alert never reached":       {AttackThreshold: 10}, // a patient guesser types 9 in 10m
		"settle too long":           {ReturnSettle: time.Hour},
		"refusal window":            {RefusalWindow: -time.Second},
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
