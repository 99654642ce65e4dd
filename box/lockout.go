package box

import (
	"fmt"
	"time"
)

// lockoutRetry is how soon a lockout the store failed to write is written
// again when nothing else commits first: soon, so that a power cut rarely
// loses it, and no sooner, so that a failing SD card is not hammered.
const lockoutRetry = 5 * time.Second

// currentLockout is lo as of now: the wrong codes forgiven by the time
// passed, and a wait never longer than LockoutMax from now (a clock set
// back, or an RTC that booted in 1970, must not wall the keypad for years).
func (c Config) currentLockout(lo Lockout, now time.Time) Lockout {
	if lo.Failures <= 0 {
		lo.Failures, lo.Since = 0, time.Time{}
	} else {
		if lo.Since.IsZero() || now.Before(lo.Since) {
			// No start to count from (a state written before decay
			// existed), or the clock went back: credit nothing yet.
			lo.Since = now
		}
		n := now.Sub(lo.Since) / c.LockoutDecay
		if int64(n) >= int64(lo.Failures) {
			lo.Failures, lo.Since = 0, time.Time{}
		} else {
			lo.Failures -= int(n)
			lo.Since = lo.Since.Add(n * c.LockoutDecay)
		}
	}
	if limit := now.Add(c.LockoutMax); lo.Until.After(limit) {
		lo.Until = limit
	}
	return lo
}

// lockoutNow brings the controller's lockout up to now. A change the store
// should know of (a clamped wait) goes with the next commit.
func (c *Controller) lockoutNow(now time.Time) Lockout {
	lo := c.cfg.currentLockout(c.lockout, now)
	if lo != c.lockout {
		c.lockout, c.lockoutPending = lo, true
	}
	return lo
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
	evs = append(evs, c.attempted(now)...)
	c.commit(Change{Events: evs})
}

// attempted counts a failed code (a wrong one, or any typed during a wait)
// towards the keypad_attack alert, and returns the alert when it is due:
// AttackThreshold failed codes within AttackWindow, at most one alert per
// window.
func (c *Controller) attempted(now time.Time) []Event {
	c.attempts = append(c.attempts, now)
	if len(c.attempts) > c.cfg.AttackThreshold {
		c.attempts = c.attempts[len(c.attempts)-c.cfg.AttackThreshold:]
	}
	if len(c.attempts) < c.cfg.AttackThreshold || now.Sub(c.attempts[0]) > c.cfg.AttackWindow {
		return nil
	}
	if !c.lastAttack.IsZero() && !now.Before(c.lastAttack) && now.Sub(c.lastAttack) < c.cfg.AttackWindow {
		return nil // already told within this window
	}
	c.lastAttack = now
	c.log.Warn("keypad attack", "failed_codes", len(c.attempts), "within", c.cfg.AttackWindow)
	return []Event{c.event(now, Event{Type: EventKeypadAttack, Count: len(c.attempts),
		Failures: c.lockout.Failures, Until: c.lockout.Until,
		Detail: fmt.Sprintf("%d failed codes within %s", len(c.attempts), c.cfg.AttackWindow)})}
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
