package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// Leak slack: what the bridge's goroutines and fds may grow by between the
// baseline and the end, the same boxes connected, before it is a leak. A
// connection mid-handshake, an idle keep-alive of the admin client and the
// scrape itself come and go; a leak of one per fault or per request grows
// past these in any run of a minute.
const (
	goroutineSlack = 50
	fdSlack        = 20
	// eventPage is how many events one admin read asks for.
	eventPage = 10_000
)

// Baseline is the bridge's goroutines and open fds once every box is
// connected, from its GET /metrics (whatever process serves it).
type Baseline struct {
	Goroutines, FDs float64
}

// TakeBaseline reads the bridge's /metrics.
func TakeBaseline(ctx context.Context, d *depot.Depot) (Baseline, error) {
	m, err := scrape(ctx, d.Admin().Base()+"/metrics")
	if err != nil {
		return Baseline{}, err
	}
	return Baseline{Goroutines: m["go_goroutines"], FDs: m["process_open_fds"]}, nil
}

// scrape reads the unlabelled samples of a Prometheus text answer.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the bridge's metrics at %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the bridge's metrics at %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.Contains(f[0], "{") {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out, sc.Err()
}

// JudgeLeak compares the end's metrics with the baseline.
func JudgeLeak(base, end Baseline) []Breach {
	var out []Breach
	if end.Goroutines > base.Goroutines+goroutineSlack {
		out = append(out, Breach{Check: "leak", Detail: fmt.Sprintf("the bridge has %.0f goroutines, %.0f at the baseline (slack %d)", end.Goroutines, base.Goroutines, goroutineSlack)})
	}
	if end.FDs > base.FDs+fdSlack {
		out = append(out, Breach{Check: "leak", Detail: fmt.Sprintf("the bridge has %.0f open fds, %.0f at the baseline (slack %d)", end.FDs, base.FDs, fdSlack)})
	}
	return out
}

// BoxEnd is what Check gathers from one box and the cloud at the end.
type BoxEnd struct {
	Box          string
	BoxRev       uint64 // the box's applied revision (its status)
	CloudRev     uint64
	BoxKeys      []box.Key
	BoxGrants    []box.Grant
	CloudKeys    []box.Key
	CloudGrants  []box.Grant
	LastSeq      uint64 // the box's last committed seq (its status)
	Outbox       int
	CloudEvents  []box.Event
	LockReleased []int // slots whose lock the latest Watch shows energised
}

// JudgeStore: the box's records equal the cloud's at its last revision.
func JudgeStore(e BoxEnd) []Breach {
	var out []Breach
	add := func(f string, a ...any) {
		out = append(out, Breach{Check: "store", Box: e.Box, Detail: fmt.Sprintf(f, a...)})
	}
	if e.BoxRev != e.CloudRev {
		add("the box is at revision %d, the cloud at %d", e.BoxRev, e.CloudRev)
	}
	bk, ck := map[string]box.Key{}, map[string]box.Key{}
	for _, k := range e.BoxKeys {
		bk[k.ID] = k
	}
	for _, k := range e.CloudKeys {
		ck[k.ID] = k
		if b, ok := bk[k.ID]; !ok {
			add("key %s is in the cloud, not on the box", k.ID)
		} else if b.Slot != k.Slot || b.FobUID != k.FobUID {
			add("key %s: box slot %d fob %s, cloud slot %d fob %s", k.ID, b.Slot, b.FobUID, k.Slot, k.FobUID)
		}
	}
	for id := range bk {
		if _, ok := ck[id]; !ok {
			add("key %s is on the box, not in the cloud", id)
		}
	}
	bg, cg := map[string]box.Grant{}, map[string]box.Grant{}
	for _, g := range e.BoxGrants {
		bg[g.ID] = g
	}
	for _, g := range e.CloudGrants {
		cg[g.ID] = g
		if b, ok := bg[g.ID]; !ok {
			add("grant %s is in the cloud, not on the box", g.ID)
		} else if !grantEqual(b, g) {
			add("grant %s differs: box %+v, cloud %+v", g.ID, b, g)
		}
	}
	for id := range bg {
		if _, ok := cg[id]; !ok {
			add("grant %s is on the box, not in the cloud", id)
		}
	}
	return out
}

// JudgeEvents: the cloud holds seq 1..LastSeq once each, the outbox is
// empty, and every event seen on the socket is in the cloud unchanged.
func JudgeEvents(e BoxEnd, seen map[uint64]box.Event) []Breach {
	var out []Breach
	add := func(f string, a ...any) {
		out = append(out, Breach{Check: "events", Box: e.Box, Detail: fmt.Sprintf(f, a...)})
	}
	if e.Outbox != 0 {
		add("%d events still in the box's outbox", e.Outbox)
	}
	got := map[uint64]box.Event{}
	for _, ev := range e.CloudEvents {
		if _, dup := got[ev.Seq]; dup {
			add("seq %d is in the cloud twice", ev.Seq)
		}
		got[ev.Seq] = ev
	}
	for s := uint64(1); s <= e.LastSeq; s++ {
		if _, ok := got[s]; !ok {
			add("seq %d (of 1..%d) never reached the cloud", s, e.LastSeq)
		}
	}
	if n := uint64(len(got)); n > e.LastSeq {
		add("the cloud holds %d seqs, the box committed %d", n, e.LastSeq)
	}
	for s, ev := range seen {
		c, ok := got[s]
		if ok && !sameEvent(c, ev) {
			add("seq %d differs: on the box %+v, in the cloud %+v", s, ev, c)
		}
	}
	return out
}

// sameEvent compares what the cloud keeps of an event (Detail may be cut
// to the cloud's bound, so a prefix).
func sameEvent(cloud, boxe box.Event) bool {
	return cloud.Type == boxe.Type && cloud.Time.Equal(boxe.Time) && cloud.Slot == boxe.Slot &&
		cloud.KeyID == boxe.KeyID && cloud.GrantID == boxe.GrantID && cloud.Purpose == boxe.Purpose &&
		cloud.Reason == boxe.Reason && strings.HasPrefix(boxe.Detail, strings.TrimSuffix(cloud.Detail, "…"))
}

// JudgeLocks: no lock energised at the end.
func JudgeLocks(e BoxEnd) []Breach {
	var out []Breach
	for _, s := range e.LockReleased {
		out = append(out, Breach{Check: "locks", Box: e.Box, Detail: fmt.Sprintf("slot %d's lock is energised at the end", s)})
	}
	return out
}

// JudgeFleetio: an active booking's assignment carries its access link,
// instructions and a code; an ended one whose assignment still exists has
// them cleared.
func JudgeFleetio(assignments []fleetio.VehicleAssignment, rows []bridge.BookingRow) []Breach {
	bks := map[int64]*bridge.Booking{}
	for _, r := range rows {
		if r.Booking != nil {
			bks[r.Booking.AssignmentID] = r.Booking
		}
	}
	var out []Breach
	str := func(a fleetio.VehicleAssignment, k string) string { s, _ := a.CustomFields[k].(string); return s }
	for _, a := range assignments {
		bk := bks[a.ID]
		if bk == nil {
			continue // unlinked, a pending reservation, or never booked
		}
		add := func(f string, x ...any) {
			out = append(out, Breach{Check: "fleetio", Box: bk.BoxID, Detail: fmt.Sprintf("assignment %d (booking %s): ", a.ID, bk.State) + fmt.Sprintf(f, x...)})
		}
		link, instr, code := str(a, fleetio.FieldAccessLink), str(a, fleetio.FieldAccessInstructions), str(a, fleetio.FieldAccessCode)
		switch bk.State {
		case bookings.BookingActive:
			if link != bk.AccessLink {
				add("access link %q, the booking's is %q", link, bk.AccessLink)
			}
			if !strings.Contains(instr, bk.AccessLink) {
				add("access instructions %q do not carry the booking's link", instr)
			}
			if box.ValidCode(code) != nil {
				add("access code field is not a code the keypad takes")
			}
		case bookings.BookingEnded:
			if link != "" || instr != "" || code != "" {
				add("custom fields not cleared after the booking ended")
			}
		}
	}
	return out
}

// Check runs every end check once the run has healed every fault and the
// depot is quiescent: it appends breaches to s.Breaches and fills s.Grants,
// s.Events and s.Opened. It errs only if it could not check.
func Check(ctx context.Context, d *depot.Depot, j *Journal, m *Monitor, base Baseline, s *Summary) error {
	m.Stop()
	versions, seen, content, mb := m.snapshot()
	s.Breaches = append(s.Breaches, mb...)
	admin := d.Admin()
	events := map[string][]box.Event{}
	for _, v := range d.Boxes() {
		b, err := d.Box(v.ID)
		if err != nil {
			return err
		}
		c := b.Client()
		st, err := c.Status(ctx)
		if err != nil {
			return fmt.Errorf("checking box %s: its status: %w", v.ID, err)
		}
		e := BoxEnd{Box: v.ID, BoxRev: st.Revision, LastSeq: st.LastSeq, Outbox: st.Outbox}
		if e.BoxKeys, err = c.Keys(ctx); err != nil {
			return fmt.Errorf("checking box %s: its keys: %w", v.ID, err)
		}
		if e.BoxGrants, err = c.Grants(ctx); err != nil {
			return fmt.Errorf("checking box %s: its grants: %w", v.ID, err)
		}
		if e.CloudRev, err = revisionOf(ctx, admin, v.ID); err != nil {
			return fmt.Errorf("checking box %s: %w", v.ID, err)
		}
		recs, err := recordsOf(ctx, admin, v.ID)
		if err != nil {
			return fmt.Errorf("checking box %s: the cloud's records: %w", v.ID, err)
		}
		e.CloudKeys, e.CloudGrants = recs.Keys, recs.Grants
		for after := uint64(0); ; {
			var page []box.Event
			if err := admin.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/boxes/%s/events?after=%d&limit=%d", v.ID, after, eventPage), nil, &page); err != nil {
				return fmt.Errorf("checking box %s: the cloud's events: %w", v.ID, err)
			}
			e.CloudEvents = append(e.CloudEvents, page...)
			if len(page) < eventPage {
				break
			}
			after = page[len(page)-1].Seq
		}
		if v.State != nil {
			for _, sl := range v.State.Slots {
				if sl.Released {
					e.LockReleased = append(e.LockReleased, sl.Slot)
				}
			}
		}
		s.Breaches = append(s.Breaches, JudgeStore(e)...)
		s.Breaches = append(s.Breaches, JudgeEvents(e, content[v.ID])...)
		s.Breaches = append(s.Breaches, JudgeLocks(e)...)
		s.Grants += len(e.CloudGrants)
		s.Events += len(e.CloudEvents)
		for _, ev := range e.CloudEvents {
			if ev.Type == box.EventSlotReleased && ev.Purpose == box.PurposeTake {
				s.Opened++
			}
		}
		events[v.ID] = e.CloudEvents
	}
	rows, err := d.Bookings(ctx)
	if err != nil {
		return fmt.Errorf("checking the bookings: %w", err)
	}
	assignments := d.Fleetio().Assignments()
	codes := bookingCodes(j.Codes(), assignments, rows)
	s.Breaches = append(s.Breaches, JudgeFleetio(assignments, rows)...)
	s.Breaches = append(s.Breaches, JudgeOracle(versions, events, j.TypedCodes(), codes, seen)...)
	end, err := TakeBaseline(ctx, d)
	if err != nil {
		return errors.Join(errors.New("checking for leaks"), err)
	}
	s.Breaches = append(s.Breaches, JudgeLeak(base, end)...)
	slices.SortStableFunc(s.Breaches, func(a, b Breach) int { return strings.Compare(a.Check, b.Check) })
	return nil
}

// bookingCodes is every code a booking had during the run: those the run
// read as it went (an ended booking's code is cleared from Fleetio by the
// end) and those in Fleetio's access-code fields now, each resolved from
// its assignment to its booking's box and grant.
func bookingCodes(read []CodeOf, assignments []fleetio.VehicleAssignment, rows []bridge.BookingRow) []CodeOf {
	grantOf := map[int64]bridge.BookingRow{}
	for _, r := range rows {
		if r.Booking != nil {
			grantOf[r.Booking.AssignmentID] = r
		}
	}
	for _, a := range assignments {
		if code, _ := a.CustomFields[fleetio.FieldAccessCode].(string); code != "" {
			read = append(read, CodeOf{Code: code, Assignment: a.ID})
		}
	}
	var out []CodeOf
	for _, c := range read {
		r, ok := grantOf[c.Assignment]
		if !ok {
			// A deleted assignment's booking may be gone from the list;
			// its grant is named after the assignment all the same.
			if c.Box == "" {
				continue
			}
			c.GrantID = bookings.GrantID(c.Assignment)
		} else {
			if c.Box == "" {
				c.Box = r.BoxID
			}
			c.GrantID = r.GrantID
		}
		out = append(out, c)
	}
	return out
}
