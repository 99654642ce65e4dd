package chaos

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// The oracle: no slot ever opened for a code that was not valid at that
// moment. Judging is pure (plain data in, breaches out, see JudgeOracle);
// the Monitor and Check gather the data.
//
// "Valid at that moment", exactly: a slot_released event (purpose take) on
// box B naming grant G, stamped T by B's clock, at B's applied revision R
// (the revision of the last records_applied before it in B's own event
// order), is valid when the version of G in force at R, which is the
// cloud's version of G with the highest revision <= R, exists and
//   - is not revoked (a revocation the box had not applied yet does not
//     count against it: the box cannot know it; one it had applied does),
//   - has T in its window [From, Until) by the box's clock (chaos skews
//     clocks: the box judges by its clock, and so does the oracle), and
//   - with MaxUses > 0, the opens by G so far on B, this one included,
//     are at most MaxUses (an open is one code entry: the releases of one
//     commit share their time stamp).
// A revision the Monitor did not see (two changes between two of its polls)
// is judged by either neighbour: the version before it or the first seen
// after it; one of them passing is a pass (the oracle cannot tell which
// the box held, and must not invent a breach).

// GrantVersion is one grant as the cloud held it at revision Rev for Box.
// PrevRev is the revision the Monitor saw before Rev for that box (Rev-1
// when no change was missed). Gone marks a grant deleted at Rev.
type GrantVersion struct {
	Box     string
	Rev     uint64
	PrevRev uint64
	Grant   box.Grant
	Gone    bool
}

// CodeOf says which grant a code was on a box, as the bridge wrote it to
// Fleetio (the assignment's access code): the typed-code check's key. The
// run reads codes as it goes (Journal.AddCode, with the assignment) and
// Check resolves each assignment to its booking's grant.
type CodeOf struct {
	Box, Code, GrantID string
	Assignment         int64 // the Fleetio assignment the code was read from (0: not known)
}

// appliedRe reads the revision a records_applied event reached (the
// link's "delta revision A to B: ..." or "snapshot revision B in N chunks").
var appliedRe = regexp.MustCompile(`^(?:delta revision \d+ to|snapshot revision) (\d+)`)

// appliedRevision is the revision a records_applied event reached, if it
// says (an import's event does not).
func appliedRevision(e box.Event) (uint64, bool) {
	m := appliedRe.FindStringSubmatch(e.Detail)
	if m == nil {
		return 0, false
	}
	r, err := strconv.ParseUint(m[1], 10, 64)
	return r, err == nil
}

// typedRelease is how long after a code was typed (real time) its releases
// may be attributed to it: the '#' press to the slot_released commit is
// milliseconds; a loaded 2-core machine is given seconds.
const typedRelease = 5 * time.Second

// JudgeOracle replays the grant log against every release by code. events
// are each box's events in seq order (as the cloud holds them); seen maps
// (box, seq) to the real time the Monitor first saw the event, for the
// typed-code check (events not seen are not attributed to a typing).
func JudgeOracle(versions []GrantVersion, events map[string][]box.Event, typed []Typed, codes []CodeOf, seen map[string]map[uint64]time.Time) []Breach {
	type key struct{ box, grant string }
	hist := map[key][]GrantVersion{}
	for _, v := range versions {
		k := key{v.Box, v.Grant.ID}
		hist[k] = append(hist[k], v)
	}
	for _, h := range hist {
		slices.SortFunc(h, func(a, b GrantVersion) int { return compareU64(a.Rev, b.Rev) })
	}
	var out []Breach
	for boxID, evs := range events {
		var rev uint64
		opens := map[string]map[time.Time]bool{}
		for _, e := range evs {
			if e.Type == box.EventRecordsApplied {
				if r, ok := appliedRevision(e); ok {
					rev = r
				}
				continue
			}
			if e.Type != box.EventSlotReleased || e.Purpose != box.PurposeTake {
				continue
			}
			if opens[e.GrantID] == nil {
				opens[e.GrantID] = map[time.Time]bool{}
			}
			opens[e.GrantID][e.Time] = true
			uses := len(opens[e.GrantID])
			h := hist[key{boxID, e.GrantID}]
			before, after := inForce(h, rev)
			why := releaseInvalid(before, e, uses)
			if why != "" && after != nil && after.PrevRev < rev {
				// rev fell in a gap the Monitor missed: the next version
				// seen may be what the box held.
				if releaseInvalid(after, e, uses) == "" {
					why = ""
				}
			}
			if why != "" {
				out = append(out, Breach{Check: "oracle", Box: boxID, Detail: fmt.Sprintf(
					"slot %d released (seq %d, box clock %s, box revision %d) for grant %q: %s",
					e.Slot, e.Seq, e.Time.Format(time.RFC3339Nano), rev, e.GrantID, why)})
			}
		}
	}
	byGrant := map[[2]string][]GrantVersion{}
	for k, h := range hist {
		byGrant[[2]string{k.box, k.grant}] = h
	}
	out = append(out, judgeTyped(events, typed, codes, seen, byGrant)...)
	return out
}

// inForce is the version at or below rev (nil: none) and the first one
// above it (nil: none).
func inForce(h []GrantVersion, rev uint64) (before, after *GrantVersion) {
	for i := range h {
		if h[i].Rev <= rev {
			before = &h[i]
		} else {
			return before, &h[i]
		}
	}
	return before, nil
}

// releaseInvalid says why release e (the uses-th open of its grant) was not
// valid under version v, "" if it was.
func releaseInvalid(v *GrantVersion, e box.Event, uses int) string {
	switch g := v; {
	case g == nil:
		return "no such grant on the box at that revision (never sent by the cloud)"
	case g.Gone:
		return fmt.Sprintf("the grant was deleted at revision %d", g.Rev)
	case g.Grant.Revoked:
		return fmt.Sprintf("the grant was revoked at revision %d, which the box had applied", g.Rev)
	case !g.Grant.From.IsZero() && e.Time.Before(g.Grant.From):
		return fmt.Sprintf("before its window, which starts %s", g.Grant.From.Format(time.RFC3339))
	case !g.Grant.Until.IsZero() && !e.Time.Before(g.Grant.Until):
		return fmt.Sprintf("after its window, which ended %s", g.Grant.Until.Format(time.RFC3339))
	case g.Grant.MaxUses > 0 && uses > g.Grant.MaxUses:
		return fmt.Sprintf("open %d of a grant limited to %d uses", uses, g.Grant.MaxUses)
	}
	return ""
}

// judgeTyped: a release the run's typing caused must be of a grant the
// typed code was a code of, on that box: the code's own grant, or a
// booking of the same driver when the code is a driver code. A code that
// was no grant's code on the box (a wrong code on purpose, an old PIN, a
// PIN of another box) must open nothing; and a code of a grant the cloud
// never had is a breach whenever it opened anything.
//
// Attribution: the run types at one box one code at a time, and a box
// handles them in order, so each open (the releases of one commit, which
// share their time stamp) is matched in order to one typing whose span
// holds the moment the Monitor saw it: begun before, ended at most
// typedRelease before. Of those, the first whose code explains the open
// is taken, and it and every typing before it are used up. An open no
// candidate explains is a breach; an open with no candidate (seen late,
// after a kill) is not attributable and not judged.
func judgeTyped(events map[string][]box.Event, typed []Typed, codes []CodeOf, seen map[string]map[uint64]time.Time, hist map[[2]string][]GrantVersion) []Breach {
	grantsOf := map[[2]string][]string{}
	for _, c := range codes {
		k := [2]string{c.Box, c.Code}
		if !slices.Contains(grantsOf[k], c.GrantID) {
			grantsOf[k] = append(grantsOf[k], c.GrantID)
		}
	}
	byBox := map[string][]Typed{}
	for _, t := range typed {
		byBox[t.Box] = append(byBox[t.Box], t)
	}
	var out []Breach
	for boxID, ts := range byBox {
		slices.SortFunc(ts, func(a, b Typed) int { return a.Began.Compare(b.Began) })
		next := 0 // typings before next are used up
		var lastOpen time.Time
		for _, e := range events[boxID] {
			if e.Type != box.EventSlotReleased || e.Purpose != box.PurposeTake {
				continue
			}
			if e.Time.Equal(lastOpen) {
				continue // another slot of the same open
			}
			lastOpen = e.Time
			at, ok := seen[boxID][e.Seq]
			if !ok {
				continue
			}
			var cands []int
			for i := next; i < len(ts) && !ts[i].Began.After(at); i++ {
				if at.Sub(ts[i].At) <= typedRelease {
					cands = append(cands, i)
				}
			}
			if len(cands) == 0 {
				continue // not a keypad release the run typed (or not attributable)
			}
			why := ""
			for _, i := range cands {
				t := ts[i]
				gs, isCode := grantsOf[[2]string{boxID, t.Code}]
				w := ""
				if !isCode {
					w = fmt.Sprintf("a code that is no grant's code on the box (typed %s, meant assignment %d) was followed by slot %d released (seq %d) for grant %q",
						t.Began.Format(time.RFC3339Nano), t.Meant, e.Slot, e.Seq, e.GrantID)
				} else if inv := typedInvalid(hist, boxID, gs, e.GrantID); inv != "" {
					w = fmt.Sprintf("the code typed %s (meant assignment %d) opened slot %d (seq %d) for grant %q: %s",
						t.Began.Format(time.RFC3339Nano), t.Meant, e.Slot, e.Seq, e.GrantID, inv)
				}
				if w == "" {
					why, next = "", i+1
					break
				}
				if why == "" {
					why = w
				}
			}
			if why != "" {
				out = append(out, Breach{Check: "oracle", Box: boxID, Detail: why})
			}
		}
	}
	return out
}

// typedInvalid says why a code of grants gs may not release grant g on
// boxID ("" if it may): g is one of gs, or a booking carrying the driver
// ref of a driver-code grant among gs; and every grant of gs was one the
// cloud held.
func typedInvalid(hist map[[2]string][]GrantVersion, boxID string, gs []string, g string) string {
	for _, c := range gs {
		if len(hist[[2]string{boxID, c}]) == 0 {
			return fmt.Sprintf("the code is of grant %q, which the cloud never held", c)
		}
	}
	if slices.Contains(gs, g) {
		return ""
	}
	for _, c := range gs {
		for _, dv := range hist[[2]string{boxID, c}] {
			if dv.Grant.Kind != box.KindDriverCode || dv.Grant.DriverRef == "" {
				continue
			}
			for _, bv := range hist[[2]string{boxID, g}] {
				if bv.Grant.DriverRef == dv.Grant.DriverRef {
					return ""
				}
			}
		}
	}
	return fmt.Sprintf("the code is of grant(s) %s, not of it", strings.Join(gs, ", "))
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
