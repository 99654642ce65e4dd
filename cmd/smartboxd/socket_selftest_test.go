package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/selftest"
	"github.com/smartbox-oss/smartbox/store"
)

// technician answers the self-test's instructions by acting on the
// simulated box through its socket, as a person at the box would.
type technician struct {
	t    *testing.T
	c    *boxsocket.Client
	said chan string
}

func (p *technician) AssumeYes() bool                               { return true }
func (p *technician) Confirm(context.Context, string) (bool, error) { return true, nil }
func (p *technician) Say(instruction string)                        { p.said <- instruction }

// run acts on each instruction in turn until ctx ends. Errors the box
// answers (a jammed slot's take) are what a person would meet: ignored.
func (p *technician) run(ctx context.Context) {
	for {
		var s string
		select {
		case <-ctx.Done():
			return
		case s = <-p.said:
		}
		step, ok := selftest.ParseStep(s)
		switch {
		case !ok:
			p.t.Errorf("the technician does not know what to do: %q", s)
		case step.Do == selftest.ActTake:
			_ = p.c.Take(ctx, step.Slot)
		case step.Do == selftest.ActPutBack:
			_ = p.c.PutBack(ctx, step.Slot)
		case step.Do == selftest.ActPress:
			_ = p.c.Press(ctx, step.Key, 0)
		case step.Do == selftest.ActFob:
			_ = p.c.Reader(ctx, boxsocket.ReaderRequest{Fob: testFob})
		}
	}
}

func newTechnician(t *testing.T, c *boxsocket.Client) *technician {
	p := &technician{t: t, c: c, said: make(chan string, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// testTimeouts shorten the steps that only time out when something is
// broken (the jammed slot's take, the empty slot's steady watch).
// TakeTimeout is also how long a healthy slot's key may take to be taken
// on a loaded 2-core CI under -race: 10 s, many times what it takes.
var testTimeouts = selftest.Options{TakeTimeout: 10 * time.Second, SteadyWatch: 300 * time.Millisecond}

func rowByName(t *testing.T, rep *selftest.Report, name string) selftest.Row {
	t.Helper()
	for _, r := range rep.Rows {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no row %q in %+v", name, rep.Rows)
	return selftest.Row{}
}

// TestSelftestSocketJamAndDeadSensor runs the whole self-test on the sim
// through the socket with slot 2's latch jammed and slot 3's sensor dead:
// those two rows fail, every other passes (or is not available on an
// offline sim box), and the test went on past them.
func TestSelftestSocketJamAndDeadSensor(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	require.Eventually(t, func() bool { _, err := r.c.Status(ctx); return err == nil }, waitFor, 10*time.Millisecond)
	yes := true
	require.NoError(t, r.c.SetFault(ctx, 2, boxsocket.SlotFault{Jammed: &yes}))
	require.NoError(t, r.c.SetFault(ctx, 3, boxsocket.SlotFault{SensorDead: &yes}))

	rep, err := selftest.RunSocket(ctx, r.c, newTechnician(t, r.c), testTimeouts)
	require.NoError(t, err)
	for _, row := range rep.Rows {
		t.Logf("%-8s %-18s %-13s %s", row.Group, row.Name, row.Result, row.Detail)
	}
	require.True(t, rep.Failed())
	require.Equal(t, selftest.Fail, rowByName(t, rep, "slot 2 lock").Result)
	require.Contains(t, rowByName(t, rep, "slot 2 lock").Detail, "jammed latch")
	require.Equal(t, selftest.Fail, rowByName(t, rep, "slot 3 sensor").Result)
	require.Contains(t, rowByName(t, rep, "slot 3 sensor").Detail, "dead sensor")
	failed := 0
	for _, row := range rep.Rows {
		switch row.Result {
		case selftest.Fail:
			failed++
		case selftest.Pass, selftest.NotAvailable:
		default:
			t.Errorf("row %s: %s", row.Name, row.Result)
		}
	}
	require.Equal(t, 2, failed, "only the jammed lock and the dead sensor fail")
	require.Equal(t, selftest.Pass, rowByName(t, rep, "slot 1 lock").Result)
	require.Equal(t, selftest.Pass, rowByName(t, rep, "key #").Result)
	require.Equal(t, selftest.Pass, rowByName(t, rep, "fob reader").Result)
	require.Equal(t, selftest.Pass, rowByName(t, rep, "store").Result)
	require.Len(t, rep.Rows, 12+12+12+1+2+1+1+1)

	// Every lock de-energised, every key home; the session and each
	// release are in the outbox.
	for n := 1; n <= 12; n++ {
		require.False(t, r.d.sim.slots.Released(n), "slot %d released after the test", n)
		require.True(t, r.d.sim.slots.Occupied(n), "slot %d's key not home", n)
	}
	require.True(t, hasEvent(t, r.d.store, box.EventMaintenanceBegan, 0))
	require.True(t, hasEvent(t, r.d.store, box.EventMaintenanceEnded, 0))
	require.True(t, hasEvent(t, r.d.store, box.EventSlotReleased, 2))
	// The session says who began it: the socket peer's uid (this test's).
	evs, err := r.d.store.Events(0, 1000)
	require.NoError(t, err)
	want := fmt.Sprintf("by uid %d", os.Getuid())
	require.True(t, slices.ContainsFunc(evs, func(e box.Event) bool {
		return e.Type == box.EventMaintenanceBegan && strings.HasSuffix(e.Detail, want)
	}), "maintenance_began without %q", want)
}

// TestSelftestSessionRefusesCodes: during a session a driver's PIN opens
// nothing, and a second session is refused; after it the PIN works.
func TestSelftestSessionRefusesCodes(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	require.Eventually(t, func() bool { _, err := r.c.Status(ctx); return err == nil }, waitFor, 10*time.Millisecond)
	s, err := r.c.BeginSession(ctx)
	require.NoError(t, err)
	_, err = r.c.BeginSession(ctx)
	require.True(t, boxsocket.IsStatus(err, 409), "a second session: %v", err)

	require.NoError(t, r.c.Press(ctx, testPIN+"#", 0))
	// The session saw the keys, the controller none.
	var got string
	for len(got) < len(testPIN)+1 {
		in, err := s.Next(ctx, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, boxsocket.InputKey, in.Kind, "%+v", in)
		got += in.Key
	}
	require.Equal(t, testPIN+"#", got)
	require.False(t, r.d.sim.slots.Released(1))
	require.False(t, hasEvent(t, r.d.store, box.EventCodeAccepted, 0))
	// Nor does the cloud open a slot meanwhile.
	require.ErrorContains(t, r.d.input.RemoteRelease(1, "admin", "test", "cmd-1"), "self-test is running")
	require.False(t, r.d.sim.slots.Released(1))
	// A keypad restore moves no lock: it goes through.
	require.NoError(t, r.d.input.RestoreKeypad("admin", "test", "cmd-2"))
	require.True(t, hasEvent(t, r.d.store, box.EventKeypadRestored, 0))

	require.NoError(t, s.End(ctx))
	_, err = s.Next(ctx, time.Second)
	require.True(t, boxsocket.IsStatus(err, 404), "a request on an ended session: %v", err)
	require.NoError(t, r.c.Press(ctx, testPIN+"#", 0))
	require.Eventually(t, func() bool { return r.d.sim.slots.Released(1) }, waitFor, 10*time.Millisecond, "the PIN after the session")

	// A session is refused while the driver's slot is released.
	_, err = r.c.BeginSession(ctx)
	require.True(t, boxsocket.IsStatus(err, 409), "a session while slot 1 is released for a driver: %v", err)
}

// A lock request of a session that has ended meanwhile (a racing end)
// does not relock a slot the controller released for a driver since.
func TestSelftestStaleLockLeavesDriversSlot(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	require.Eventually(t, func() bool { _, err := r.c.Status(ctx); return err == nil }, waitFor, 10*time.Millisecond)
	s, err := r.c.BeginSession(ctx)
	require.NoError(t, err)
	stale := r.d.input.session()
	require.NotNil(t, stale)
	require.NoError(t, s.End(ctx))
	require.NoError(t, r.c.Press(ctx, testPIN+"#", 0))
	require.Eventually(t, func() bool { return r.d.sim.slots.Released(1) }, waitFor, 10*time.Millisecond, "the driver's PIN")

	// What a lock request that passed hold just before the end does next.
	req := httptest.NewRequest(http.MethodPost, "/v1/session/slots/1/lock", nil)
	req.SetPathValue("n", "1")
	w := httptest.NewRecorder()
	r.d.sessionLock(w, req, stale)
	require.Equal(t, http.StatusNotFound, w.Code, w.Body.String())
	require.True(t, r.d.sim.slots.Released(1), "the stale session relocked the driver's slot")
}

// TestSelftestLeaseExpiry: a client that vanishes with a lock released
// leaves the box in service and shut once the lease runs out, well before
// the release time it asked for.
func TestSelftestLeaseExpiry(t *testing.T) {
	// lease: long enough that the client's begin and release (a few ms)
	// fit many times over on a loaded CI, short next to the 10 s release
	// it must cut.
	const lease = 2 * time.Second
	r := startSocketDaemon(t, nil)
	r.d.input.mu.Lock()
	r.d.input.lease = lease
	r.d.input.mu.Unlock()
	ctx := t.Context()
	require.Eventually(t, func() bool { _, err := r.c.Status(ctx); return err == nil }, waitFor, 10*time.Millisecond)
	s, err := r.c.BeginSession(ctx)
	require.NoError(t, err)
	require.Equal(t, lease.Milliseconds(), s.Info.LeaseMS)
	require.NoError(t, s.Release(ctx, 4, 10*time.Second))
	require.True(t, r.d.sim.slots.Released(4))
	begun := time.Now()
	// The client vanishes: nothing more is said.
	require.Eventually(t, func() bool { return r.d.input.session() == nil }, waitFor, 10*time.Millisecond, "the lease never ran out")
	require.False(t, r.d.sim.slots.Released(4), "slot 4 still released after the session's end")
	require.Less(t, time.Since(begun), 10*time.Second, "the lock outlived the lease")
	// The locks go first, the records right after.
	require.Eventually(t, func() bool { return hasEvent(t, r.d.store, box.EventMaintenanceEnded, 0) }, waitFor, 10*time.Millisecond)
	require.True(t, hasEvent(t, r.d.store, box.EventSlotRelocked, 4))
	_, err = s.Present(ctx, 1)
	require.True(t, boxsocket.IsStatus(err, 404))
	require.Contains(t, fmt.Sprint(err), "lease expired")
	// The box is back in service.
	require.NoError(t, r.c.Press(ctx, testPIN+"#", 0))
	require.Eventually(t, func() bool { return r.d.sim.slots.Released(1) }, waitFor, 10*time.Millisecond)
}

// TestSelftestDaemonStops: the daemon stopping mid-session, a lock
// released, leaves every lock de-energised and the session's end recorded.
func TestSelftestDaemonStops(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	require.Eventually(t, func() bool { _, err := r.c.Status(ctx); return err == nil }, waitFor, 10*time.Millisecond)
	s, err := r.c.BeginSession(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, 5, 10*time.Second))
	require.True(t, r.d.sim.slots.Released(5))
	r.stop(t)
	require.False(t, r.d.sim.slots.Released(5))
	st, err := store.Open(r.d.store.Path(), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	require.True(t, hasEvent(t, st, box.EventMaintenanceEnded, 0))
	require.True(t, hasEvent(t, st, box.EventSlotRelocked, 5))
}

// A session releases one slot at a time, and ends MaxSessionLength after it
// began however often it is renewed, every lock de-energised.
func TestSelftestSessionBounds(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	require.Eventually(t, func() bool { _, err := r.c.Status(ctx); return err == nil }, waitFor, 10*time.Millisecond)
	s, err := r.c.BeginSession(ctx)
	require.NoError(t, err)

	require.NoError(t, s.Release(ctx, 1, 5*time.Second))
	err = s.Release(ctx, 2, 5*time.Second)
	require.True(t, boxsocket.IsStatus(err, http.StatusConflict), "a second slot while slot 1 is released: %v", err)
	require.ErrorContains(t, err, "slot 1 is still released in this session")
	require.False(t, r.d.sim.slots.Released(2))
	require.NoError(t, s.Lock(ctx, 1))
	require.NoError(t, s.Release(ctx, 2, 5*time.Second))
	require.True(t, r.d.sim.slots.Released(2))

	// Thirty minutes on (the session's start moved back, not waited for).
	r.d.input.mu.Lock()
	r.d.input.s.began = time.Now().Add(-boxsocket.MaxSessionLength - time.Second)
	r.d.input.mu.Unlock()
	err = s.Renew(ctx)
	require.True(t, boxsocket.IsStatus(err, http.StatusNotFound), "a renewal past the limit: %v", err)
	require.ErrorContains(t, err, "ran longer than 30m0s")
	require.Nil(t, r.d.input.session())
	require.False(t, r.d.sim.slots.Released(2), "slot 2 relocked when the session ended")
	require.True(t, hasEvent(t, r.d.store, box.EventMaintenanceEnded, 0))
}
