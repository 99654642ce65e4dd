package box_test

import (
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
