package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// Version is the message format version carried in every message's "v".
// A receiver refuses a version it does not know (ErrVersion) rather than
// guess; fields may be added within a version and are ignored by older code.
const Version = 1

// MaxMessageSize bounds every message a side accepts. The cloud splits
// snapshots into chunks below it; anything larger is refused unread.
const MaxMessageSize = 1 << 20

// Errors, each wrapped with what was wrong.
var (
	ErrMalformed    = errors.New("malformed message")
	ErrVersion      = errors.New("unknown protocol version")
	ErrBadSignature = errors.New("bad signature")
	ErrWrongBox     = errors.New("message for another box")
	ErrTooLarge     = errors.New("message too large")
)

// Status is the box's retained status, and (with Online false) its last will.
type Status struct {
	V            int       `json:"v"`
	Box          string    `json:"box"`
	Online       bool      `json:"online"`
	Software     string    `json:"software,omitempty"` // smartboxd version
	Revision     uint64    `json:"revision"`           // records revision the box holds
	OutboxDepth  int       `json:"outbox_depth"`
	LastSeq      uint64    `json:"last_seq"`
	Clock        time.Time `json:"clock,omitzero"` // the box clock when sent
	ClockTrusted bool      `json:"clock_trusted"`
}

// SyncRequest says which records revision the box has. The cloud answers
// with a RecordBatch on LeafRecords; a box that is current gets a current
// answer (see RecordBatch). A request with no answer within the box's
// AckTimeout is sent again, with a growing wait (sync/link).
type SyncRequest struct {
	V    int    `json:"v"`
	Box  string `json:"box"`
	Have uint64 `json:"have"`
	// Reason is for people reading logs: "connect", "gap", "bad_signature",
	// "command", "periodic", "probe".
	Reason string `json:"reason,omitempty"`
	// Probe, when set, asks for a signed answer that carries it back even
	// if the box is current (see RecordBatch.Probe): the box's proof that
	// the round trip to the cloud works and that what the cloud signs
	// verifies with the keys the box was provisioned with. A nonce the box
	// made, ValidProbe. Added within Version 1: an older cloud ignores it
	// (and the box's probe times out), an older box never sends it.
	Probe string `json:"probe,omitempty"`
}

// MaxProbeLen bounds SyncRequest.Probe: a random nonce needs no more than
// a few dozen characters, and the cloud echoes it into a signed message.
const MaxProbeLen = 64

// ValidProbe says whether p is a probe nonce the cloud answers: 1 to
// MaxProbeLen letters, digits, '-' or '_' (base64url or hex, nothing that
// could mean something in a log line).
func ValidProbe(p string) bool {
	if len(p) == 0 || len(p) > MaxProbeLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// RecordBatch moves a box's records from revision From to revision To.
// A snapshot replaces every record; it may come in Chunks parts (numbered
// from 1) that the box applies together, once all are there.
//
// A probe answer is a delta with From = To = the cloud's revision, no
// records and Probe set to the nonce of the SyncRequest it answers. A box
// at that revision ignores it as a batch it holds already; a box behind it
// sees a gap and asks again, as for any delta that does not start where it
// is.
//
// A current answer is a probe answer without Probe: the cloud's reply to a
// SyncRequest from a box that holds its revision already, which tells the
// box that its request was answered (the replica that took it did not die
// first). Added within Version 1: an older box ignores it as a batch it
// holds; a box talking to an older cloud gets none and asks again at its
// backed-off rate.
type RecordBatch struct {
	V            int           `json:"v"`
	Box          string        `json:"box"`
	From         uint64        `json:"from"`
	To           uint64        `json:"to"`
	Snapshot     bool          `json:"snapshot,omitempty"`
	Chunk        int           `json:"chunk,omitempty"`
	Chunks       int           `json:"chunks,omitempty"`
	Keys         []box.Key     `json:"keys,omitempty"`
	DeleteKeys   []string      `json:"delete_keys,omitempty"`
	Grants       []GrantRecord `json:"grants,omitempty"`
	DeleteGrants []string      `json:"delete_grants,omitempty"`
	// Ephemeral is the sender's X25519 public key for this batch's sealed
	// codes (see SealCodes).
	Ephemeral []byte    `json:"ephemeral,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	// Probe is the nonce of the SyncRequest this batch answers, on a probe
	// answer only (see SyncRequest.Probe).
	Probe string `json:"probe,omitempty"`
}

// GrantRecord is a grant as the cloud sends it: the box's Grant (its Uses
// is ignored: the box counts uses) and the grant's code, sealed to the box.
// An empty CodeSealed keeps the code the box already has.
type GrantRecord struct {
	box.Grant
	CodeSealed []byte `json:"code_sealed,omitempty"`
}

// EventBatch carries outbox events, in sequence order with no gaps.
type EventBatch struct {
	V      int         `json:"v"`
	Box    string      `json:"box"`
	Events []box.Event `json:"events"`
}

// EventAck tells the box the cloud has stored its events through Through:
// the box may delete them from its outbox. Signed, because an ack is a
// licence to forget.
type EventAck struct {
	V       int    `json:"v"`
	Box     string `json:"box"`
	Through uint64 `json:"through"`
}

// Command kinds.
const (
	CommandReleaseSlot = "release_slot" // open a slot remotely (a technician, a lost PIN)
	CommandResync      = "resync"       // ask the box to send a SyncRequest from revision 0
	// CommandRestoreKeypad gives a keypad closed by a spent guess budget
	// its budget back (box.Controller.RestoreKeypad): no slot.
	CommandRestoreKeypad = "restore_keypad"
)

// MaxCommandText bounds a command's By and Reason: a name or an email and
// a sentence. Both go into the box's events, which the box keeps and sends
// back; a page of text there is a mistake or an attack, not an audit trail.
const MaxCommandText = 200

// CheckCommandText checks a command's By and Reason: both required for the
// commands that change the box (release_slot, restore_keypad), and each
// at most MaxCommandText bytes.
func CheckCommandText(kind, by, reason string) error {
	switch {
	case kind != CommandResync && (by == "" || reason == ""):
		return fmt.Errorf("%w: %s needs who asked (by) and why (reason)", ErrMalformed, kind)
	case len(by) > MaxCommandText:
		return fmt.Errorf("%w: %s: by is %d bytes, at most %d", ErrMalformed, kind, len(by), MaxCommandText)
	case len(reason) > MaxCommandText:
		return fmt.Errorf("%w: %s: reason is %d bytes, at most %d", ErrMalformed, kind, len(reason), MaxCommandText)
	}
	return nil
}

// Command is a signed instruction from the cloud. ID is unique; a box runs a
// command once, and not after Expires (so a command captured and replayed
// later does nothing).
type Command struct {
	V        int       `json:"v"`
	Box      string    `json:"box"`
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Slot     int       `json:"slot,omitempty"`
	By       string    `json:"by"`     // who asked, for the audit trail
	Reason   string    `json:"reason"` // why, for the audit trail
	IssuedAt time.Time `json:"issued_at"`
	Expires  time.Time `json:"expires"`
}

// CommandResult answers a Command.
type CommandResult struct {
	V     int       `json:"v"`
	Box   string    `json:"box"`
	ID    string    `json:"id"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

// header is what every message has, read first to refuse what we do not speak.
type header struct {
	V   int    `json:"v"`
	Box string `json:"box"`
}

// Decode checks size, version and box of a plain (unsigned) message and
// decodes it into out. wantBox "" accepts any box (the cloud takes the box
// from the topic and passes it here).
func Decode(data []byte, wantBox string, out any) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxMessageSize)
	}
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if h.V != Version {
		return fmt.Errorf("%w: v=%d, this side speaks v=%d", ErrVersion, h.V, Version)
	}
	if wantBox != "" && h.Box != wantBox {
		return fmt.Errorf("%w: box %q, expected %q", ErrWrongBox, h.Box, wantBox)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}
