package box

import (
	"fmt"
	"math"
	"time"
)

// lockoutRetry is how soon a lockout the store failed to write is written
// again when nothing else commits first: soon, so that a power cut rarely
// loses it, and no sooner, so that a failing SD card is not hammered.
const lockoutRetry = 5 * time.Second

// currentLockout is lo as of now, when real time has passed since lo.Since
// was last set (in this process; see Controller.lockoutNow): the wrong codes
// forgiven by the time passed, and a wait never longer than LockoutMax from
// now (a clock set back, or an RTC that booted in 1970, must not wall the
// keypad for years). The time passed is the lesser of what the wall clock
// says (now - Since) and real: a wall clock stepped forward forgives nothing.
// served is the part of the current decay step already passed: the caller's
// mark of real time is now's minus served.
func (c Config) currentLockout(lo Lockout, now time.Time, real time.Duration) (_ Lockout, served time.Duration) {
	lo.Failures, lo.Since, served = countDown(lo.Failures, lo.Since, c.LockoutDecay, now, real)
	if limit := now.Add(c.LockoutMax); lo.Until.After(limit) {
		lo.Until = limit
	}
	return lo, served
}

// currentBudget is lo's guess budget as of now, when real time has passed
// since lo.Refilled was last set (in this process, or credited for the time
// the box was off; see Controller.lockoutNow): one spent wrong code given
// back per LockoutRefill of time really passed, the lesser of the wall
// clock's and real. A clock set back credits nothing yet and counts again
// from now, so a closure never lasts more than LockoutRefill from now.
// served is the part of the current refill already passed.
func (c Config) currentBudget(lo Lockout, now time.Time, real time.Duration) (_ Lockout, served time.Duration) {
	lo.Spent, lo.Refilled, served = countDown(lo.Spent, lo.Refilled, c.LockoutRefill, now, real)
	return lo, served
}

// countDown is the one rule of both of the keypad's slow buckets (the
// tarpit's decay and the budget's refill): n goes down by one per step of
// time passed since mark, the time passed being the lesser of what the wall
// clock says (now - mark) and real; at zero the mark is cleared. served is
// the part of the current step already passed: the caller's mark of real
// time is now's minus served.
func countDown(n int, mark time.Time, step time.Duration, now time.Time, real time.Duration) (int, time.Time, time.Duration) {
	if n <= 0 {
		return 0, time.Time{}, 0
	}
	if mark.IsZero() || now.Before(mark) {
		// No start to count from (a state written before this count
		// existed), or the clock went back: credit nothing yet.
		mark = now
	}
	wall := now.Sub(mark)
	passed := max(min(wall, real), 0)
	steps := passed / step
	served := passed - steps*step
	switch {
	case int64(steps) >= int64(n):
		return 0, time.Time{}, 0
	case passed == wall:
		return n - int(steps), mark.Add(steps * step), served
	default:
		// The wall clock says more time passed than did (it was stepped
		// forward, or the box was off): count from now, less what was
		// really served of the current step.
		return n - int(steps), now.Add(-served), served
	}
}

// lockoutNow brings the controller's lockout up to now. A change the store
// should know of (a clamped wait, a refill) goes with the next commit.
//
// The decay credits at most the real time passed since decayMark, the
// Uptime at which lo.Since was last set in this process (at Run: the time a
// box is off is not known, and forgives nothing; a power cycle must not
// forgive a guesser's codes either). The refill likewise since refillMark,
// which Run may set back by the time the box was off (offCredit).
func (c *Controller) lockoutNow(now time.Time) Lockout {
	up, mono := c.uptime()
	decayReal, refillReal := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64) // a Clock without Uptime is taken at its word
	if mono {
		decayReal, refillReal = up-c.decayMark, up-c.refillMark
	}
	lo, decayServed := c.cfg.currentLockout(c.lockout, now, decayReal)
	lo, refillServed := c.cfg.currentBudget(lo, now, refillReal)
	if mono {
		c.decayMark, c.refillMark = up-decayServed, up-refillServed
	}
	c.refillServed = refillServed
	if lo != c.lockout {
		c.lockout, c.lockoutPending = lo, true
	}
	return lo
}

// uptime is the clock's Uptime, if it has one (see Uptimer).
func (c *Controller) uptime() (time.Duration, bool) {
	u, ok := c.clock.(Uptimer)
	if !ok {
		return 0, false
	}
	return u.Uptime(), true
}

// markDecay starts the counts of real time passed for the decay and the
// refill (at Run). The decay counts from now: the time a box was off is not
// known to have passed. The refill is credited offCredit: without it a box
// that reboots more often than every LockoutRefill would never refill, and
// a closed keypad would stay closed longer than stated.
func (c *Controller) markDecay(now time.Time) {
	up, _ := c.uptime()
	c.decayMark = up
	c.refillMark = up - c.offCredit(now)
}

// offCredit is the time the box was off that the refill believes: the wall
// clock's time since the refill mark, only when the clock is trusted (an
// RTC that booted in 1970 says nothing), and never more than one refill
// (LockoutRefill), the most a closure needs to end. Limit: someone who can
// both power-cycle the box and step its trusted clock forward gains one
// refill per power cycle.
func (c *Controller) offCredit(now time.Time) time.Duration {
	lo := c.lockout
	if lo.Spent <= 0 || lo.Refilled.IsZero() || now.Before(lo.Refilled) || !c.trusted(now) || c.cfg.BuildTime.IsZero() {
		return 0
	}
	return min(now.Sub(lo.Refilled), c.cfg.LockoutRefill)
}

// closedUntil is when a keypad whose budget is spent at now checks a code
// again: the rest of the current refill (c.refillServed is what lockoutNow
// found served of it), never more than LockoutRefill from now.
func (c *Controller) closedUntil(now time.Time) time.Time {
	return now.Add(c.cfg.LockoutRefill - min(max(c.refillServed, 0), c.cfg.LockoutRefill))
}

// fail records a wrong code: the count goes up, and from the threshold on
// the keypad waits before it checks the next code.
func (c *Controller) fail(now time.Time, r Reason) {
	lo := c.lockoutNow(now)
	if lo.Failures == 0 {
		lo.Since = now
	}
	lo.Failures = min(lo.Failures+1, c.cfg.failureCap())
	if lo.Spent == 0 {
		lo.Refilled = now // lockoutNow set refillMark to now's Uptime
	}
	lo.Spent = min(lo.Spent+1, c.cfg.LockoutBudget)
	evs := c.refused(now, Event{Type: EventCodeRefused, Reason: r, Failures: lo.Failures})
	if d := c.cfg.lockoutFor(lo.Failures); d > 0 {
		lo.Until = now.Add(d)
		evs = append(evs, c.event(now, Event{Type: EventLockout, Until: lo.Until, Failures: lo.Failures,
			Detail: fmt.Sprintf("next code checked in %s", d)}))
		c.log.Warn("keypad locked out", "failures", lo.Failures, "for", d)
	}
	// Memory first, whatever the disk does: a failing SD card must not
	// give a guesser free codes. The commit carries it, or a retry does.
	if lo.Spent >= c.cfg.LockoutBudget {
		// The budget is spent: no code is checked until a refill. The
		// admin is told at once (the link sends it as it does
		// keypad_attack) so drivers can be let in remotely meanwhile.
		until := c.closedUntil(now)
		evs = append(evs, c.event(now, Event{Type: EventKeypadClosed, Until: until, Failures: lo.Failures,
			Count: lo.Spent, Detail: fmt.Sprintf("%d wrong codes spent the keypad's budget: no code is checked until %s",
				lo.Spent, until.UTC().Format(time.RFC3339))}))
		c.log.Warn("keypad closed: guess budget spent", "spent", lo.Spent, "until", until)
	}
	c.lockout, c.lockoutPending = lo, true
	evs = append(evs, c.attempted(now, lo.Failures == c.cfg.failureCap())...)
	c.commit(Change{Events: evs})
}

// attempted counts a failed code (a wrong one, or any typed during a wait)
// towards the keypad_attack alert, and returns the alert when it is due:
//   - AttackThreshold failed codes within AttackWindow, at most one alert per
//     window (someone typing fast: a greedy guesser, or a hammering hand);
//   - or a wrong code that leaves the count at its cap (atCap): wrong codes
//     have come faster than the decay forgives them, however slowly, so a
//     patient guesser is reported too; at most one alert per AttackRepeat,
//     so a guesser who keeps going is reported again every hour or so.
func (c *Controller) attempted(now time.Time, atCap bool) []Event {
	c.attempts = append(c.attempts, now)
	c.sinceAlert++
	if len(c.attempts) > c.cfg.AttackThreshold {
		c.attempts = c.attempts[len(c.attempts)-c.cfg.AttackThreshold:]
	}
	var ev Event
	switch {
	case len(c.attempts) == c.cfg.AttackThreshold && now.Sub(c.attempts[0]) <= c.cfg.AttackWindow &&
		!c.alertedWithin(now, c.cfg.AttackWindow):
		ev = Event{Count: len(c.attempts), Detail: fmt.Sprintf("%d failed codes within %s", len(c.attempts), c.cfg.AttackWindow)}
	case atCap && !c.alertedWithin(now, c.cfg.AttackRepeat):
		ev = Event{Count: c.sinceAlert, Detail: fmt.Sprintf(
			"wrong codes at the keypad's cap (%d not forgiven): more than one per %s; %d failed codes since the last alert",
			c.lockout.Failures, c.cfg.LockoutDecay, c.sinceAlert)}
	default:
		return nil
	}
	c.lastAttack, c.sinceAlert = now, 0
	c.log.Warn("keypad attack", "detail", ev.Detail)
	ev.Type, ev.Failures, ev.Until = EventKeypadAttack, c.lockout.Failures, c.lockout.Until
	return []Event{c.event(now, ev)}
}

// alertedWithin reports whether keypad_attack was raised less than d ago (a
// clock gone back since then counts as not).
func (c *Controller) alertedWithin(now time.Time, d time.Duration) bool {
	return !c.lastAttack.IsZero() && !now.Before(c.lastAttack) && now.Sub(c.lastAttack) < d
}

// withLockout adds the lockout to ch when the store is behind memory.
func (c *Controller) withLockout(ch Change) Change {
	if c.lockoutPending {
		lo := c.lockout
		ch.Lockout = &lo
	}
	return ch
}

// committed notes the outcome of a commit made with withLockout: the
// lockout is on disk, or is written again soon.
func (c *Controller) committed(ch Change, err error) {
	if ch.Lockout == nil {
		return
	}
	if err == nil {
		if *ch.Lockout == c.lockout {
			c.lockoutPending = false
		}
		return
	}
	if c.lockoutTimer == nil {
		c.lockoutTimer = c.clock.AfterFunc(lockoutRetry, func() {
			c.post(func() {
				c.lockoutTimer = nil
				if c.lockoutPending {
					c.commit(Change{})
				}
			})
		})
	}
}
