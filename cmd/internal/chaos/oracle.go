package chaos

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
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
// Fleetio (the assignment's access code): the typed-code check's key.
type CodeOf struct {
	Box, Code, GrantID string
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
	out = append(out, judgeTyped(events, typed, codes, seen, hist2valid(hist))...)
	return out
}

// hist2valid gives judgeTyped a way to ask whether a grant ever existed.
func hist2valid[K comparable](h map[K][]GrantVersion) func(boxID, grant string) bool {
	known := map[[2]string]bool{}
	for _, vs := range h {
		for _, v := range vs {
			known[[2]string{v.Box, v.Grant.ID}] = true
		}
	}
	return func(boxID, grant string) bool { return known[[2]string{boxID, grant}] }
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

// judgeTyped: a code typed that was no grant's code on the box (a wrong
// code on purpose, or a PIN of another box) must not be followed, within
// typedRelease, by a release the Monitor saw and that no other typing on
// that box explains; and a code of a grant the cloud never had is a breach
// whenever it opened anything. Releases are attributed to the typing just
// before them on the same box.
func judgeTyped(events map[string][]box.Event, typed []Typed, codes []CodeOf, seen map[string]map[uint64]time.Time, known func(boxID, grant string) bool) []Breach {
	grantOf := map[[2]string]string{}
	for _, c := range codes {
		grantOf[[2]string{c.Box, c.Code}] = c.GrantID
	}
	byBox := map[string][]Typed{}
	for _, t := range typed {
		byBox[t.Box] = append(byBox[t.Box], t)
	}
	var out []Breach
	for boxID, ts := range byBox {
		slices.SortFunc(ts, func(a, b Typed) int { return a.At.Compare(b.At) })
		for _, e := range events[boxID] {
			if e.Type != box.EventSlotReleased || e.Purpose != box.PurposeTake {
				continue
			}
			at, ok := seen[boxID][e.Seq]
			if !ok {
				continue
			}
			// The last typing at or before the Monitor saw the release.
			i := -1
			for j, t := range ts {
				if t.At.After(at) {
					break
				}
				i = j
			}
			if i < 0 || at.Sub(ts[i].At) > typedRelease {
				continue // not a keypad release the run typed (or not attributable)
			}
			t := ts[i]
			g, isCode := grantOf[[2]string{boxID, t.Code}]
			switch {
			case !isCode:
				out = append(out, Breach{Check: "oracle", Box: boxID, Detail: fmt.Sprintf(
					"a code that is no grant's code on the box (typed %s, meant assignment %d) was followed by slot %d released (seq %d) for grant %q",
					t.At.Format(time.RFC3339Nano), t.Meant, e.Slot, e.Seq, e.GrantID)})
			case !known(boxID, g):
				out = append(out, Breach{Check: "oracle", Box: boxID, Detail: fmt.Sprintf(
					"a code of grant %q, which the cloud never held, opened slot %d (seq %d)", g, e.Slot, e.Seq)})
			}
		}
	}
	return out
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
