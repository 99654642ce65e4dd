package box

import (
	"errors"
	"time"
)

// Store is the durable state the controller reads and changes. store.Store
// implements it on bbolt.
//
// Every method returns copies: the controller may keep what it gets.
type Store interface {
	KeyByID(id string) (Key, bool, error)
	KeyByFob(uid string) (Key, bool, error)
	// GrantsByCode returns every grant whose code is code, whatever its state
	// (the controller decides and says why). It is an index lookup.
	GrantsByCode(code string) ([]Grant, error)
	// GrantsByDriver returns every grant whose DriverRef is ref.
	GrantsByDriver(ref string) ([]Grant, error)
	Lockout() (Lockout, error)
	// Commit applies c in one transaction and returns its events with their
	// sequence numbers. If a grant in c.UseGrants has no uses left, nothing
	// is applied and the error wraps ErrUsedUp.
	Commit(c Change) ([]Event, error)
}

// Change is one atomic state change of the box and the events that record it.
type Change struct {
	UseGrants []string // each grant's Uses goes up by one
	Lockout   *Lockout // nil: unchanged
	Events    []Event
}

// ErrUsedUp is returned by Store.Commit when a grant has no uses left.
var ErrUsedUp = errors.New("grant has no uses left")

// Locks drives the slot locks. hal/ implements it on GPIO outputs.
//
// Energising a lock releases it. Implementations must de-energise by
// themselves after at most the given duration, capped by a hard maximum of
// their own, so that a stuck controller cannot overheat a coil or leave a slot
// open.
type Locks interface {
	Release(slot int, d time.Duration) error
	Lock(slot int) error
	LockAll() error
}

// KeySensors reads the key-present inputs: true when a key's fob is seated.
type KeySensors interface {
	Present(slot int) (bool, error)
}

// Indicators lights the slot LEDs. Optional: a nil Indicators is fine.
type Indicators interface {
	SetSlot(slot int, on bool) error
}

// Clock is the controller's time. Tests inject a fake one.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call; it reports false if the call already happened.
	Stop() bool
}

// Uptimer is an optional method of a Clock: how long this process has run,
// by a clock no one sets (the monotonic clock). The decay of wrong codes
// credits no more time than this says has passed (see doc.go, "Wrong codes"),
// so a wall clock stepped forward (an RTC that booted in 1970, then NTP)
// forgives nothing. A Clock without it is taken at its word: the decay then
// credits what its Now says has passed.
type Uptimer interface {
	Uptime() time.Duration
}

// SystemClock is the real clock.
type SystemClock struct{}

// processStart is the origin of SystemClock's Uptime. time.Since reads the
// monotonic clock for it, whatever the wall clock does.
var processStart = time.Now()

func (SystemClock) Now() time.Time        { return time.Now() }
func (SystemClock) Uptime() time.Duration { return time.Since(processStart) }
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, f)
}
