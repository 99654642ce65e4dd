package box_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
)

// tarpitOnly is a guess budget no day of tarpit guessing spends
// (MaxGuesses(24h) is 395): the tests of the tarpit alone run with it.
const tarpitOnly = 1 << 20

// waitBudget advances the clock to the end of a closure, if the budget is
// spent (the guesser reads the store: the strongest guesser there is).
func (r *rig) waitBudget() {
	r.t.Helper()
	cfg := r.c.Config()
	if lo := r.lockout(); lo.Spent >= cfg.LockoutBudget {
		if end := lo.Refilled.Add(cfg.LockoutRefill); r.clock.Now().Before(end) {
			r.advance(end.Sub(r.clock.Now()))
		}
	}
}

// TestBudgetBoundsGreedyGuessing: a guesser who types each wrong code the
// moment the keypad admits it gets exactly GuessBound checked in a day and
// in a year, and never more than it at any point.
func TestBudgetBoundsGreedyGuessing(t *testing.T) {
	for _, span := range []time.Duration{24 * time.Hour, 365 * 24 * time.Hour} {
		t.Run(span.String(), func(t *testing.T) {
			r := newRig(t, box.Config{LockoutBudget: box.DefaultLockoutBudget}, store.Batch{})
			r.newEvents()
			cfg := r.c.Config()
			end := t0.Add(span)
			guesses := 0
			for {
				r.waitBudget()
				r.waitOut()
				if r.clock.Now().After(end) {
					break
				}
				r.guess(guesses)
				guesses++
				require.LessOrEqual(t, guesses, cfg.GuessBound(r.clock.Now().Sub(t0)), "wrong codes checked so far")
			}
			r.advance(cfg.RefusalWindow)
			evs := r.newEvents()
			t.Logf("greedy: %d wrong codes checked in %s (bound %d, chance with 50 6-digit codes %.3f%%)",
				guesses, span, cfg.GuessBound(span), 100*cfg.GuessChance(span, 50, 6))
			require.Equal(t, cfg.GuessBound(span), guesses)
			require.Equal(t, guesses, tally(evs, box.EventCodeRefused, box.ReasonUnknownCode), "every one checked")
			require.NotEmpty(t, ofType(evs, box.EventKeypadClosed))
		})
	}
}

// TestClosureEndsAsStated: with the budget spent, a driver's good code is
// refused unchecked (and spends nothing) until at most LockoutRefill after
// the last spend, and opens then; a restart neither forgives nor extends it.
func TestClosureEndsAsStated(t *testing.T) {
	batch := store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}}
	for _, restart := range []bool{false, true} {
		r := newRig(t, box.Config{LockoutBudget: box.DefaultLockoutBudget}, batch)
		cfg := r.c.Config()
		for n := range cfg.LockoutBudget {
			r.waitOut()
			r.guess(n)
		}
		last := r.clock.Now()
		closed := ofType(r.newEvents(), box.EventKeypadClosed)
		require.Len(t, closed, 1)
		require.False(t, closed[0].Until.After(last.Add(cfg.LockoutRefill)), "closure at most LockoutRefill after the spend")
		r.advance(time.Hour)
		if restart {
			r.restart()
			r.newEvents()
		}
		r.typeKeys("123456#")
		evs := r.newEvents()
		require.Equal(t, box.ReasonKeypadClosed, evs[0].Reason, "the good code is not checked")
		require.Equal(t, closed[0].Until, evs[0].Until)
		require.Empty(t, r.hw.openSlots())
		r.advance(closed[0].Until.Sub(r.clock.Now()))
		r.typeKeys("123456#")
		require.Equal(t, []int{1}, r.hw.openSlots(), "restart %v: the good code opens when the closure ends", restart)
	}
}

// TestRestoreKeypad: restore_keypad's controller side gives the whole
// budget back at once, audited, and keeps the tarpit's count.
func TestRestoreKeypad(t *testing.T) {
	batch := store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}}
	r := newRig(t, box.Config{LockoutBudget: box.DefaultLockoutBudget}, batch)
	cfg := r.c.Config()
	for n := range cfg.LockoutBudget {
		r.waitOut()
		r.guess(n)
	}
	r.newEvents()
	require.NoError(t, r.c.RestoreKeypad("admin@example.com", "guesser caught", "cmd1"))
	evs := r.expect(box.EventKeypadRestored)
	require.Equal(t, cfg.LockoutBudget, evs[0].Count)
	require.Contains(t, evs[0].Detail, "admin@example.com")
	lo := r.lockout()
	require.Zero(t, lo.Spent)
	require.Equal(t, 9, lo.Failures, "the tarpit's count is kept")
	r.waitOut()
	r.typeKeys("123456#")
	require.Equal(t, []int{1}, r.hw.openSlots())
}

// codeOpens types code and reports whether a slot was released for it.
func (r *rig) codeOpens(code string) bool {
	r.t.Helper()
	r.hw.mu.Lock()
	before := len(r.hw.releases)
	r.hw.mu.Unlock()
	r.typeKeys(code + "#")
	r.hw.mu.Lock()
	defer r.hw.mu.Unlock()
	return len(r.hw.releases) > before
}

// spendBudget types wrong codes, each the moment the tarpit admits it,
// until the budget is spent, and returns the keypad_closed event.
func (r *rig) spendBudget() box.Event {
	r.t.Helper()
	for n := 0; r.lockout().Spent < r.c.Config().LockoutBudget; n++ {
		r.waitOut()
		r.guess(n)
	}
	closed := ofType(r.newEvents(), box.EventKeypadClosed)
	require.Len(r.t, closed, 1)
	return closed[0]
}

// TestPatientGuesserWithinBudget: a guesser who types one wrong code per
// pace for a year, as slow as the refill or faster, gets no more
// checked at any point than GuessBound of the time since the first; at one
// per refill the keypad never closes and every code is checked.
func TestPatientGuesserWithinBudget(t *testing.T) {
	year := 365 * 24 * time.Hour
	for _, div := range []int{1, 3} {
		t.Run(fmt.Sprintf("refill/%d", div), func(t *testing.T) {
			r := newRig(t, box.Config{LockoutBudget: box.DefaultLockoutBudget}, store.Batch{})
			r.newEvents()
			cfg := r.c.Config()
			pace := cfg.LockoutRefill / time.Duration(div)
			typed, checked, closed := 0, 0, 0
			for r.clock.Now().Sub(t0) <= year {
				r.guess(typed)
				typed++
				evs := r.newEvents()
				checked += tally(evs, box.EventCodeRefused, box.ReasonUnknownCode)
				closed += len(ofType(evs, box.EventKeypadClosed))
				require.LessOrEqual(t, checked, cfg.GuessBound(r.clock.Now().Sub(t0)), "at %s", r.clock.Now().Sub(t0))
				r.advance(pace)
			}
			t.Logf("one code per %s for a year: %d typed, %d checked (bound %d), %d closures", pace, typed, checked,
				cfg.GuessBound(year), closed)
			if div == 1 {
				require.Equal(t, typed, checked, "one per refill is what the budget gives back: every code checked")
				require.Zero(t, closed)
				return
			}
			// Faster than the refill: the budget, then one per refill.
			require.Equal(t, cfg.BudgetGuesses(year), checked)
			require.Positive(t, closed)
		})
	}
}

// TestBudgetClockSteps: a wall clock stepped forward ends no closure (only
// time really passed refills), and one set back does not make a closure
// last more than LockoutRefill from the step.
func TestBudgetClockSteps(t *testing.T) {
	batch := store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}}
	for _, step := range []time.Duration{10 * 365 * 24 * time.Hour, -365 * 24 * time.Hour} {
		t.Run(fmt.Sprintf("step %s", step), func(t *testing.T) {
			r := newRig(t, box.Config{LockoutBudget: box.DefaultLockoutBudget}, batch)
			cfg := r.c.Config()
			closed := r.spendBudget()
			r.advance(cfg.LockoutRefill / 2)
			r.clock.Jump(r.clock.Now().Add(step))
			stepped := r.clock.Now()
			require.False(t, r.codeOpens("123456"), "still closed right after the step")
			evs := r.newEvents()
			require.Equal(t, box.ReasonKeypadClosed, evs[0].Reason)
			require.False(t, evs[0].Until.After(stepped.Add(cfg.LockoutRefill)), "never more than LockoutRefill from now")
			if step > 0 {
				// Forward: the time really served still counts, the
				// step nothing: the end moves with the clock.
				require.Equal(t, closed.Until.Add(step), evs[0].Until)
			}
			r.advance(evs[0].Until.Sub(r.clock.Now()) - time.Minute)
			require.False(t, r.codeOpens("123456"), "closed until the stated end")
			r.advance(time.Minute)
			r.waitOut()
			require.True(t, r.codeOpens("123456"), "open at the stated end")
		})
	}
}

// TestBudgetAcrossRestart: a box switched off while its keypad is closed
// has the time off credited only on a trusted clock. Trusted, the closure
// ends when it said it would (or at boot, if that is past); an RTC that
// lost its time (booted in 1970, then NTP) counts the closure from boot,
// at most LockoutRefill of running.
func TestBudgetAcrossRestart(t *testing.T) {
	batch := store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}}
	for _, tc := range []struct {
		name    string
		off     time.Duration
		trusted bool
	}{
		{"trusted, off 10h", 10 * time.Hour, true},
		{"trusted, off longer than a refill", 100 * time.Hour, true},
		{"untrusted, off 10h", 10 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, box.Config{LockoutBudget: box.DefaultLockoutBudget}, batch)
			cfg := r.c.Config()
			closed := r.spendBudget()
			r.shutdown()
			r.clock.Advance(tc.off) // no controller runs meanwhile
			offAt := r.clock.Now()
			if !tc.trusted {
				r.clock.Jump(time.Unix(0, 0).UTC())
			}
			st, err := store.Open(r.path, store.Options{BoxID: "box-1", Now: r.clock.Now})
			require.NoError(t, err)
			r.st = st
			r.start()
			boot := r.clock.Uptime()
			r.newEvents()
			if !tc.trusted {
				r.advance(time.Hour)
				r.clock.Jump(offAt.Add(time.Hour)) // NTP
			}
			var until time.Time
			switch {
			case tc.trusted && tc.off >= cfg.LockoutRefill:
				r.waitOut()
				require.True(t, r.codeOpens("123456"), "the time off ended the closure")
				return
			case tc.trusted:
				require.False(t, r.codeOpens("123456"))
				evs := r.newEvents()
				require.Equal(t, box.ReasonKeypadClosed, evs[0].Reason)
				require.Equal(t, closed.Until, evs[0].Until, "the time off credited: the closure ends as stated")
				until = evs[0].Until
			default:
				require.False(t, r.codeOpens("123456"))
				evs := r.newEvents()
				require.Equal(t, box.ReasonKeypadClosed, evs[0].Reason)
				require.True(t, evs[0].Until.After(closed.Until), "the time off is not believed")
				require.Equal(t, cfg.LockoutRefill, evs[0].Until.Sub(r.clock.Now())+(r.clock.Uptime()-boot),
					"LockoutRefill of running from boot")
				until = evs[0].Until
			}
			r.advance(until.Sub(r.clock.Now()) - time.Minute)
			require.False(t, r.codeOpens("123456"))
			r.newEvents()
			r.advance(time.Minute)
			r.waitOut()
			require.True(t, r.codeOpens("123456"), "open at the stated end")
		})
	}
}
