package box

import "time"

// EventType names what happened. The strings are part of the wire protocol
// and the outbox format: add new ones, never rename.
type EventType string

const (
	EventBoxStarted     EventType = "box_started"
	EventBoxStopped     EventType = "box_stopped"
	EventClockUntrusted EventType = "clock_untrusted"
	EventCodeAccepted   EventType = "code_accepted"
	EventCodeRefused    EventType = "code_refused"
	EventLockout        EventType = "lockout"
	EventSlotReleased   EventType = "slot_released"
	EventSlotRelocked   EventType = "slot_relocked"
	EventKeyTaken       EventType = "key_taken"
	EventKeyReturned    EventType = "key_returned"
	EventKeyAbsent      EventType = "key_absent"      // a code was good but its key is not in its slot
	EventFobUnknown     EventType = "fob_unknown"     // a fob that names no key
	EventReturnRefused  EventType = "return_refused"  // a known fob whose home slot cannot take it
	EventSlotUnexpected EventType = "slot_unexpected" // the key sensor changed while the slot was locked
	EventRecordsApplied EventType = "records_applied" // keys/grants changed (import or sync)
	EventHardwareFault  EventType = "hardware_fault"
	EventSyncRefused    EventType = "sync_refused" // a message from the cloud side refused (security event)
	// EventKeypadAttack is raised when wrong codes at the keypad pass an
	// alert threshold within a window: someone is guessing, and an admin
	// should be told within a minute (security event).
	EventKeypadAttack EventType = "keypad_attack"
	// EventRefusalsMerged stands for Count refusal events (code_refused,
	// fob_unknown, ...) that were merged into one to keep the outbox within
	// its quota or a burst of refusals small; Reason and Detail say which.
	EventRefusalsMerged EventType = "refusals_merged"
	// EventMaintenanceBegan and EventMaintenanceEnded bracket a
	// technician's self-test: the box took no codes nor fobs in between,
	// and its releases are slot_released with PurposeSelftest.
	EventMaintenanceBegan EventType = "maintenance_began"
	EventMaintenanceEnded EventType = "maintenance_ended"
	// EventSlotReleasedLocally: a person at the box (a technician on its
	// admin socket, smartboxctl release) released a slot; Detail says who
	// (name and the socket peer's uid) and why. Audited like slot_released,
	// never merged.
	EventSlotReleasedLocally EventType = "slot_released_locally"
	// EventKeypadClosed: a wrong code spent the keypad's guess budget
	// (Config.LockoutBudget): no code is checked until Until, the next
	// refill, unless a restore_keypad command comes first. Sent to the
	// cloud at once; the bridge tells the admin (security event, never
	// merged). Count is the wrong codes spent, Failures the tarpit's count.
	EventKeypadClosed EventType = "keypad_closed"
	// EventKeypadRestored: a signed restore_keypad command from the cloud
	// gave the keypad its whole guess budget back; Detail says the command,
	// who and why, Count how many spent codes were given back. The
	// tarpit's count is kept.
	EventKeypadRestored EventType = "keypad_restored"
)

// ReturnBy says what let a key back into its slot (key_returned).
type ReturnBy string

const (
	// ReturnByFob: a fob scanned at the reader released the key's home slot.
	// EM4100 fobs are cloned with cheap tools, so a fob return is weak
	// evidence on its own: SeatedMS says how long the key sensor saw a key
	// seated before the event was recorded.
	ReturnByFob ReturnBy = "fob"
	// ReturnByRemote: the slot was opened by a signed command from the cloud.
	ReturnByRemote ReturnBy = "remote"
	// ReturnByLocal: the slot was released on the box's admin socket.
	ReturnByLocal ReturnBy = "local"
)

// Reason says why something was refused or ended.
type Reason string

const (
	ReasonUnknownCode    Reason = "unknown_code"
	ReasonNotYetValid    Reason = "not_yet_valid"
	ReasonExpired        Reason = "expired"
	ReasonRevoked        Reason = "revoked"
	ReasonUsedUp         Reason = "used_up"
	ReasonClockUntrusted Reason = "clock_untrusted"
	ReasonLockedOut      Reason = "locked_out"
	ReasonTooLong        Reason = "too_long"
	// ReasonKeypadClosed: the guess budget is spent, the code was not
	// checked (Until says when one is checked again).
	ReasonKeypadClosed Reason = "keypad_closed"
	ReasonNoKeys       Reason = "no_keys" // a good code whose keys are all unknown to the box
	ReasonSlotOccupied Reason = "slot_occupied"
	ReasonSlotBusy     Reason = "slot_busy" // the slot is in the middle of another sequence
	// ReasonCoolDown: the slot was released and nothing moved, so it is not
	// released again for a while (its coil cools; see Config.coolDownFor).
	ReasonCoolDown    Reason = "cool_down"
	ReasonKeyTaken    Reason = "key_taken"
	ReasonKeyReturned Reason = "key_returned"
	ReasonTimeout     Reason = "timeout"
	ReasonStop        Reason = "stop"
)

// Purpose says why a slot was released.
type Purpose string

const (
	PurposeTake     Purpose = "take"
	PurposeReturn   Purpose = "return"
	PurposeRemote   Purpose = "remote"   // opened by a signed command from the cloud
	PurposeSelftest Purpose = "selftest" // opened by a technician's self-test (smartboxctl selftest)
	PurposeLocal    Purpose = "local"    // released on the box's admin socket (ReleaseLocal)
)

// Event is one entry of the outbox. Seq is given by the store when the event
// is committed: a box-local, gap-free, increasing sequence number.
type Event struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"` // the box clock when it happened
	Type    EventType `json:"type"`
	Slot    int       `json:"slot,omitempty"`
	KeyID   string    `json:"key_id,omitempty"`
	GrantID string    `json:"grant_id,omitempty"`
	FobUID  string    `json:"fob_uid,omitempty"`
	Reason  Reason    `json:"reason,omitempty"`
	Purpose Purpose   `json:"purpose,omitempty"`
	// Until is the end of a lockout.
	Until time.Time `json:"until,omitzero"`
	// Failures is the count of wrong codes not yet forgiven (lockout,
	// code_refused, keypad_attack; see doc.go, "Wrong codes").
	Failures int `json:"failures,omitempty"`
	// ClockUntrusted marks events stamped by a clock the box does not trust.
	ClockUntrusted bool   `json:"clock_untrusted,omitempty"`
	Detail         string `json:"detail,omitempty"` // free text for people, never a code
	// ReturnBy and SeatedMS qualify key_returned: what released the slot,
	// and for how many milliseconds the slot's key sensor saw a key seated
	// (a return whose sensor did not stay seated for the settle time is not
	// proof the key is back).
	ReturnBy ReturnBy `json:"return_by,omitempty"`
	SeatedMS int64    `json:"seated_ms,omitempty"`
	// Count is how many events a merged event (refusals_merged) or an alert
	// (keypad_attack) stands for.
	Count int `json:"count,omitempty"`
}

// Refusal reports whether events of type t are refusal-class: an attempt at
// the keypad, the reader or the link that by itself moved no key and no slot
// (a refused code, an unknown fob, a return the slot could not take, a good
// code whose keys are all out, a refused message from the cloud side). There
// are as many of them as someone cares to make, so they may be merged into
// one counted refusals_merged (the store does it at its outbox quota).
// code_accepted is in the class too: a code that opens a slot also records
// slot_released, naming the grant and the key, which is never merged; alone,
// it is a good code typed again and again that opens nothing.
//
// Every other type records a key or a slot moving, an alarm, a change of the
// records or of the box's own state: bounded by physical actions, and never
// merged. A new type is not refusal-class until it is listed here.
func (t EventType) Refusal() bool {
	switch t {
	case EventCodeRefused, EventCodeAccepted, EventKeyAbsent, EventFobUnknown, EventReturnRefused,
		EventSyncRefused, EventRefusalsMerged:
		return true
	}
	return false
}
