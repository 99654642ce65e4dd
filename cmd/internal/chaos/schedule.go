package chaos

import (
	"math/rand/v2"
	"slices"
	"time"
)

// AllFaults is every kind of fault, in the order the schedule first
// places one of each (so a run of any length injects every kind).
var AllFaults = []FaultKind{FaultBoxKill, FaultNetworkCut, FaultClockSkew, FaultDuplicateHook, FaultReorderHooks,
	FaultFleetio429, FaultFleetio500, FaultBrokerRestart, FaultBridgeKill}

// Bounds of the schedule, stated once.
const (
	// faultsPerBoxMinute is the rate of extra faults beyond one of each
	// kind: one per box per two minutes keeps every box disturbed several
	// times in a 30-minute run without leaving it down most of the time.
	faultsPerBoxMinute = 0.5
	// scheduleMargin keeps faults out of the run's last stretch: a fault
	// started then would still be healing when the run heals everything.
	scheduleMargin = 0.9
	// Fault lengths: a network cut or a skew long enough for keepalives
	// and retries to notice (seconds), short enough that the box catches up
	// within the run; a box stays dead up to a few seconds (a power blip
	// to a slow reboot).
	minFaultFor = 2 * time.Second
	maxFaultFor = 8 * time.Second
	// maxClockSkew is how far a box's clock is set off: minutes, as a board
	// without an RTC battery or a wrong NTP step, both ways.
	maxClockSkew = 10 * time.Minute
)

// Planned is one fault of the schedule: what, to which box (index into the
// depot's boxes; -1 for the bridge, broker and Fleetio), when from the
// run's start, for how long, and its parameter (a network cut's mode
// blackhole, a clock's skew, a kill mid-transaction).
type Planned struct {
	Kind      FaultKind
	Box       int
	At        time.Duration
	For       time.Duration
	Blackhole bool          // network cut: a pulled cable rather than resets
	Skew      time.Duration // clock skew: the offset from real time
	MidCode   bool          // box kill: right after a code is typed
}

// Schedule is the faults of a run, drawn from seed alone (the same seed,
// boxes and duration give the same schedule: a run can be replayed).
// Sorted by At.
func Schedule(seed uint64, boxes int, d time.Duration) []Planned {
	r := rand.New(rand.NewPCG(seed, seed^0x5ca1ab1e))
	span := time.Duration(float64(d) * scheduleMargin)
	extra := int(faultsPerBoxMinute * float64(boxes) * d.Minutes())
	var out []Planned
	for i, k := range AllFaults {
		// One of each kind, spread over the run, then the extras at random.
		at := span * time.Duration(i) / time.Duration(len(AllFaults))
		out = append(out, plan(r, k, boxes, at))
	}
	for range extra {
		k := AllFaults[r.IntN(len(AllFaults))]
		// Bridge and broker restarts are rarer: each disturbs every box.
		if (k == FaultBridgeKill || k == FaultBrokerRestart) && r.IntN(4) != 0 {
			k = FaultBoxKill
		}
		out = append(out, plan(r, k, boxes, time.Duration(r.Int64N(int64(span)+1))))
	}
	slices.SortStableFunc(out, func(a, b Planned) int { return int(a.At - b.At) })
	return out
}

// plan draws one fault of kind k at at.
func plan(r *rand.Rand, k FaultKind, boxes int, at time.Duration) Planned {
	p := Planned{Kind: k, Box: -1, At: at}
	switch k {
	case FaultBoxKill, FaultNetworkCut, FaultClockSkew:
		p.Box = r.IntN(boxes)
		p.For = minFaultFor + time.Duration(r.Int64N(int64(maxFaultFor-minFaultFor)))
	case FaultDuplicateHook, FaultReorderHooks:
		p.For = minFaultFor + time.Duration(r.Int64N(int64(maxFaultFor-minFaultFor)))
	}
	switch k {
	case FaultBoxKill:
		p.MidCode = r.IntN(2) == 0
	case FaultNetworkCut:
		p.Blackhole = r.IntN(2) == 0
	case FaultClockSkew:
		p.Skew = time.Duration(r.Int64N(int64(2*maxClockSkew))) - maxClockSkew
		if p.Skew == 0 {
			p.Skew = time.Minute
		}
	}
	return p
}
