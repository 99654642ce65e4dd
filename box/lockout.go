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
	if lo.Failures <= 0 {
		lo.Failures, lo.Since = 0, time.Time{}
	} else {
		if lo.Since.IsZero() || now.Before(lo.Since) {
			// No start to count from (a state written before decay
			// existed), or the clock went back: credit nothing yet.
			lo.Since = now
		}
		wall := now.Sub(lo.Since)
		passed := max(min(wall, real), 0)
		n := passed / c.LockoutDecay
		served = passed - n*c.LockoutDecay
		switch {
		case int64(n) >= int64(lo.Failures):
			lo.Failures, lo.Since, served = 0, time.Time{}, 0
		case passed == wall:
			lo.Failures -= int(n)
			lo.Since = lo.Since.Add(n * c.LockoutDecay)
		default:
			// The wall clock says more time passed than did (it was
			// stepped forward, or the box was off): count from now,
			// less what was really served of the current step.
			lo.Failures -= int(n)
			lo.Since = now.Add(-served)
		}
	}
	if limit := now.Add(c.LockoutMax); lo.Until.After(limit) {
		lo.Until = limit
	}
	return lo, served
}

// lockoutNow brings the controller's lockout up to now. A change the store
// should know of (a clamped wait) goes with the next commit.
//
// The decay credits at most the real time passed since decayMark, the
// Uptime at which lo.Since was last set in this process (at Run: the time a
// box is off is not known, and forgives nothing; a power cycle must not
// forgive a guesser's codes either).
func (c *Controller) lockoutNow(now time.Time) Lockout {
	real := time.Duration(math.MaxInt64) // a Clock without Uptime is taken at its word
	u, mono := c.clock.(Uptimer)
	var up time.Duration
	if mono {
		up = u.Uptime()
		real = up - c.decayMark
	}
	lo, served := c.cfg.currentLockout(c.lockout, now, real)
	if mono {
		c.decayMark = up - served
	}
	if lo != c.lockout {
		c.lockout, c.lockoutPending = lo, true
	}
	return lo
}

// markDecay starts the count of real time passed for the decay (at Run).
func (c *Controller) markDecay() {
	if u, ok := c.clock.(Uptimer); ok {
		c.decayMark = u.Uptime()
	}
}

// fail records a wrong code: the count goes up, and from the threshold on
// the keypad waits before it checks the next code.
func (c *Controller) fail(now time.Time, r Reason) {
	lo := c.lockoutNow(now)
	if lo.Failures == 0 {
		lo.Since = now
	}
	lo.Failures = min(lo.Failures+1, c.cfg.failureCap())
	evs := c.refused(now, Event{Type: EventCodeRefused, Reason: r, Failures: lo.Failures})
	if d := c.cfg.lockoutFor(lo.Failures); d > 0 {
		lo.Until = now.Add(d)
		evs = append(evs, c.event(now, Event{Type: EventLockout, Until: lo.Until, Failures: lo.Failures,
			Detail: fmt.Sprintf("next code checked in %s", d)}))
		c.log.Warn("keypad locked out", "failures", lo.Failures, "for", d)
	}
	// Memory first, whatever the disk does: a failing SD card must not
	// give a guesser free codes. The commit carries it, or a retry does.
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
