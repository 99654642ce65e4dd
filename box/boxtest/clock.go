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
type Clock struct {
	mu     sync.Mutex
	now    time.Time
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

var _ box.Clock = (*Clock)(nil)

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
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
					c.now = first.at
				}
			}
			break
		}
		if due == nil {
			c.now = t
			c.mu.Unlock()
			return
		}
		due.fired = true
		c.mu.Unlock()
		due.f()
	}
}
