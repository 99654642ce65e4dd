package box

import (
	"fmt"
	"time"
)

// ClockPolicy says what windowed grants do while the box clock is not trusted.
type ClockPolicy string

const (
	// ClockRefuse refuses windowed grants while the clock is untrusted (default):
	// a box that thinks it is 1970 must not open a key for a booking of 2026,
	// nor one whose window really ended.
	ClockRefuse ClockPolicy = "refuse"
	// ClockAllow checks windows against the untrusted clock anyway, for sites
	// that prefer availability; every event is still marked clock_untrusted.
	ClockAllow ClockPolicy = "allow"
)

// Config holds the rules' numbers. Zero values take the defaults below.
type Config struct {
	Slots            int           // slot count (default 12)
	ReleaseTime      time.Duration // a released slot waits this long for its key to move (default 5s)
	MaxReleaseTime   time.Duration // hard maximum for ReleaseTime (default 10s): a coil must not overheat
	EntryTimeout     time.Duration // keypad inactivity that clears the entry (default 10s)
	MaxEntryLength   int           // digits kept in an entry (default MaxCodeLength); more make the entry "too long"
	LockoutThreshold int           // wrong codes in a row before a lockout (default 5)
	LockoutBase      time.Duration // first lockout (default 30s), doubling for each further wrong code
	LockoutMax       time.Duration // cap of the lockout (default 15m)
	BuildTime        time.Time     // a clock before this is untrusted (zero: never); smartboxd gives its clock floor
	UntrustedClock   ClockPolicy   // default ClockRefuse
}

// Hard limits no configuration may exceed.
const (
	HardMaxRelease = 30 * time.Second
	DefaultSlots   = 12
	MaxSlots       = 256
)

// WithDefaults fills zero fields and checks the rest.
func (c Config) WithDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Slots == 0 {
		c.Slots = DefaultSlots
	}
	def(&c.ReleaseTime, 5*time.Second)
	def(&c.MaxReleaseTime, 10*time.Second)
	def(&c.EntryTimeout, 10*time.Second)
	def(&c.LockoutBase, 30*time.Second)
	def(&c.LockoutMax, 15*time.Minute)
	if c.MaxEntryLength == 0 {
		c.MaxEntryLength = MaxCodeLength
	}
	if c.LockoutThreshold == 0 {
		c.LockoutThreshold = 5
	}
	if c.UntrustedClock == "" {
		c.UntrustedClock = ClockRefuse
	}
	switch {
	case c.Slots < 1 || c.Slots > MaxSlots:
		return c, fmt.Errorf("slots: %d is not in 1..%d", c.Slots, MaxSlots)
	case c.MaxReleaseTime < 0 || c.MaxReleaseTime > HardMaxRelease:
		return c, fmt.Errorf("max release time: %s is not in 0..%s", c.MaxReleaseTime, HardMaxRelease)
	case c.ReleaseTime < 0:
		return c, fmt.Errorf("release time: %s is negative", c.ReleaseTime)
	case c.EntryTimeout < 0 || c.LockoutBase < 0 || c.LockoutMax < c.LockoutBase:
		return c, fmt.Errorf("timings: entry timeout %s, lockout %s..%s", c.EntryTimeout, c.LockoutBase, c.LockoutMax)
	case c.MaxEntryLength < MinCodeLength || c.MaxEntryLength > 64:
		return c, fmt.Errorf("max entry length: %d is not in %d..64", c.MaxEntryLength, MinCodeLength)
	case c.LockoutThreshold < 1:
		return c, fmt.Errorf("lockout threshold: %d is below 1", c.LockoutThreshold)
	case c.UntrustedClock != ClockRefuse && c.UntrustedClock != ClockAllow:
		return c, fmt.Errorf("untrusted clock policy: %q is not %q or %q", c.UntrustedClock, ClockRefuse, ClockAllow)
	}
	if c.ReleaseTime > c.MaxReleaseTime {
		c.ReleaseTime = c.MaxReleaseTime
	}
	return c, nil
}

// lockoutFor is how long the keypad refuses codes after failures wrong codes
// in a row: nothing below the threshold, then base doubling per further wrong
// code, capped. Growing back-off makes guessing a 6-digit PIN take years while
// a driver who mistypes twice loses nothing.
func (c Config) lockoutFor(failures int) time.Duration {
	if failures < c.LockoutThreshold {
		return 0
	}
	d := c.LockoutBase
	for i := c.LockoutThreshold; i < failures; i++ {
		d *= 2
		if d >= c.LockoutMax {
			return c.LockoutMax
		}
	}
	return min(d, c.LockoutMax)
}
