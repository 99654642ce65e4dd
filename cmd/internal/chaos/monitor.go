package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
)

// Bounds of the Monitor.
const (
	// cloudPollEvery spaces the Monitor's reads of the cloud's records:
	// often enough that two changes to one box between two reads are
	// rare (the oracle judges a missed revision by both neighbours), rare
	// enough not to load the bridge on 2 cores.
	cloudPollEvery = 100 * time.Millisecond
	// lockMargin is what a lock may stay energised past the box's max
	// release time before it is a breach: the Watch message that says it
	// relocked crosses a socket and the depot on a loaded machine.
	lockMargin = 3 * time.Second
	// maxReleaseTime is box.Config's default MaxReleaseTime (10 s), the
	// longest a box's configuration lets a coil stay energised.
	maxReleaseTime = 10 * time.Second
)

// Monitor watches the depot during the run: every event each box shows on
// its socket (with the real time it was first seen), every version of every
// grant the cloud held by revision (the grant log), and how long each lock
// stayed energised. Safe for concurrent use.
type Monitor struct {
	d      *depot.Depot
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	seen     map[string]map[uint64]time.Time // box -> seq -> first seen
	content  map[string]map[uint64]box.Event // box -> seq -> as seen on the socket
	versions []GrantVersion
	lastRev  map[string]uint64
	lastG    map[string]map[string]box.Grant // box -> grant id -> last version seen
	energ    map[[2]any]time.Time            // (box, slot) -> energised since
	breaches []Breach
	errs     int // failed polls (the cloud down during a fault): not breaches
}

// StartMonitor starts watching d until Stop.
func StartMonitor(ctx context.Context, d *depot.Depot) *Monitor {
	ctx, cancel := context.WithCancel(ctx)
	m := &Monitor{d: d, cancel: cancel, done: make(chan struct{}),
		seen: map[string]map[uint64]time.Time{}, content: map[string]map[uint64]box.Event{},
		lastRev: map[string]uint64{}, lastG: map[string]map[string]box.Grant{}, energ: map[[2]any]time.Time{}}
	go m.run(ctx)
	return m
}

// Stop ends the watch and waits for it.
func (m *Monitor) Stop() { m.cancel(); <-m.done }

func (m *Monitor) run(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(cloudPollEvery)
	defer tick.Stop()
	for {
		m.observeBoxes(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-m.d.Changed():
		case <-tick.C:
			m.pollCloud(ctx)
		}
	}
}

// observeBoxes records new events and lock states from the depot's views.
func (m *Monitor) observeBoxes(now time.Time) {
	views := m.d.Boxes()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range views {
		for _, e := range m.d.Events(v.ID) {
			if m.seen[v.ID] == nil {
				m.seen[v.ID], m.content[v.ID] = map[uint64]time.Time{}, map[uint64]box.Event{}
			}
			if _, ok := m.seen[v.ID][e.Seq]; !ok {
				m.seen[v.ID][e.Seq], m.content[v.ID][e.Seq] = now, e
			}
		}
		if v.State == nil {
			continue
		}
		for _, s := range v.State.Slots {
			k := [2]any{v.ID, s.Slot}
			since, on := m.energ[k]
			switch {
			case s.Released && !on:
				m.energ[k] = now
			case !s.Released && on:
				delete(m.energ, k)
				m.lockBreach(v.ID, s.Slot, since, now)
			}
		}
	}
	for k, since := range m.energ {
		if now.Sub(since) > maxReleaseTime+lockMargin {
			m.lockBreach(k[0].(string), k[1].(int), since, now)
			m.energ[k] = now // one breach per overlong stretch, not one per tick
		}
	}
}

// lockBreach records a lock energised too long. Called with m.mu held.
func (m *Monitor) lockBreach(boxID string, slot int, since, now time.Time) {
	if d := now.Sub(since); d > maxReleaseTime+lockMargin {
		m.breaches = append(m.breaches, Breach{Check: "locks", Box: boxID, Detail: fmt.Sprintf(
			"slot %d's lock stayed energised %s from %s (max release time %s + margin %s)",
			slot, d.Round(time.Millisecond), since.Format(time.RFC3339Nano), maxReleaseTime, lockMargin)})
	}
}

// pollCloud reads each box's revision and, for a box whose revision moved,
// its records: a read is kept only if the revision did not move during it.
func (m *Monitor) pollCloud(ctx context.Context) {
	admin := m.d.Admin()
	var boxes []adminapi.BoxInfo
	if err := admin.Do(ctx, http.MethodGet, "/v1/boxes", nil, &boxes); err != nil {
		m.mu.Lock()
		m.errs++
		m.mu.Unlock()
		return
	}
	for _, b := range boxes {
		m.mu.Lock()
		moved := b.Revision != m.lastRev[b.ID]
		m.mu.Unlock()
		if moved {
			m.readRecords(ctx, admin, b.ID)
		}
	}
}

func (m *Monitor) readRecords(ctx context.Context, admin *adminapi.AdminClient, boxID string) {
	rev1, err1 := revisionOf(ctx, admin, boxID)
	recs, err2 := recordsOf(ctx, admin, boxID)
	rev2, err3 := revisionOf(ctx, admin, boxID)
	if err1 != nil || err2 != nil || err3 != nil || rev1 != rev2 {
		return // the next poll reads again
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.lastRev[boxID]
	if rev1 <= prev && prev != 0 {
		return
	}
	last := m.lastG[boxID]
	now := map[string]box.Grant{}
	for _, g := range recs.Grants {
		g.Uses = 0 // the box counts uses; the cloud's copy is not the oracle's business
		now[g.ID] = g
		if old, ok := last[g.ID]; !ok || !grantEqual(old, g) {
			m.versions = append(m.versions, GrantVersion{Box: boxID, Rev: rev1, PrevRev: prev, Grant: g})
		}
	}
	for id, g := range last {
		if _, ok := now[id]; !ok {
			m.versions = append(m.versions, GrantVersion{Box: boxID, Rev: rev1, PrevRev: prev, Grant: g, Gone: true})
		}
	}
	m.lastG[boxID], m.lastRev[boxID] = now, rev1
}

func revisionOf(ctx context.Context, admin *adminapi.AdminClient, boxID string) (uint64, error) {
	var boxes []adminapi.BoxInfo
	if err := admin.Do(ctx, http.MethodGet, "/v1/boxes", nil, &boxes); err != nil {
		return 0, err
	}
	for _, b := range boxes {
		if b.ID == boxID {
			return b.Revision, nil
		}
	}
	return 0, fmt.Errorf("box %s is not registered with the bridge", boxID)
}

func recordsOf(ctx context.Context, admin *adminapi.AdminClient, boxID string) (bridge.RecordsResponse, error) {
	var r bridge.RecordsResponse
	err := admin.Do(ctx, http.MethodGet, "/v1/boxes/"+boxID+"/records", nil, &r)
	return r, err
}

// grantEqual is the protocol's equality of a grant record: every replicated
// field; Uses is the box's own count and is left out.
func grantEqual(a, b box.Grant) bool {
	return a.ID == b.ID && a.Kind == b.Kind && slices.Equal(a.KeyIDs, b.KeyIDs) && a.From.Equal(b.From) &&
		a.Until.Equal(b.Until) && a.MaxUses == b.MaxUses && a.Revoked == b.Revoked && a.Source == b.Source &&
		a.DriverRef == b.DriverRef
}

// snapshot is what Check reads from the Monitor once it has stopped.
func (m *Monitor) snapshot() (versions []GrantVersion, seen map[string]map[uint64]time.Time, content map[string]map[uint64]box.Event, breaches []Breach) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.versions), m.seen, m.content, slices.Clone(m.breaches)
}
