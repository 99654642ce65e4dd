package chaos

import (
	"sync"
	"time"
)

// FaultKind names one kind of fault the run injects (the summary counts
// them by kind).
type FaultKind string

// The faults of the issue, each injected at random (see faults.go).
const (
	FaultBoxKill       FaultKind = "box_sigkill"       // a box's smartboxd killed with SIGKILL (often mid-transaction), restarted
	FaultBrokerRestart FaultKind = "broker_restart"    // the broker stopped and started
	FaultNetworkCut    FaultKind = "network_cut"       // a box's link to the broker cut for a while (reset or blackhole)
	FaultBridgeKill    FaultKind = "bridge_kill"       // the bridge killed and restarted
	FaultDuplicateHook FaultKind = "webhook_duplicate" // Fleetio delivers a webhook twice
	FaultReorderHooks  FaultKind = "webhook_reorder"   // Fleetio's deliveries held, then sent out of order
	FaultFleetio429    FaultKind = "fleetio_429"       // Fleetio answers 429 (Retry-After) for a while
	FaultFleetio500    FaultKind = "fleetio_500"       // Fleetio answers 500 for a few requests
	FaultClockSkew     FaultKind = "clock_skew"        // a box's clock set off real time for a while
)

// Fault is one injected fault, for the summary and for the log of a replay.
type Fault struct {
	Kind FaultKind
	Box  string // "" for faults of the bridge, broker or Fleetio
	At   time.Time
	For  time.Duration // how long it lasted (0: instantaneous, as a kill)
}

// Typed is one code the run typed at a box's keypad (then '#'), right or
// wrong on purpose. The oracle checks every slot release against these and
// the grant log: a release must follow a code valid at that moment.
type Typed struct {
	Box  string
	Code string
	// Began is when the first key went down and At when the call that
	// pressed '#' returned, both real time. A release the code causes
	// happens between the two (the box opens at '#', before the call that
	// pressed it has returned), so it is attributed by Began.
	Began, At time.Time
	// Meant says what the run believed the code was when it typed it:
	// the assignment it was the PIN of (0: a wrong code on purpose, or a
	// PIN of an assignment already ended). The oracle does not trust it;
	// it is for the breach's message.
	Meant int64
}

// Journal is what the run did, in order: what the checks and the summary
// read once the run has healed every fault. Safe for concurrent use.
type Journal struct {
	mu          sync.Mutex
	faults      []Fault
	typed       []Typed
	codes       []CodeOf       // each booking's code, as the bridge wrote it to Fleetio when the run read it
	assignments map[int64]bool // every Fleetio assignment the run created
	changed     int            // changes to existing assignments
	ended       int            // assignments ended (deleted or their end set)
	takes       int            // keys taken from a slot
	returns     int            // keys returned with their fob
}

// NewJournal returns an empty journal.
func NewJournal() *Journal { return &Journal{assignments: map[int64]bool{}} }

// AddFault records an injected fault.
func (j *Journal) AddFault(f Fault) { j.mu.Lock(); j.faults = append(j.faults, f); j.mu.Unlock() }

// AddTyped records a code typed at a keypad.
func (j *Journal) AddTyped(t Typed) { j.mu.Lock(); j.typed = append(j.typed, t); j.mu.Unlock() }

// AddCode records a booking's code as the run read it from its Fleetio
// assignment: read at the end instead, a code of a booking that ended is
// gone (the bridge clears the field).
func (j *Journal) AddCode(c CodeOf) { j.mu.Lock(); j.codes = append(j.codes, c); j.mu.Unlock() }

// AddAssignment records an assignment the run created.
func (j *Journal) AddAssignment(id int64) { j.mu.Lock(); j.assignments[id] = true; j.mu.Unlock() }

// AddChange, AddEnd, AddTake and AddReturn count the rest of the workload.
func (j *Journal) AddChange() { j.mu.Lock(); j.changed++; j.mu.Unlock() }
func (j *Journal) AddEnd()    { j.mu.Lock(); j.ended++; j.mu.Unlock() }
func (j *Journal) AddTake()   { j.mu.Lock(); j.takes++; j.mu.Unlock() }
func (j *Journal) AddReturn() { j.mu.Lock(); j.returns++; j.mu.Unlock() }

// Faults, TypedCodes and Assignments return copies, in order.
func (j *Journal) Faults() []Fault {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Fault(nil), j.faults...)
}

func (j *Journal) TypedCodes() []Typed {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Typed(nil), j.typed...)
}

func (j *Journal) Codes() []CodeOf {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]CodeOf(nil), j.codes...)
}

func (j *Journal) Assignments() []int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	ids := make([]int64, 0, len(j.assignments))
	for id := range j.assignments {
		ids = append(ids, id)
	}
	return ids
}

// Breach is one violated invariant found by a check: never expected, and any
// one makes the run exit non-zero.
type Breach struct {
	Check  string // which check: "store", "events", "oracle", "locks", "fleetio", "leak"
	Box    string // "" when not about one box
	Detail string // what was wrong, with the ids and times to find it in the logs
}

// Summary is what a run prints at its end: the workload, the faults by kind,
// the checks' counts and the breaches (the last line is "breaches: N").
type Summary struct {
	Seed     uint64
	Boxes    int
	Duration time.Duration // the run's planned length (the heal and the checks come after)

	Faults      map[FaultKind]int
	Assignments int // created
	Changes     int
	Ends        int
	Typed       int // codes typed, right and wrong
	Opened      int // slots released for a code (from the boxes' events)
	Takes       int
	Returns     int
	Grants      int // grants in the cloud's sets at the end, every box
	Events      int // events the cloud holds from the boxes, every box

	Breaches []Breach
}
