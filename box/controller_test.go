package box_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/box/boxtest"
	"github.com/smartbox-oss/smartbox/store"
)

// The controller's tests run it on a real bbolt store; the hardware behind
// box.Locks and box.KeySensors is a recorder (the pins themselves are tested
// in hal/ and sim/, and end to end in cmd/smartboxd).

var (
	t0    = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	built = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

type release struct {
	slot int
	d    time.Duration
}

// slotsHW records what the controller does to the locks, and plays the key
// sensors.
type slotsHW struct {
	mu       sync.Mutex
	released map[int]bool
	present  map[int]bool
	releases []release
	lockAlls int
	leds     map[int]bool
	failLock bool
}

func newSlotsHW(n int) *slotsHW {
	h := &slotsHW{released: map[int]bool{}, present: map[int]bool{}, leds: map[int]bool{}}
	for i := 1; i <= n; i++ {
		h.present[i] = true
	}
	return h
}

func (h *slotsHW) Release(slot int, d time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failLock {
		return fmt.Errorf("relay driver not answering")
	}
	h.released[slot] = true
	h.releases = append(h.releases, release{slot, d})
	return nil
}
func (h *slotsHW) Lock(slot int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released[slot] = false
	return nil
}
func (h *slotsHW) LockAll() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lockAlls++
	for s := range h.released {
		h.released[s] = false
	}
	return nil
}
func (h *slotsHW) Present(slot int) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.present[slot], nil
}
func (h *slotsHW) SetSlot(slot int, on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leds[slot] = on
	return nil
}
func (h *slotsHW) isReleased(slot int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.released[slot]
}
func (h *slotsHW) openSlots() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int
	for s := 1; s <= 64; s++ {
		if h.released[s] {
			out = append(out, s)
		}
	}
	return out
}

// flakyStore is the store on an SD card that can start failing: while
// failing is set, every Commit errors and writes nothing.
type flakyStore struct {
	box.Store
	failing atomic.Bool
}

var errDisk = errors.New("disk I/O error")

func (f *flakyStore) Commit(c box.Change) ([]box.Event, error) {
	if f.failing.Load() {
		return nil, errDisk
	}
	return f.Store.Commit(c)
}

type rig struct {
	t     *testing.T
	path  string
	cfg   box.Config
	st    *store.Store
	flaky *flakyStore // what the controller writes through
	clock *boxtest.Clock
	hw    *slotsHW
	c     *box.Controller
	stop  context.CancelFunc
	errc  chan error
	seen  uint64 // events already looked at by newEvents
}

func newRig(t *testing.T, cfg box.Config, b store.Batch) *rig {
	t.Helper()
	r := &rig{t: t, path: filepath.Join(t.TempDir(), "box.db"), cfg: cfg, clock: boxtest.NewClock(t0), hw: newSlotsHW(12)}
	if r.cfg.BuildTime.IsZero() {
		r.cfg.BuildTime = built
	}
	if r.cfg.LockoutBudget == 0 {
		// Most tests are of the tarpit alone; budget_test.go sets the
		// budget it tests.
		r.cfg.LockoutBudget = tarpitOnly
	}
	st, err := store.Open(r.path, store.Options{BoxID: "box-1", Now: r.clock.Now})
	require.NoError(t, err)
	r.st = st
	if len(b.Keys)+len(b.Grants) > 0 {
		_, err = st.Apply(b)
		require.NoError(t, err)
	}
	r.start()
	t.Cleanup(r.shutdown)
	return r
}

func (r *rig) start() {
	r.flaky = &flakyStore{Store: r.st}
	c, err := box.New(r.cfg, r.flaky, box.Hardware{Locks: r.hw, Sensors: r.hw, LEDs: r.hw}, r.clock, nil)
	require.NoError(r.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r.c, r.stop, r.errc = c, cancel, make(chan error, 1)
	go func() { r.errc <- c.Run(ctx) }()
	c.Flush()
}

func (r *rig) shutdown() {
	if r.stop == nil {
		return
	}
	r.stop()
	require.NoError(r.t, <-r.errc)
	r.stop = nil
	require.NoError(r.t, r.st.Close())
}

// restart stops the controller and the store and opens both again, as a
// power cycle would.
func (r *rig) restart() {
	r.shutdown()
	st, err := store.Open(r.path, store.Options{BoxID: "box-1", Now: r.clock.Now})
	require.NoError(r.t, err)
	r.st = st
	r.start()
}

// lockout is the lockout on disk.
func (r *rig) lockout() box.Lockout {
	r.t.Helper()
	lo, err := r.st.Lockout()
	require.NoError(r.t, err)
	return lo
}

func (r *rig) typeKeys(s string) {
	for _, k := range s {
		r.c.Press(k)
	}
	r.c.Flush()
}

func (r *rig) sense(slot int, present bool) {
	r.hw.mu.Lock()
	r.hw.present[slot] = present
	r.hw.mu.Unlock()
	r.c.KeySensed(slot, present)
	r.c.Flush()
}

func (r *rig) advance(d time.Duration) {
	r.clock.Advance(d)
	r.c.Flush()
}

// newEvents returns the events committed since the last call.
func (r *rig) newEvents() []box.Event {
	evs, err := r.st.Events(r.seen, 10000)
	require.NoError(r.t, err)
	if len(evs) > 0 {
		r.seen = evs[len(evs)-1].Seq
	}
	return evs
}

func types(evs []box.Event) []box.EventType {
	out := make([]box.EventType, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func (r *rig) expect(want ...box.EventType) []box.Event {
	r.t.Helper()
	evs := r.newEvents()
	require.Equal(r.t, append([]box.EventType{}, want...), types(evs), "events: %+v", evs)
	return evs
}

func (r *rig) grant(id string) box.Grant {
	gs, err := r.st.Grants()
	require.NoError(r.t, err)
	for _, g := range gs {
		if g.ID == id {
			return g
		}
	}
	r.t.Fatalf("no grant %s", id)
	return box.Grant{}
}

func keys(n int) []box.Key {
	var ks []box.Key
	for i := 1; i <= n; i++ {
		ks = append(ks, box.Key{ID: fmt.Sprintf("k%d", i), Name: fmt.Sprintf("Van %d", i),
			FobUID: fmt.Sprintf("01000000%02X", i), Slot: i})
	}
	return ks
}

func booking(id, code string, keyIDs ...string) box.GrantPut {
	return box.GrantPut{Grant: box.Grant{ID: id, Kind: box.KindBooking, KeyIDs: keyIDs, Source: "test"}, Code: code}
}

func TestBookingPINOpensItsSlotAndTheKeyIsTaken(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(4), Grants: []box.GrantPut{booking("g1", "123456", "k2")}})
	r.expect(box.EventBoxStarted)
	require.Equal(t, 1, r.hw.lockAlls, "every lock de-energised at start")

	r.typeKeys("123456#")
	evs := r.expect(box.EventCodeAccepted, box.EventSlotReleased)
	require.Equal(t, "g1", evs[0].GrantID)
	require.Equal(t, 2, evs[1].Slot)
	require.Equal(t, "k2", evs[1].KeyID)
	require.Equal(t, box.PurposeTake, evs[1].Purpose)
	require.Equal(t, []int{2}, r.hw.openSlots())
	require.Equal(t, 5*time.Second, r.hw.releases[0].d)
	require.True(t, r.hw.leds[2], "the LED shows which slot is open")
	require.Equal(t, 1, r.grant("g1").Uses)

	r.sense(2, false)
	evs = r.expect(box.EventKeyTaken, box.EventSlotRelocked)
	require.Equal(t, "k2", evs[0].KeyID)
	require.Equal(t, box.ReasonKeyTaken, evs[1].Reason)
	require.Empty(t, r.hw.openSlots())
	require.False(t, r.hw.leds[2])
	require.Greater(t, evs[1].Seq, evs[0].Seq)
}

func TestWindowEdges(t *testing.T) {
	for _, tc := range []struct {
		name        string
		from, until time.Time
		want        box.Reason // "" = opens
	}{
		{"no window", time.Time{}, time.Time{}, ""},
		{"starts now", t0, t0.Add(time.Hour), ""},
		{"starts in a second", t0.Add(time.Second), t0.Add(time.Hour), box.ReasonNotYetValid},
		{"ends now", t0.Add(-time.Hour), t0, box.ReasonExpired},
		{"ends in a nanosecond", t0.Add(-time.Hour), t0.Add(1), ""},
		{"open start", time.Time{}, t0.Add(time.Minute), ""},
		{"open end, started", t0.Add(-time.Minute), time.Time{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := booking("g1", "123456", "k1")
			g.From, g.Until = tc.from, tc.until
			r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{g}})
			r.newEvents()
			r.typeKeys("123456#")
			if tc.want == "" {
				r.expect(box.EventCodeAccepted, box.EventSlotReleased)
				return
			}
			evs := r.expect(box.EventCodeRefused)
			require.Equal(t, tc.want, evs[0].Reason)
			require.Equal(t, "g1", evs[0].GrantID)
			require.Zero(t, evs[0].Failures, "a real code out of its window is no guess")
			require.Empty(t, r.hw.openSlots())
		})
	}
}

func TestUseLimitAndRevocation(t *testing.T) {
	g := booking("g1", "123456", "k1")
	g.MaxUses = 2
	rv := booking("g2", "654321", "k2")
	rv.Revoked = true
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(2), Grants: []box.GrantPut{g, rv}})
	r.newEvents()
	for i := 1; i <= 2; i++ {
		r.typeKeys("123456#")
		r.expect(box.EventCodeAccepted, box.EventSlotReleased)
		r.sense(1, false)
		r.sense(1, true) // seated again by hand: the sensor does not care why
		r.newEvents()
		require.Equal(t, i, r.grant("g1").Uses)
		r.advance(time.Second)
	}
	r.typeKeys("123456#")
	require.Equal(t, box.ReasonUsedUp, r.expect(box.EventCodeRefused)[0].Reason)

	r.typeKeys("654321#")
	require.Equal(t, box.ReasonRevoked, r.expect(box.EventCodeRefused)[0].Reason)
	require.Empty(t, r.hw.openSlots())
}

func TestLockoutGrowsAndSurvivesRestart(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
	r.newEvents()
	r.typeKeys("000000#")
	evs := r.expect(box.EventCodeRefused)
	require.Equal(t, box.ReasonUnknownCode, evs[0].Reason)
	require.Equal(t, 1, evs[0].Failures)
	for i := 2; i <= 4; i++ {
		r.typeKeys("000000#")
		r.expect() // merged into the first (see TestRefusalsMerged)...
		require.Equal(t, i, r.lockout().Failures, "...but the count is on disk at every wrong code")
	}
	r.typeKeys("000000#")
	evs = r.expect(box.EventLockout)
	require.Equal(t, t0.Add(30*time.Second), evs[0].Until)
	require.Equal(t, 5, evs[0].Failures)

	// During the wait even the right code is refused, and not looked up.
	r.typeKeys("123456#")
	evs = r.expect(box.EventCodeRefused)
	require.Equal(t, box.ReasonLockedOut, evs[0].Reason)
	require.Equal(t, t0.Add(30*time.Second), evs[0].Until)
	require.Empty(t, r.hw.openSlots())

	// A power cycle does not reset it (and closes the merged refusals).
	r.restart()
	evs = r.expect(box.EventRefusalsMerged, box.EventBoxStopped, box.EventBoxStarted)
	require.Equal(t, box.ReasonUnknownCode, evs[0].Reason)
	require.Equal(t, 4, evs[0].Count)
	r.typeKeys("123456#")
	require.Equal(t, box.ReasonLockedOut, r.expect(box.EventCodeRefused)[0].Reason)

	// After it, one more wrong code makes the wait twice as long.
	r.advance(30 * time.Second)
	r.typeKeys("111111#")
	evs = r.expect(box.EventCodeRefused, box.EventLockout)
	require.Equal(t, r.clock.Now().Add(time.Minute), evs[1].Until)

	// A good code after the wait opens, and forgives nothing.
	r.advance(time.Minute)
	r.typeKeys("123456#")
	r.expect(box.EventCodeAccepted, box.EventSlotReleased)
	require.Equal(t, 6, r.lockout().Failures)
}

func TestKeypadEntry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []any // string: keys typed; time.Duration: time passes
		want  box.EventType
		why   box.Reason
	}{
		{"plain", []any{"123456#"}, box.EventCodeAccepted, ""},
		{"star clears", []any{"99*123456#"}, box.EventCodeAccepted, ""},
		{"pause under the timeout", []any{"123", 9 * time.Second, "456#"}, box.EventCodeAccepted, ""},
		{"inactivity clears", []any{"123", 10 * time.Second, "456#"}, box.EventCodeRefused, box.ReasonUnknownCode},
		{"too long", []any{"12345612345671234#"}, box.EventCodeRefused, box.ReasonTooLong},
		{"right code after a long one", []any{"12345612345671234", "*123456#"}, box.EventCodeAccepted, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
			r.newEvents()
			for _, s := range tc.steps {
				switch s := s.(type) {
				case string:
					r.typeKeys(s)
				case time.Duration:
					r.advance(s)
				}
			}
			evs := r.newEvents()
			require.NotEmpty(t, evs)
			require.Equal(t, tc.want, evs[0].Type, "%+v", evs)
			require.Equal(t, tc.why, evs[0].Reason)
		})
	}

	t.Run("lone # does nothing", func(t *testing.T) {
		r := newRig(t, box.Config{}, store.Batch{})
		r.newEvents()
		r.typeKeys("#*#")
		require.Empty(t, r.newEvents())
	})
}

func TestDriverCodeOpensEveryKeyOfTheDriver(t *testing.T) {
	dc := box.GrantPut{Grant: box.Grant{ID: "d7", Kind: box.KindDriverCode, DriverRef: "driver-7"}, Code: "9999"}
	b3 := booking("b3", "333333", "k3")
	b3.DriverRef = "driver-7"
	b4 := booking("b4", "444444", "k4")
	b4.DriverRef = "driver-7"
	b4.From, b4.Until = t0.Add(time.Hour), t0.Add(3*time.Hour)
	other := booking("b5", "555555", "k5")
	other.DriverRef = "driver-8"
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(5), Grants: []box.GrantPut{dc, b3, b4, other}})
	r.newEvents()

	r.typeKeys("9999#")
	r.expect(box.EventCodeAccepted, box.EventSlotReleased)
	require.Equal(t, []int{3}, r.hw.openSlots(), "only the driver's active booking; b4 has not started")
	r.advance(5 * time.Second) // not taken: relocks
	r.expect(box.EventSlotRelocked)

	r.advance(time.Hour)
	r.typeKeys("9999#")
	evs := r.expect(box.EventCodeAccepted, box.EventSlotReleased, box.EventSlotReleased)
	require.Equal(t, []int{3, 4}, r.hw.openSlots())
	require.Equal(t, "b3", evs[1].GrantID)
	require.Equal(t, "b4", evs[2].GrantID)
	require.Equal(t, 2, r.grant("d7").Uses)
	require.Equal(t, 1, r.grant("b4").Uses)

	// Keys leave one after the other; each slot relocks on its own.
	r.sense(4, false)
	r.expect(box.EventKeyTaken, box.EventSlotRelocked)
	require.Equal(t, []int{3}, r.hw.openSlots())
}

func TestDriverCodeWithItsOwnKeys(t *testing.T) {
	dc := box.GrantPut{Grant: box.Grant{ID: "d1", Kind: box.KindDriverCode, DriverRef: "d", KeyIDs: []string{"k1", "k2"}}, Code: "2468"}
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(2), Grants: []box.GrantPut{dc}})
	r.newEvents()
	r.typeKeys("2468#")
	r.expect(box.EventCodeAccepted, box.EventSlotReleased, box.EventSlotReleased)
	require.Equal(t, []int{1, 2}, r.hw.openSlots())
}

func TestSlotNotOpenedInTimeRelocks(t *testing.T) {
	r := newRig(t, box.Config{ReleaseTime: 3 * time.Second}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
	r.newEvents()
	r.typeKeys("123456#")
	r.expect(box.EventCodeAccepted, box.EventSlotReleased)
	r.advance(2999 * time.Millisecond)
	require.Equal(t, []int{1}, r.hw.openSlots())
	r.advance(time.Millisecond)
	evs := r.expect(box.EventSlotRelocked)
	require.Equal(t, box.ReasonTimeout, evs[0].Reason)
	require.Empty(t, r.hw.openSlots())

	// The key leaving later is a forced slot, not a take.
	r.sense(1, false)
	r.expect(box.EventSlotUnexpected)
}

func TestReleaseTimeNeverOverTheHardMaximum(t *testing.T) {
	r := newRig(t, box.Config{ReleaseTime: 25 * time.Second, MaxReleaseTime: 8 * time.Second},
		store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
	r.typeKeys("123456#")
	require.Equal(t, []release{{1, 8 * time.Second}}, r.hw.releases)
}

func TestKeyAbsent(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
	r.newEvents()
	r.sense(1, false) // someone forced the key out
	r.expect(box.EventSlotUnexpected)
	r.typeKeys("123456#")
	r.expect(box.EventCodeAccepted, box.EventKeyAbsent)
	require.Empty(t, r.hw.openSlots())
	require.Zero(t, r.grant("g1").Uses, "nothing opened, no use counted")
}

func TestReturnByFob(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(2), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
	r.newEvents()
	r.typeKeys("123456#")
	r.sense(1, false)
	r.newEvents()

	r.c.FobScanned("01 00 00 00 01") // the reader's UID for key k1, spaced
	r.c.Flush()
	evs := r.expect(box.EventSlotReleased)
	require.Equal(t, box.PurposeReturn, evs[0].Purpose)
	require.Equal(t, "k1", evs[0].KeyID)
	require.Equal(t, "0100000001", evs[0].FobUID)
	require.Equal(t, []int{1}, r.hw.openSlots())

	r.c.FobScanned("0100000001") // the reader repeats itself: ignored
	r.c.Flush()
	require.Empty(t, r.newEvents())

	r.sense(1, true)
	evs = r.expect(box.EventSlotRelocked)
	require.Equal(t, box.ReasonKeyReturned, evs[0].Reason)
	require.Empty(t, r.hw.openSlots())
	r.advance(r.c.Config().ReturnSettle) // key_returned once seated long enough (TestReturnSettle)
	evs = r.expect(box.EventKeyReturned)
	require.Equal(t, "k1", evs[0].KeyID)
	require.Equal(t, box.ReturnByFob, evs[0].ReturnBy)
}

func TestReturnRefusals(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(2)})
	r.newEvents()
	r.c.FobScanned("ABCDEF0123")
	r.c.Flush()
	evs := r.expect(box.EventFobUnknown)
	require.Equal(t, "ABCDEF0123", evs[0].FobUID)

	r.c.FobScanned("0100000002") // k2's slot still holds a key
	r.c.Flush()
	evs = r.expect(box.EventReturnRefused)
	require.Equal(t, box.ReasonSlotOccupied, evs[0].Reason)
	require.Equal(t, 2, evs[0].Slot)
	require.Empty(t, r.hw.openSlots())

	r.advance(r.c.Config().RefusalWindow) // else merged with the first (TestRefusalsMerged)
	r.c.FobScanned("garbage")
	r.c.Flush()
	r.expect(box.EventFobUnknown)
}

func TestReturnNotSeatedInTimeRelocks(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(1)})
	r.sense(1, false)
	r.newEvents()
	r.c.FobScanned("0100000001")
	r.c.Flush()
	r.expect(box.EventSlotReleased)
	r.advance(5 * time.Second)
	evs := r.expect(box.EventSlotRelocked)
	require.Equal(t, box.ReasonTimeout, evs[0].Reason)
	require.Equal(t, box.PurposeReturn, evs[0].Purpose)
}

func TestUntrustedClock(t *testing.T) {
	windowed := booking("w", "111111", "k1")
	windowed.From, windowed.Until = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	open := booking("o", "222222", "k2")
	batch := store.Batch{Keys: keys(2), Grants: []box.GrantPut{windowed, open}}

	t.Run("refuse (default)", func(t *testing.T) {
		r := newRig(t, box.Config{BuildTime: t0.Add(24 * time.Hour)}, batch) // the RTC is behind the build
		evs := r.expect(box.EventBoxStarted, box.EventClockUntrusted)
		require.True(t, evs[1].ClockUntrusted)
		r.typeKeys("111111#")
		require.Equal(t, box.ReasonClockUntrusted, r.expect(box.EventCodeRefused)[0].Reason)
		r.typeKeys("222222#")
		evs = r.expect(box.EventCodeAccepted, box.EventSlotReleased)
		require.True(t, evs[0].ClockUntrusted, "events say the time on them is doubtful")
		require.Equal(t, []int{2}, r.hw.openSlots())

		// Once the clock is set right, windows count again.
		r.advance(48 * time.Hour)
		r.expect(box.EventSlotRelocked) // slot 2 was never opened: timed out
		r.typeKeys("111111#")
		evs = r.expect(box.EventCodeAccepted, box.EventSlotReleased)
		require.False(t, evs[0].ClockUntrusted)
	})
	t.Run("allow", func(t *testing.T) {
		r := newRig(t, box.Config{BuildTime: t0.Add(24 * time.Hour), UntrustedClock: box.ClockAllow}, batch)
		r.newEvents()
		r.typeKeys("111111#")
		r.expect(box.EventCodeAccepted, box.EventSlotReleased)
	})
}

func TestStopRelocksEverything(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
	r.newEvents()
	r.typeKeys("123456#")
	r.expect(box.EventCodeAccepted, box.EventSlotReleased)
	r.restart()
	evs := r.expect(box.EventSlotRelocked, box.EventBoxStopped, box.EventBoxStarted)
	require.Equal(t, box.ReasonStop, evs[0].Reason)
	require.Empty(t, r.hw.openSlots())
	require.Equal(t, 2, r.hw.lockAlls-1, "LockAll at stop and at the next start")
}

func TestLockFailureOpensNothingAndIsReported(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
	r.newEvents()
	r.hw.mu.Lock()
	r.hw.failLock = true
	r.hw.mu.Unlock()
	r.typeKeys("123456#")
	evs := r.expect(box.EventCodeAccepted, box.EventSlotReleased, box.EventHardwareFault)
	require.Equal(t, 1, evs[2].Slot)
	require.Empty(t, r.hw.openSlots())
}

func TestStoreFailureOpensNothing(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
	require.NoError(t, r.st.Close()) // the SD card is gone
	r.typeKeys("123456#")
	require.Empty(t, r.hw.openSlots(), "fail secure: nothing recorded, nothing opened")
	r.stop()
	require.Error(t, <-r.errc, "the stop event could not be recorded")
	r.stop = nil
}

func TestRemoteRelease(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(2)})
	r.newEvents()
	require.NoError(t, r.c.RemoteRelease(2, "admin@depot", "driver lost the PIN", "cmd-1"))
	evs := r.expect(box.EventSlotReleased)
	require.Equal(t, box.PurposeRemote, evs[0].Purpose)
	require.Contains(t, evs[0].Detail, "cmd-1 by admin@depot: driver lost the PIN")
	require.Equal(t, []int{2}, r.hw.openSlots())

	require.ErrorIs(t, r.c.RemoteRelease(2, "x", "y", "cmd-2"), box.ErrSlotBusy)
	require.Error(t, r.c.RemoteRelease(13, "x", "y", "cmd-3"))

	r.sense(2, false)
	evs = r.expect(box.EventKeyTaken, box.EventSlotRelocked)
	require.Equal(t, box.PurposeRemote, evs[0].Purpose)
	require.Empty(t, r.hw.openSlots())

	require.NoError(t, r.c.RemoteRelease(1, "tech", "test", "cmd-4"))
	r.advance(5 * time.Second)
	require.Equal(t, box.ReasonTimeout, r.expect(box.EventSlotReleased, box.EventSlotRelocked)[1].Reason)
}

func TestReleaseLocal(t *testing.T) {
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(2)})
	r.newEvents()
	require.NoError(t, r.c.ReleaseLocal(2, "alice", 1000, "swap battery"))
	evs := r.expect(box.EventSlotReleasedLocally)
	require.Equal(t, 2, evs[0].Slot)
	require.Equal(t, box.PurposeLocal, evs[0].Purpose)
	require.Equal(t, "by alice (uid 1000): swap battery", evs[0].Detail)
	require.Equal(t, []int{2}, r.hw.openSlots())
	r.c.Flush() // the view is updated after the release's handler returns
	require.Equal(t, box.PurposeLocal, r.c.Slots()[1].Purpose)

	// One sequence per slot; a slot off the box is refused.
	require.ErrorIs(t, r.c.ReleaseLocal(2, "bob", 1001, "again"), box.ErrSlotBusy)
	require.ErrorContains(t, r.c.ReleaseLocal(13, "bob", 1001, "no such slot"), "not in 1..")

	// The key leaves: relocked at once, taken as a local release.
	r.sense(2, false)
	evs = r.expect(box.EventKeyTaken, box.EventSlotRelocked)
	require.Equal(t, box.PurposeLocal, evs[0].Purpose)
	require.Equal(t, box.ReasonKeyTaken, evs[1].Reason)
	require.Empty(t, r.hw.openSlots())

	// Seated again on another local release: relocked, returned "local".
	require.NoError(t, r.c.ReleaseLocal(2, "alice", 1000, "key back"))
	r.expect(box.EventSlotReleasedLocally)
	r.sense(2, true)
	require.Equal(t, box.ReasonKeyReturned, r.expect(box.EventSlotRelocked)[0].Reason)
	require.Empty(t, r.hw.openSlots())

	// Nothing moves: relocked after the release time, and released again
	// at once (no cool-down for a person the box trusts).
	require.NoError(t, r.c.ReleaseLocal(1, "alice", -1, "test"))
	r.advance(5 * time.Second)
	// (slot 2's return settles meanwhile, recorded with its seated time)
	evs = r.expect(box.EventSlotReleasedLocally, box.EventKeyReturned, box.EventSlotRelocked)
	require.Equal(t, "by alice (uid unknown): test", evs[0].Detail)
	require.Equal(t, box.ReturnByLocal, evs[1].ReturnBy)
	require.Equal(t, box.ReasonTimeout, evs[2].Reason)
	require.Empty(t, r.hw.openSlots())
	require.NoError(t, r.c.ReleaseLocal(1, "alice", 1000, "again"))
	require.Equal(t, []int{1}, r.hw.openSlots())
}
