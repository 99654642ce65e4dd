// Package selftest is `smartboxctl selftest`'s logic, written once over a
// narrow Board (the box's hardware and its checks) and a Prompter (the
// technician): smartboxctl gives it a Board that drives a running
// smartboxd's maintenance session through its socket, or one that drives
// the hardware itself when the daemon is stopped.
//
// The test goes on after a failed row: a jammed lock or a dead sensor fails
// its own row and the rest are still run, so one visit finds every fault.
package selftest

import (
	"context"
	"errors"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
)

// InputKind says what a person did at the box.
type InputKind string

const (
	InputNone   InputKind = ""                    // nothing within the timeout
	InputKey    InputKind = boxsocket.InputKey    // a keypad key was pressed
	InputFob    InputKind = boxsocket.InputFob    // a fob was read
	InputSensor InputKind = boxsocket.InputSensor // a key sensor changed
)

// Input is one thing that happened at the box.
type Input struct {
	Kind    InputKind `json:"kind,omitempty"`
	Key     string    `json:"key,omitempty"`     // InputKey: the key, e.g. "5"
	Fob     string    `json:"fob,omitempty"`     // InputFob: the UID read
	Slot    int       `json:"slot,omitempty"`    // InputSensor: which slot
	Present bool      `json:"present,omitempty"` // InputSensor: reads a key now
}

// SlotInfo is what the box knows of a slot before the test touches it.
type SlotInfo struct {
	Slot    int
	KeyID   string // the key whose home this is ("" none)
	KeyName string
	// Expected says whether a key should be in the slot by another source
	// than its sensor (the simulator's physical truth); nil: unknown.
	Expected *bool
}

// Checks is what the box says of its clock, store and cloud.
type Checks struct {
	Clock        time.Time
	ClockTrusted bool
	ClockSynced  bool // NTP synchronised (false on the simulator's clock)
	// Simulated: the simulator's settable clock, which NTP does not set
	// (the NTP row is then "not available", not failed).
	Simulated bool
	// StoreErr is why the store failed its checks (bbolt Check, identity);
	// "" when it passed.
	StoreErr string
	// Cloud is "connected", "not connected" or "offline-only".
	Cloud  string
	Broker string
}

// ProbeResult is a signed round trip to the cloud that verified.
type ProbeResult struct {
	RTT   time.Duration
	KeyID string
}

// ErrNotAvailable is what a Board returns for a check it cannot make (the
// row reads "not available" and does not fail the test).
var ErrNotAvailable = errors.New("not available")

// Board is the hardware under test and the box's checks. Slots are 1..N.
type Board interface {
	// Slots is every slot, in order.
	Slots(ctx context.Context) ([]SlotInfo, error)
	// Layout is the keypad's rows, e.g. "123", "456", "789", "*0#".
	Layout() []string
	// Release energises slot n's lock for at most d (the board caps it at
	// its hard maximum); Lock de-energises it.
	Release(ctx context.Context, n int, d time.Duration) error
	Lock(ctx context.Context, n int) error
	// Present reads slot n's key sensor.
	Present(ctx context.Context, n int) (bool, error)
	// Next is the next input, or Input{} (InputNone) after timeout.
	Next(ctx context.Context, timeout time.Duration) (Input, error)
	// Checks reads the clock, the store and the broker connection.
	Checks(ctx context.Context) (Checks, error)
	// Probe is a signed status round trip to the cloud; ErrNotAvailable
	// when the board cannot make one (the daemon is stopped).
	Probe(ctx context.Context) (ProbeResult, error)
}

// Prompter is the technician.
type Prompter interface {
	// Confirm asks a yes/no question; --yes answers yes without asking.
	Confirm(ctx context.Context, question string) (bool, error)
	// Say tells the technician what to do now (the test then waits for
	// the hardware, --yes or not).
	Say(instruction string)
	// AssumeYes reports whether confirmations are answered yes unasked:
	// the test then checks by the hardware what it would have asked.
	AssumeYes() bool
}
