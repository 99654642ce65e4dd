package box_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
)

// Tests of the keypad's tarpit, its alert and the merging of refusals. The
// guessers here know the box's state (they read the lockout from the store):
// the strongest guesser there is.

// typing is how long typing a code and # takes at the keypad.
const typing = 2 * time.Second

// waitOut advances the clock to the end of the keypad's wait, if any.
func (r *rig) waitOut() {
	r.t.Helper()
	if until := r.lockout().Until; r.clock.Now().Before(until) {
		r.advance(until.Sub(r.clock.Now()))
	}
}

// guess types the n-th wrong code (6 digits; no test grant has one of them).
func (r *rig) guess(n int) { r.typeKeys(fmt.Sprintf("00%04d#", n)) }

// tally counts the events of type typ and reason, merged ones included.
func tally(evs []box.Event, typ box.EventType, reason box.Reason) int {
	n := 0
	for _, e := range evs {
		switch {
		case e.Type == typ && e.Reason == reason:
			n++
		case e.Type == box.EventRefusalsMerged && e.Detail == string(typ) && e.Reason == reason:
			n += e.Count
		}
	}
	return n
}

func ofType(evs []box.Event, typ box.EventType) []box.Event {
	var out []box.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestLockoutNotResetByAGoodCode: a driver with a working code types
// LockoutThreshold-1 wrong codes, then their own (which opens their key, or
// finds it out), and again, all day, waiting out every wait. The lockout
// still comes, and the wrong codes checked stay within MaxGuesses.
func TestLockoutNotResetByAGoodCode(t *testing.T) {
	for _, keyIn := range []bool{true, false} {
		t.Run(fmt.Sprintf("key in its slot %v", keyIn), func(t *testing.T) {
			dc := box.GrantPut{Grant: box.Grant{ID: "d1", Kind: box.KindDriverCode, DriverRef: "insider", KeyIDs: []string{"k1"}}, Code: "2468"}
			r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{dc}})
			if !keyIn {
				r.sense(1, false) // the insider's key is out with them
			}
			r.newEvents()
			cfg := r.c.Config()
			day := 24 * time.Hour
			end, bound := t0.Add(day), cfg.MaxGuesses(day)
			guesses, opened := 0, 0
			var evs []box.Event
			for r.clock.Now().Before(end) {
				for range cfg.LockoutThreshold - 1 {
					r.waitOut()
					if r.clock.Now().After(end) {
						break
					}
					r.guess(guesses)
					guesses++
					require.LessOrEqual(t, guesses, bound, "wrong codes checked in a day")
					r.advance(typing)
				}
				r.waitOut()
				r.typeKeys("2468#")
				if keyIn {
					require.Equal(t, []int{1}, r.hw.openSlots(), "the insider's own code opens their key")
					r.sense(1, false)
					r.c.FobScanned("0100000001")
					r.c.Flush()
					r.sense(1, true)
					r.advance(cfg.ReturnSettle)
					opened++
				}
				r.advance(typing)
				evs = append(evs, r.newEvents()...)
			}
			r.advance(cfg.RefusalWindow)
			evs = append(evs, r.newEvents()...)
			t.Logf("insider: %d wrong codes checked in %s (bound %d), key released %d times", guesses, day, bound, opened)
			require.NotEmpty(t, ofType(evs, box.EventLockout), "the lockout comes")
			require.Equal(t, guesses, tally(evs, box.EventCodeRefused, box.ReasonUnknownCode), "every wrong code was checked")
			require.Len(t, ofType(evs, box.EventKeyTaken), opened)
			require.Zero(t, tally(evs, box.EventCodeRefused, box.ReasonLockedOut), "the guesser only typed when admitted")
		})
	}
}

// TestTarpitBoundsOverADay: guessers who type the moment a code is admitted,
// or who let every wrong code be forgiven between bursts, get no more wrong
// codes checked in a day than MaxGuesses; the greedy one gets exactly
// GreedyGuesses.
func TestTarpitBoundsOverADay(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name string
		// pause is called after each guess; it may let time pass.
		pause func(r *rig)
	}{
		{"greedy", func(r *rig) {}},
		{"bursts after forgiveness", func(r *rig) {
			if lo := r.lockout(); lo.Failures == 9 { // at the cap: wait until all is forgiven
				r.advance(time.Duration(lo.Failures) * r.c.Config().LockoutDecay)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, box.Config{}, store.Batch{})
			r.newEvents()
			cfg := r.c.Config()
			end := t0.Add(day)
			guesses := 0
			for {
				r.waitOut()
				if r.clock.Now().After(end) {
					break
				}
				r.guess(guesses)
				guesses++
				require.LessOrEqual(t, guesses, cfg.MaxGuesses(day))
				tc.pause(r)
			}
			t.Logf("%s: %d wrong codes checked in %s (bound %d)", tc.name, guesses, day, cfg.MaxGuesses(day))
			if tc.name == "greedy" {
				require.Equal(t, cfg.GreedyGuesses(day), guesses)
			}
		})
	}
}

// TestLegitimateCodeDuringAnAttack: whatever a guesser did before, a driver
// who comes to a free keypad has their code checked within LockoutMax.
func TestLegitimateCodeDuringAnAttack(t *testing.T) {
	batch := store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}}
	driverOpens := func(r *rig) time.Duration {
		r.t.Helper()
		r.typeKeys("123456#")
		evs := r.expect(box.EventCodeRefused)
		require.Equal(t, box.ReasonLockedOut, evs[0].Reason)
		wait := evs[0].Until.Sub(r.clock.Now())
		require.LessOrEqual(t, wait, r.c.Config().LockoutMax, "the stated longest wait")
		r.advance(wait)
		r.typeKeys("123456#")
		require.Equal(t, []int{1}, r.hw.openSlots(), "the driver's code opens after the wait")
		return wait
	}

	t.Run("after an hour of guessing", func(t *testing.T) {
		r := newRig(t, box.Config{}, batch)
		for n := 0; r.clock.Now().Before(t0.Add(time.Hour)); n++ {
			r.waitOut()
			r.guess(n)
		}
		r.newEvents()
		// The driver arrives just after the last guess: the worst moment.
		require.Equal(t, 5*time.Minute, driverOpens(r))
	})
	t.Run("box restarted with its clock set back a year", func(t *testing.T) {
		r := newRig(t, box.Config{BuildTime: t0.Add(-2 * 365 * 24 * time.Hour)}, batch)
		for n := range 9 {
			r.waitOut()
			r.guess(n)
		}
		r.clock.Set(t0.Add(-365 * 24 * time.Hour)) // the persisted wait is now a year away
		r.restart()
		r.newEvents()
		driverOpens(r)
	})
}

// TestKeypadAttackAlert: keypad_attack comes with the AttackThreshold-th
// failed code within AttackWindow, and at most once per window.
func TestKeypadAttackAlert(t *testing.T) {
	t.Run("guesser who waits out every wait", func(t *testing.T) {
		r := newRig(t, box.Config{}, store.Batch{})
		r.newEvents()
		var evs []box.Event
		for n := 0; r.clock.Now().Before(t0.Add(10 * time.Minute)); n++ {
			r.waitOut()
			r.guess(n)
			evs = append(evs, r.newEvents()...)
		}
		alerts := ofType(evs, box.EventKeypadAttack)
		require.Len(t, alerts, 1)
		require.Equal(t, t0.Add(3*time.Minute+30*time.Second), alerts[0].Time, "the 8th wrong code")
		require.Equal(t, 8, alerts[0].Count)
	})
	t.Run("someone hammering the keypad", func(t *testing.T) {
		r := newRig(t, box.Config{}, store.Batch{})
		r.newEvents()
		cfg := r.c.Config()
		typed := 0
		for ; r.clock.Now().Before(t0.Add(35 * time.Minute)); typed++ {
			r.guess(typed)
			r.advance(10 * time.Second)
		}
		evs := r.newEvents()
		alerts := ofType(evs, box.EventKeypadAttack)
		require.Len(t, alerts, 4, "at 1m10s, 11m10s, 21m10s, 31m10s")
		require.Equal(t, t0.Add(70*time.Second), alerts[0].Time, "the 8th failed code, most typed during waits")
		for i := 1; i < len(alerts); i++ {
			require.GreaterOrEqual(t, alerts[i].Time.Sub(alerts[i-1].Time), cfg.AttackWindow, "one alert per window")
		}
		// The outbox stays small: per kind of refusal (unknown code,
		// locked out) one event and one merged per window, plus a lockout
		// event per wrong code checked and the alerts.
		windows := int(35*time.Minute/cfg.RefusalWindow) + 1
		maxEvents := 2*2*windows + cfg.GreedyGuesses(35*time.Minute) + len(alerts)
		require.LessOrEqual(t, len(evs), maxEvents, "%d codes typed", typed)
		t.Logf("%d codes typed in 35m: %d events", typed, len(evs))
	})
}

// TestRefusalsMerged: the first refusal of a kind is recorded, the rest in
// its window become one refusals_merged with their count when it closes, or
// at stop. The lockout is on disk at every wrong code all the same, and
// lockout events are never merged.
func TestRefusalsMerged(t *testing.T) {
	t.Run("unknown fobs", func(t *testing.T) {
		r := newRig(t, box.Config{}, store.Batch{Keys: keys(1)})
		r.newEvents()
		for i := range 100 { // a cloner trying UIDs, one every half second
			r.c.FobScanned(fmt.Sprintf("AB%08X", i))
			r.c.Flush()
			r.advance(500 * time.Millisecond)
		}
		r.expect(box.EventFobUnknown) // the rest counted...
		r.advance(10 * time.Second)   // ...until the window closes
		evs := r.expect(box.EventRefusalsMerged)
		require.Equal(t, 99, evs[0].Count)
		require.Equal(t, string(box.EventFobUnknown), evs[0].Detail)
		require.Equal(t, t0.Add(time.Minute), evs[0].Time)

		// After the window, the next one is recorded in full again.
		r.c.FobScanned("AB000000FF")
		r.c.Flush()
		require.Equal(t, "AB000000FF", r.expect(box.EventFobUnknown)[0].FobUID)
	})
	t.Run("wrong codes", func(t *testing.T) {
		r := newRig(t, box.Config{}, store.Batch{})
		r.newEvents()
		for i := 1; i <= 6; i++ {
			r.waitOut()
			r.guess(i)
			require.Equal(t, i, r.lockout().Failures)
		}
		evs := r.expect(box.EventCodeRefused, box.EventLockout, box.EventLockout)
		require.Equal(t, 1, evs[0].Failures)
		require.Equal(t, 5, evs[1].Failures)
		require.Equal(t, 6, evs[2].Failures)
		r.advance(time.Minute)
		evs = r.expect(box.EventRefusalsMerged)
		require.Equal(t, box.ReasonUnknownCode, evs[0].Reason)
		require.Equal(t, 5, evs[0].Count)
	})
	t.Run("closed at stop", func(t *testing.T) {
		r := newRig(t, box.Config{}, store.Batch{Keys: keys(2)})
		r.newEvents()
		for range 3 {
			r.c.FobScanned("0100000002") // k2's slot still holds a key
		}
		r.c.FobScanned("ABCDEF0123")
		r.c.Flush()
		r.restart()
		evs := r.expect(box.EventReturnRefused, box.EventFobUnknown, box.EventRefusalsMerged, box.EventBoxStopped, box.EventBoxStarted)
		require.Equal(t, 2, evs[2].Count)
		require.Equal(t, box.ReasonSlotOccupied, evs[2].Reason)
		require.Equal(t, 2, evs[2].Slot)
		require.Equal(t, "k2", evs[2].KeyID)
	})
}

// TestLockoutAdvancesWhenTheStoreFails: while the SD card refuses writes,
// wrong codes still lock the keypad out; once it recovers, the lockout on
// disk is the one in memory, without another code being typed.
func TestLockoutAdvancesWhenTheStoreFails(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
	r.newEvents()
	r.flaky.failing.Store(true)
	for n := range 5 {
		r.guess(n)
	}
	r.flaky.failing.Store(false)
	require.Equal(t, box.Lockout{}, r.lockout(), "nothing written yet")

	r.advance(5 * time.Second) // the retry
	want := box.Lockout{Failures: 5, Since: t0, Until: t0.Add(30 * time.Second), Spent: 5, Refilled: t0}
	require.Equal(t, want, r.lockout())

	r.typeKeys("123456#")
	require.Equal(t, box.ReasonLockedOut, r.expect(box.EventCodeRefused)[0].Reason, "memory locked out all along")
	require.Empty(t, r.hw.openSlots())

	// A write that fails is carried by the next commit that works.
	r.advance(25 * time.Second)
	r.flaky.failing.Store(true)
	r.guess(6)
	r.flaky.failing.Store(false)
	r.c.FobScanned("ABCDEF0123")
	r.c.Flush()
	want = box.Lockout{Failures: 6, Since: t0, Until: r.clock.Now().Add(time.Minute), Spent: 6, Refilled: t0}
	require.Equal(t, want, r.lockout())
	r.restart()
	// The count and the wait survive; the decay counts again from the
	// start (the time a box is off is not known to have passed).
	want.Since = r.clock.Now()
	require.Equal(t, want, r.lockout())
	r.newEvents()
	r.typeKeys("123456#")
	require.Equal(t, box.ReasonLockedOut, r.expect(box.EventCodeRefused)[0].Reason, "after stop, start: still locked out")
}

// underTheThreshold waits, a second at a time, until a code typed now would
// not make AttackThreshold within AttackWindow, given the times of the codes
// typed before; it returns them with now, the next code's time.
func (r *rig) underTheThreshold(times []time.Time) []time.Time {
	cfg := r.c.Config()
	for k := cfg.AttackThreshold - 1; len(times) >= k && r.clock.Now().Sub(times[len(times)-k]) <= cfg.AttackWindow; {
		r.advance(time.Second)
	}
	return append(times, r.clock.Now())
}

// guessUntil has a guesser type wrong codes until end, each once the keypad's
// wait is over and pace (which may let more time pass) has returned. It
// returns how many were typed and the events, merged refusals closed.
func (r *rig) guessUntil(end time.Time, pace func()) (int, []box.Event) {
	guesses := 0
	for {
		r.waitOut()
		pace()
		if r.clock.Now().After(end) {
			break
		}
		r.guess(guesses)
		guesses++
	}
	r.advance(r.c.Config().RefusalWindow)
	return guesses, r.newEvents()
}

// TestKeypadAttackAlertOverADay: a guesser is reported to the cloud within
// minutes and again about every hour while they keep going, whether they
// type each code the moment it is admitted (greedy) or keep under the
// window's threshold (patient: never AttackThreshold codes within
// AttackWindow, which alone was never reported; review finding 1). The
// times are the ones doc.go states.
func TestKeypadAttackAlertOverADay(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name  string
		first time.Duration // when the first alert comes
		count int           // and how many in the day
	}{
		{"greedy", 3*time.Minute + 30*time.Second, 24},
		{"patient", 14*time.Minute + time.Second, 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, box.Config{}, store.Batch{Keys: keys(1)})
			r.newEvents()
			cfg := r.c.Config()
			var times []time.Time
			_, evs := r.guessUntil(t0.Add(day), func() {
				if tc.name == "patient" {
					times = r.underTheThreshold(times)
				}
			})
			alerts := ofType(evs, box.EventKeypadAttack)
			require.NotEmpty(t, alerts, "a day of guessing at the %s pace", tc.name)
			t.Logf("%s: %d wrong codes checked in %s; %d alerts, first at %s", tc.name,
				tally(evs, box.EventCodeRefused, box.ReasonUnknownCode), day, len(alerts), alerts[0].Time.Sub(t0))
			require.Equal(t, tc.first, alerts[0].Time.Sub(t0))
			require.Len(t, alerts, tc.count)
			for i := 1; i < len(alerts); i++ {
				gap := alerts[i].Time.Sub(alerts[i-1].Time)
				require.GreaterOrEqual(t, gap, cfg.AttackWindow, "at most one alert per window")
				require.LessOrEqual(t, gap, cfg.AttackRepeat+cfg.LockoutMax, "told again within the hour and a wait")
			}
			last := alerts[len(alerts)-1]
			require.Positive(t, last.Count, "failed codes since the alert before")
			require.Equal(t, 9, last.Failures, "at the cap")
		})
	}
}

// TestDecayCreditsOnlyRealTime: a wall clock stepped forward (a box that
// booted in 1970, then NTP; or an RTC set wrong) forgives no wrong code; only
// time that really passes does (review finding 10).
func TestDecayCreditsOnlyRealTime(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{})
	cfg := r.c.Config()
	for n := range 5 {
		r.guess(n)
	}
	require.Equal(t, 5, r.lockout().Failures)
	r.clock.Jump(t0.Add(10 * 365 * 24 * time.Hour))
	r.advance(cfg.LockoutBase) // the wait, really served
	r.guess(5)
	require.Equal(t, 6, r.lockout().Failures, "a step of the wall clock forgives nothing")

	r.advance(cfg.LockoutDecay) // real time passing forgives as ever
	r.guess(6)
	require.Equal(t, 6, r.lockout().Failures, "one forgiven, one more wrong")
}

// TestKeypadAttackAlertLimit is doc.go's stated limit of the alert: a guesser
// who never lets the count of wrong codes reach its cap (one wrong code per
// decay step, after the first 8, and never AttackThreshold within
// AttackWindow) is never reported, and gets no more than 8 + 1440/15 + 1 = 105
// wrong codes checked in a day.
func TestKeypadAttackAlertLimit(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{})
	r.newEvents()
	cfg := r.c.Config()
	var times []time.Time
	guesses, evs := r.guessUntil(t0.Add(24*time.Hour), func() {
		if lo := r.lockout(); lo.Failures >= 8 { // one more would reach the cap: wait for the decay
			r.advance(lo.Since.Add(cfg.LockoutDecay).Sub(r.clock.Now()))
		}
		times = r.underTheThreshold(times)
	})
	t.Logf("below the cap: %d wrong codes checked in a day, %d alerts", guesses, len(ofType(evs, box.EventKeypadAttack)))
	require.Empty(t, ofType(evs, box.EventKeypadAttack))
	require.LessOrEqual(t, guesses, 105)
	require.Equal(t, guesses, tally(evs, box.EventCodeRefused, box.ReasonUnknownCode))
}
