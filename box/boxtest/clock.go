// Package boxtest has test helpers for code that drives a box.Controller: a
// clock that moves only when told to.
package boxtest

import (
	"sort"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// Clock is a box.Clock whose time moves only by Set and Advance. Timers due
// at the new time fire, in order, before Advance returns.
//
// It is also a box.Uptimer: Advance, and Set forward, are time passing;
// Set backwards and Jump are steps of the wall clock, with no time passing.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	uptime time.Duration
	timers []*timer
	seq    int
}

type timer struct {
	c       *Clock
	at      time.Time
	seq     int
	f       func()
	stopped bool
	fired   bool
}

var (
	_ box.Clock   = (*Clock)(nil)
	_ box.Uptimer = (*Clock)(nil)
)

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Uptime is the time passed since NewClock: Advance and Set forward count,
// Set backwards and Jump do not.
func (c *Clock) Uptime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uptime
}

// Jump steps the wall clock to t with no time passing, as NTP or an RTC
// being set does: pending timers keep the time left to them (real timers run
// on the monotonic clock), none fires, and Uptime does not move.
func (c *Clock) Jump(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := t.Sub(c.now)
	for _, tm := range c.timers {
		tm.at = tm.at.Add(d)
	}
	c.now = t
}

// AfterFunc schedules f at Now()+d.
func (c *Clock) AfterFunc(d time.Duration, f func()) box.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// Advance moves the clock forward by d, firing due timers in time order.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (backwards too: a box's RTC can jump), firing
// timers due at or before t.
func (c *Clock) Set(t time.Time) {
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool {
			if !c.timers[i].at.Equal(c.timers[j].at) {
				return c.timers[i].at.Before(c.timers[j].at)
			}
			return c.timers[i].seq < c.timers[j].seq
		})
		var due *timer
		for len(c.timers) > 0 {
			first := c.timers[0]
			if first.stopped {
				c.timers = c.timers[1:]
				continue
			}
			if !first.at.After(t) {
				due = first
				c.timers = c.timers[1:]
				if first.at.After(c.now) {
					c.uptime += first.at.Sub(c.now)
					c.now = first.at
				}
			}
			break
		}
		if due == nil {
			if t.After(c.now) {
				c.uptime += t.Sub(c.now)
			}
			c.now = t
			c.mu.Unlock()
			return
		}
		due.fired = true
		c.mu.Unlock()
		due.f()
	}
}
