// Package boxsocket is smartboxd's local admin socket: a Unix socket
// speaking HTTP and JSON that shows a running box as it is (status, slots,
// keys, grants, events), lets a technician release a slot (audited), and, on
// the simulated board only, lets the simulator act on the hardware (press
// keys, take and return keys, hold a fob at the reader, break things). This
// file is the API, one definition for the daemon that serves it and the
// tools that call it (smartbox-sim, smartboxctl).
//
// Who may connect: the socket is 0600 (root and the daemon's user), or 0660
// with smartboxd's --socket-group (the systemd unit passes "smartbox": then
// that group's members too). Anyone who can connect can release slots: the
// file's mode is the access control, and every release records the peer's
// uid (SO_PEERCRED). On a box the socket is at DefaultPath, in the unit's
// RuntimeDirectory.
//
// Routes (every answer is JSON; an error is ErrorResponse with a 4xx/5xx):
//
//	GET  /v1/status                Status
//	GET  /v1/slots                 []Slot
//	GET  /v1/keys                  []box.Key
//	GET  /v1/grants                []box.Grant (never a code: the box keeps only their HMACs)
//	POST /v1/slots/{n}/release     ReleaseRequest: release slot n for a take or a return,
//	                               audited as slot_released_locally; 409 while it is released
//	POST /v1/cloud/probe           a signed round trip to the cloud (probe.go)
//	GET  /v1/events?after=S&limit=N []box.Event after seq S, at most N (default 100, max MaxEvents)
//	GET  /v1/watch?after=S         text/event-stream of Watch, one "data:" line each:
//	                               one at once, then one per change (coalesced, at most
//	                               one per WatchEvery)
//	POST /v1/sim/keypad            KeypadRequest: types through the real scanner; 200 when every key was read
//	POST /v1/sim/slots/{n}/take    takes the key out of released slot n (409 if latched, jammed or empty)
//	POST /v1/sim/slots/{n}/put-back seats a key in released slot n (409 if latched, jammed or full)
//	PUT  /v1/sim/slots/{n}/fault   SlotFault: jam the latch, kill the key sensor
//	POST /v1/sim/reader            ReaderRequest: hold a fob at the reader, or feed it garbage
//	PUT  /v1/sim/clock             ClockRequest: set the simulated board's clock
//
// A /v1/sim action answers 200 with an empty JSON object ({}) once done.
// The /v1/sim routes answer 404 on real hardware.
package boxsocket

import (
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// DefaultPath is where smartboxd's socket is on a box: the systemd unit's
// RuntimeDirectory (smartbox) and the name smartboxd gives it there.
const DefaultPath = "/run/smartbox/smartboxd.sock"

// SocketName is the socket's file name in $RUNTIME_DIRECTORY.
const SocketName = "smartboxd.sock"

// Bounds of the socket, stated once.
const (
	// MaxEvents caps one /v1/events answer and the events carried by one
	// Watch message.
	MaxEvents = 500
	// MaxRequestBody caps a request body: the largest is a keypad string.
	MaxRequestBody = 4 << 10
	// MaxKeys caps KeypadRequest.Keys (a PIN and a few retries).
	MaxKeys = 64
	// WatchEvery is the shortest gap between two Watch messages: a burst of
	// pin changes (a scan, a release) is one message, not dozens.
	WatchEvery = 50 * time.Millisecond
	// MaxFobHold caps ReaderRequest.HoldMS: a fob left at the reader for
	// longer is a person walking away.
	MaxFobHold = 10 * time.Second
	// MaxRawBytes caps ReaderRequest.Raw.
	MaxRawBytes = 256
	// MaxKeyHold caps KeypadRequest.HoldMS: a key held longer is a finger
	// resting on it, and MaxKeys of them would keep the request open for
	// minutes.
	MaxKeyHold = 2 * time.Second
	// MaxClockJump caps how far ClockRequest.At may be from the system's
	// time: 1970 is in reach, a time.Duration's 292 years are not.
	MaxClockJump = 100 * 365 * 24 * time.Hour
	// MaxReleaseBy caps ReleaseRequest.By (a name or an employee number).
	MaxReleaseBy = 64
	// MaxReleaseReason caps ReleaseRequest.Reason (a sentence), so that
	// the event's Detail stays a line.
	MaxReleaseReason = 200
)

// Status is the box in one answer.
type Status struct {
	BoxID    string `json:"box_id"`
	Software string `json:"software"`
	// Hardware is the profile: "sim" or "smartbox-v1".
	Hardware string    `json:"hardware"`
	Started  time.Time `json:"started"` // process start, system clock
	UptimeS  int64     `json:"uptime_s"`

	// Cloud is "connected", "not connected" or "offline-only" (no [cloud]).
	Cloud    string `json:"cloud"`
	Broker   string `json:"broker,omitempty"`
	Revision uint64 `json:"revision"`
	Outbox   int    `json:"outbox"` // events not yet acknowledged by the cloud
	LastSeq  uint64 `json:"last_seq"`
	// LastSync is when the box last applied (or was told it had) the
	// cloud's records; LastAck when the cloud last acknowledged events.
	// Zero: not since the daemon started.
	LastSync time.Time `json:"last_sync,omitzero"`
	LastAck  time.Time `json:"last_ack,omitzero"`
	// SyncRefused is the last message from the cloud the box refused (a
	// batch whose signature does not verify with the provisioned key, a
	// malformed one), with when; "" when none since start.
	SyncRefused   string    `json:"sync_refused,omitempty"`
	SyncRefusedAt time.Time `json:"sync_refused_at,omitzero"`

	Clock        time.Time `json:"clock"` // the box clock now
	ClockTrusted bool      `json:"clock_trusted"`
	ClockFloor   time.Time `json:"clock_floor"`
	// ClockSynced: the system clock is synchronised by NTP (the kernel's
	// STA_UNSYNC flag is clear); false on the sim's settable clock.
	ClockSynced bool `json:"clock_synced"`

	// LockoutUntil is set while the keypad refuses codes after wrong ones.
	LockoutUntil time.Time `json:"lockout_until,omitzero"`
	Failures     int       `json:"failures,omitempty"` // wrong codes not yet forgiven
}

// Slot is one slot as a person at the box sees it.
type Slot struct {
	Slot       int    `json:"slot"`
	KeyID      string `json:"key_id,omitempty"`   // the key whose home this is
	KeyName    string `json:"key_name,omitempty"` // e.g. "Van 7 (Ford Transit)"
	KeyPresent bool   `json:"key_present"`        // what the key sensor reads
	Released   bool   `json:"released"`           // the lock is energised
	LED        bool   `json:"led"`
	// WaitingFor is what the box waits for while the slot is released:
	// "take" (the key to leave) or "return" (the key to be seated).
	WaitingFor box.Purpose `json:"waiting_for,omitempty"`

	// Sim only: the physical truth and the faults set through /fault.
	KeyInSlot  bool `json:"key_in_slot"`           // a key is physically there
	Jammed     bool `json:"jammed,omitempty"`      // the latch does not open
	SensorDead bool `json:"sensor_dead,omitempty"` // the sensor reads "no key" whatever is there
}

// Watch is one message of /v1/watch: the whole state, and the events
// committed since the previous message (or since ?after= for the first).
type Watch struct {
	Status Status      `json:"status"`
	Slots  []Slot      `json:"slots"`
	Events []box.Event `json:"events,omitempty"`
	// Typed is how many keys have been pressed since the last submit,
	// clear or timeout (sim only, for the page's keypad display).
	Typed int `json:"typed"`
}

// KeypadRequest types Keys ("123456#"; '*' clears, '#' submits) on the
// simulated keypad, each key held HoldMS (0: the default, a finger's tap;
// at most MaxKeyHold).
type KeypadRequest struct {
	Keys   string `json:"keys"`
	HoldMS int    `json:"hold_ms,omitempty"`
}

// SlotFault sets or clears a slot's faults. A nil field is left as it is.
type SlotFault struct {
	// Jammed: the latch stays shut though the lock is energised, so the
	// key cannot leave (nor be seated).
	Jammed *bool `json:"jammed,omitempty"`
	// SensorDead: the key sensor's wire is cut; with its pull-up it reads
	// "no key" whatever is in the slot.
	SensorDead *bool `json:"sensor_dead,omitempty"`
}

// ReaderRequest is one thing at the fob reader: exactly one of Fob (a
// fob's UID, 10 hex digits, held for HoldMS, default about three frames)
// and Raw (bytes written on the serial line as they are: garbage, a
// frame with a bad checksum, half a frame).
type ReaderRequest struct {
	Fob    string `json:"fob,omitempty"`
	HoldMS int    `json:"hold_ms,omitempty"`
	Raw    []byte `json:"raw,omitempty"` // base64 in JSON
}

// ClockRequest sets the simulated board's clock: exactly one of At (the
// clock jumps there, e.g. 1970-01-01T00:00:00Z) and Reset (back to the
// system's time).
type ClockRequest struct {
	At    time.Time `json:"at,omitzero"`
	Reset bool      `json:"reset,omitempty"`
}

// ReleaseRequest releases a slot on the admin socket: By (who, e.g. a name)
// and Reason (why) are both required, printable, at most MaxReleaseBy and
// MaxReleaseReason characters; the event records them with the socket
// peer's uid.
type ReleaseRequest struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
}

// ErrorResponse is every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}
