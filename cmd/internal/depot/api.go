package depot

import (
	"errors"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
)

// Errors a caller (the page's JSON API) turns into answers: ErrUnknownBox is
// a 404, ErrInvalid a 400 (wrapped with the reason); a *boxsocket.Error
// carries the box's own status (409 for a latched slot). Anything else is
// the simulator failing (500).
var (
	ErrUnknownBox = errors.New("no such box")
	ErrInvalid    = errors.New("invalid request")
	// ErrBoxDown: the box's process is not running (power off, or it died),
	// so nothing at its front can be done.
	ErrBoxDown = errors.New("the box is not running")
)

// Power and process states of a box, as BoxView shows them.
const (
	PowerOn  = "on"
	PowerOff = "off"

	ProcessStarting = "starting" // launched, its socket not answering yet
	ProcessRunning  = "running"
	ProcessExited   = "exited" // died on its own or was killed; see BoxView.Exit
)

// BoxView is one box as the page shows it: the process around it, the
// network and clock the simulator controls, and the latest state the box
// reported on its socket.
type BoxView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Location string `json:"location"`
	Slots    int    `json:"slots"`

	Power   string `json:"power"`   // PowerOn or PowerOff (the simulator pulled it)
	Process string `json:"process"` // ProcessStarting, ProcessRunning or ProcessExited
	PID     int    `json:"pid,omitempty"`
	// Exit says why the process ended ("killed: power pulled", "exit
	// status 1: ...") with the last lines of its log; "" while it runs.
	Exit string `json:"exit,omitempty"`
	// ExitCode is the process's exit status once it has ended (-1: ended
	// by a signal, as a pulled power is).
	ExitCode int       `json:"exit_code,omitempty"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since"` // when Process last changed

	// NetworkCut: the box's link to the broker is severed at the proxy;
	// NetworkMode says how ("reset": connections refused at once;
	// "blackhole": a pulled cable, nothing gets through and nobody is told).
	NetworkCut  bool   `json:"network_cut"`
	NetworkMode string `json:"network_mode,omitempty"`
	// ClockOffsetS is how far the simulator set the board's clock from
	// the real time (0: not skewed); it survives a power cut.
	ClockOffsetS int64 `json:"clock_offset_s"`

	// Keys are the box's keys with their fobs (for the page's reader).
	Keys []box.Key `json:"keys"`
	// State is the latest Watch the box sent (its Events left out: see
	// Depot.Events); nil before the first. Once the process has ended it
	// is what the box is now: every lock de-energised and every LED off
	// (the power, or the daemon, is gone), the cloud "not running".
	State *boxsocket.Watch `json:"state,omitempty"`
}

// Message is one email or SMS the bridge sent, as the driver's (or the
// admin's) inbox shows it.
type Message struct {
	At      time.Time `json:"at"`
	Channel string    `json:"channel"` // "email" or "sms"
	To      string    `json:"to"`
	Subject string    `json:"subject,omitempty"` // email only
	Body    string    `json:"body"`
}

// MaxEventsKept bounds the events the depot keeps per box for the page (the
// box's own outbox and the cloud keep them all).
const MaxEventsKept = 200
