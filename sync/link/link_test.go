package link_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/link"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// setup starts a broker of kind k, a box store, the cloud and the link.
func setup(t *testing.T, k brokertest.Kind, mod func(*link.Options)) (brokertest.Broker, *testCloud, *store.Store, *link.Link) {
	t.Helper()
	b := brokertest.Start(t, k, brokertest.Options{})
	st := openBox(t, filepath.Join(t.TempDir(), "box.db"))
	pub, err := st.SyncPublicKey()
	require.NoError(t, err)
	tc := startCloud(t, b, pub)
	l := startLink(t, b, st, mod)
	return b, tc, st, l
}

func TestSyncFromEmptyThenDeltas(t *testing.T) {
	t.Parallel()
	for _, k := range brokertest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			_, tc, st, l := setup(t, k, nil)
			require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)

			rev, err := tc.PutBatch(boxID, testKeys(), grants(0, 10000, "k1"))
			require.NoError(t, err)
			tc.push(0)
			requireSameRecords(t, tc, st, waitFor)

			// The codes opened: a PIN check on the box finds its grant.
			gs, err := st.GrantsByCode("10004242")
			require.NoError(t, err)
			require.Len(t, gs, 1)
			require.Equal(t, "g-004242", gs[0].ID)

			// Deltas: a new grant, a revoked one, a deleted one, a changed code.
			_, err = tc.PutGrant(boxID, box.Grant{ID: "g-new", Kind: box.KindBooking, KeyIDs: []string{"k2"}}, "55554444")
			require.NoError(t, err)
			_, err = tc.RevokeGrant(boxID, "g-000001")
			require.NoError(t, err)
			_, err = tc.DeleteGrant(boxID, "g-000002")
			require.NoError(t, err)
			_, err = tc.PutGrant(boxID, box.Grant{ID: "g-000003", Kind: box.KindBooking, KeyIDs: []string{"k1"}}, "77778888")
			require.NoError(t, err)
			tc.push(rev)
			requireSameRecords(t, tc, st, waitFor)
			gs, err = st.GrantsByCode("77778888")
			require.NoError(t, err)
			require.Len(t, gs, 1)
			gs, err = st.GrantsByCode("10000003")
			require.NoError(t, err)
			require.Empty(t, gs, "old code gone")

			// Each apply left a records_applied event, and they reached the cloud.
			require.Len(t, eventsOfType(t, st, box.EventRecordsApplied), 0, "drained")
			evs := requireEventsOnce(t, tc, st, waitFor)
			require.GreaterOrEqual(t, len(evs), 2)
			require.Equal(t, box.EventRecordsApplied, evs[0].Type)

			// The retained status says where the box is.
			brev, err := st.Revision()
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				s, ok := tc.lastStatus()
				return ok && s.Online && s.Revision == brev && s.OutboxDepth == 0
			}, waitFor, 20*time.Millisecond)
			require.Empty(t, eventsOfType(t, st, box.EventSyncRefused))

			// The link's state for the admin socket: synced, acked, nothing refused.
			ls := l.State()
			require.False(t, ls.LastSync.IsZero(), "last sync")
			require.Eventually(t, func() bool { return !l.State().LastAck.IsZero() }, waitFor, 10*time.Millisecond, "last ack")
			require.Empty(t, ls.Refused)
			require.True(t, ls.RefusedAt.IsZero())
		})
	}
}

func TestRefused(t *testing.T) {
	t.Parallel()
	for _, k := range brokertest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			_, tc, st, l := setup(t, k, nil)
			require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)
			rev1, err := tc.PutBatch(boxID, testKeys(), grants(0, 10, "k1"))
			require.NoError(t, err)
			tc.push(0)
			requireSameRecords(t, tc, st, waitFor)
			_, err = tc.PutGrant(boxID, box.Grant{ID: "g-2", Kind: box.KindBooking, KeyIDs: []string{"k2"}}, "24682468")
			require.NoError(t, err)
			delta := tc.push(rev1)
			requireSameRecords(t, tc, st, waitFor)
			rev, err := st.Revision()
			require.NoError(t, err)
			requireEventsOnce(t, tc, st, waitFor)

			_, forger, err := ed25519.GenerateKey(rand.Reader)
			require.NoError(t, err)
			evil := wire.RecordBatch{V: wire.Version, Box: boxID, From: rev, To: rev + 1, IssuedAt: time.Now(),
				Keys: []box.Key{{ID: "k-evil", FobUID: "0100000001", Slot: 3}}}
			forged, err := wire.Signer{KeyID: "k1", Key: forger}.Sign(wire.KindRecords, boxID, tc.boxPub, evil)
			require.NoError(t, err)
			unsigned, err := json.Marshal(wire.Envelope{V: wire.EnvelopeVersion, Kind: wire.KindRecords, Box: boxID, Aud: wire.Audience(tc.boxPub), KeyID: "k1",
				Body: mustJSON(t, evil)})
			require.NoError(t, err)
			otherBox := evil
			otherBox.Box = "box-b"
			forOther, err := signingKey.Sign(wire.KindRecords, "box-b", tc.boxPub, otherBox)
			require.NoError(t, err)
			// A sealed code moved from one grant to another does not open.
			moved := movedCode(t, tc, rev)

			cases := []struct {
				name, leaf string
				msg        []byte
				want       string // in the sync_refused detail
			}{
				{"forged signature", wire.LeafRecords, forged, "bad signature"},
				{"missing signature", wire.LeafRecords, unsigned, "bad signature"},
				{"signed for another box", wire.LeafRecords, forOther, "another box"},
				{"malformed JSON", wire.LeafRecords, []byte("{not json"), "malformed"},
				{"unknown version", wire.LeafRecords, []byte(`{"v":7,"kind":"records","box":"box-a"}`), "version"},
				{"sealed code that does not open", wire.LeafRecords, moved, "does not open"},
				{"forged ack", wire.LeafEventsAck, mustSign(t, wire.Signer{KeyID: "k1", Key: forger}, wire.KindEventsAck, tc.boxPub,
					wire.EventAck{V: 1, Box: boxID, Through: 1}), "bad signature"},
				{"command as records", wire.LeafRecords, mustSign(t, signingKey, wire.KindCommand, tc.boxPub,
					wire.Command{V: 1, Box: boxID, ID: "c1", Kind: wire.CommandResync}), "malformed"},
			}
			for _, c := range cases {
				before := len(refusals(t, tc, st))
				tc.publish(c.leaf, c.msg)
				require.Eventually(t, func() bool { return len(refusals(t, tc, st)) > before }, waitFor, 10*time.Millisecond, c.name)
				got := refusals(t, tc, st)
				require.Contains(t, got[len(got)-1].Detail, c.want, c.name)
				ls := l.State()
				require.Contains(t, ls.Refused, c.want, "%s: the link's state", c.name)
				require.False(t, ls.RefusedAt.IsZero(), c.name)
				now, err := st.Revision()
				require.NoError(t, err)
				require.Equal(t, rev, now, "%s: nothing applied", c.name)
			}
			_, ok, err := st.KeyByID("k-evil")
			require.NoError(t, err)
			require.False(t, ok)

			// A replayed older batch is ignored without a fuss.
			refused := len(refusals(t, tc, st))
			for _, m := range delta {
				tc.publish(wire.LeafRecords, m)
			}
			// ... and a real change after all that still applies.
			rev2, err := tc.PutGrant(boxID, box.Grant{ID: "g-3", Kind: box.KindBooking, KeyIDs: []string{"k2"}}, "13571357")
			require.NoError(t, err)
			tc.push(rev2 - 1)
			requireSameRecords(t, tc, st, waitFor)
			require.Len(t, refusals(t, tc, st), refused, "replay not refused, just ignored")

			// The box still checks PINs.
			gs, err := st.GrantsByCode("13571357")
			require.NoError(t, err)
			require.Len(t, gs, 1)
			requireEventsOnce(t, tc, st, waitFor)
		})
	}
}

// refusals are the box's sync_refused events, at the cloud or still in the
// outbox (an event may be in both for a moment: merged by seq).
func refusals(t testing.TB, tc *testCloud, st *store.Store) []box.Event {
	cloudEvs, err := tc.Events(boxID, 0, 100000)
	require.NoError(t, err)
	local, err := st.Events(0, 0)
	require.NoError(t, err)
	bySeq := map[uint64]box.Event{}
	for _, e := range append(cloudEvs, local...) {
		bySeq[e.Seq] = e
	}
	var out []box.Event
	for _, e := range bySeq {
		if e.Type == box.EventSyncRefused {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// mustSign signs v for boxID's store whose sync public key is boxPub.
func mustSign(t testing.TB, s wire.Signer, kind string, boxPub []byte, v any) []byte {
	b, err := s.Sign(kind, boxID, boxPub, v)
	require.NoError(t, err)
	return b
}

// movedCode makes a properly signed delta whose sealed code was made for
// another grant id.
func movedCode(t testing.TB, tc *testCloud, rev uint64) []byte {
	s, err := wire.NewCodeSealer(tc.boxPub, boxID, rev+1)
	require.NoError(t, err)
	b := wire.RecordBatch{V: wire.Version, Box: boxID, From: rev, To: rev + 1, Ephemeral: s.Ephemeral(), IssuedAt: time.Now(),
		Grants: []wire.GrantRecord{{Grant: box.Grant{ID: "g-x", Kind: box.KindBooking, KeyIDs: []string{"k1"}},
			CodeSealed: s.Seal("g-y", "99998888")}}}
	return mustSign(t, signingKey, wire.KindRecords, tc.boxPub, b)
}

func TestBrokerRestartMidSnapshot(t *testing.T) {
	t.Parallel()
	for _, k := range brokertest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			b, tc, st, l := setup(t, k, nil)
			require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)
			_, err := tc.PutBatch(boxID, testKeys(), grants(0, 10000, "k1"))
			require.NoError(t, err)
			// Two of the five chunks get through, then the broker goes down.
			tc.setBudget(2)
			msgs := tc.push(0)
			require.Greater(t, len(msgs), 2)
			require.Eventually(t, func() bool {
				_, _, have, err := st.StagedChunks()
				require.NoError(t, err)
				return have == 2
			}, waitFor, 10*time.Millisecond)
			rev, err := st.Revision()
			require.NoError(t, err)
			require.Zero(t, rev, "nothing applied from a partial snapshot")

			b.Restart(t)
			tc.setBudget(-1)
			requireSameRecords(t, tc, st, waitFor)
			requireEventsOnce(t, tc, st, waitFor)
		})
	}
}

func TestEventsAcrossOutage(t *testing.T) {
	t.Parallel()
	outage := 3 * time.Second
	if !testing.Short() {
		// The figure; one broker is enough to show it.
		outage = 30 * time.Second
	}
	for i, k := range brokertest.Kinds(t) {
		d := outage
		if i > 0 {
			d = 3 * time.Second
		}
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			b, tc, st, l := setup(t, k, nil)
			require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)
			commit(t, st, 20, "before")
			l.Kick()
			requireEventsOnce(t, tc, st, waitFor)

			b.Stop()
			require.Eventually(t, func() bool { return !l.Connected() }, waitFor, 10*time.Millisecond)
			deadline := time.Now().Add(d)
			n := 0
			for time.Now().Before(deadline) {
				commit(t, st, 10, "during")
				l.Kick()
				n += 10
				time.Sleep(100 * time.Millisecond) // events spread over the outage, as a box makes them
			}
			b.Restart(t)
			evs := requireEventsOnce(t, tc, st, waitFor)
			during := 0
			for _, e := range evs {
				if strings.HasPrefix(e.Detail, "during") {
					during++
				}
			}
			require.Equal(t, n, during)
		})
	}
}

// releases records RemoteRelease calls. It stands in for box.Controller,
// whose own tests cover what a release does to the pins.
type releases struct {
	mu    sync.Mutex
	calls []string
}

func (r *releases) RemoteRelease(slot int, by, reason, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, id)
	return nil
}

// RestoreKeypad is not what TestCommands checks: TestRestoreKeypadCommand
// runs it on a real controller.
func (r *releases) RestoreKeypad(by, reason, id string) error {
	return errors.New("no keypad here")
}

func (r *releases) n() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// awaitResult waits for the box's answer to command id.
func awaitResult(t *testing.T, tc *testCloud, id string) wire.CommandResult {
	t.Helper()
	var res wire.CommandResult
	require.Eventually(t, func() bool {
		for _, r := range tc.commandResults() {
			if r.ID == id {
				res = r
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond)
	return res
}

func TestCommands(t *testing.T) {
	t.Parallel()
	rel := &releases{}
	var trusted sync.Map
	trusted.Store("v", true)
	_, tc, st, l := setup(t, brokertest.Mochi, func(o *link.Options) {
		o.Box = rel
		o.ClockTrusted = func() bool { v, _ := trusted.Load("v"); return v.(bool) }
	})
	require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)

	result := func(id string) wire.CommandResult { return awaitResult(t, tc, id) }

	msg, cmd, err := tc.Command(boxID, wire.CommandReleaseSlot, 3, "tech@depot", "lost PIN", time.Minute)
	require.NoError(t, err)
	tc.publish(wire.LeafCommand, msg)
	res := result(cmd.ID)
	require.True(t, res.OK, res.Error)
	require.Equal(t, 1, rel.n())

	// Redelivered: not run again, answered again.
	before := len(tc.commandResults())
	tc.publish(wire.LeafCommand, msg)
	require.Eventually(t, func() bool { return len(tc.commandResults()) > before }, waitFor, 10*time.Millisecond)
	require.Equal(t, 1, rel.n())

	// Expired.
	old := wire.Command{V: 1, Box: boxID, ID: "c-old", Kind: wire.CommandReleaseSlot, Slot: 2, By: "x", Reason: "y",
		IssuedAt: time.Now().Add(-time.Hour), Expires: time.Now().Add(-time.Minute)}
	tc.publish(wire.LeafCommand, mustSign(t, signingKey, wire.KindCommand, tc.boxPub, old))
	res = result("c-old")
	require.False(t, res.OK)
	require.Contains(t, res.Error, "expired")

	// Untrusted clock: a slot release, and a keypad restore likewise
	// (replayed a year on, it would hand a guesser a fresh budget).
	trusted.Store("v", false)
	for _, c := range []struct {
		kind string
		slot int
	}{{wire.CommandReleaseSlot, 3}, {wire.CommandRestoreKeypad, 0}} {
		msg, cmd, err = tc.Command(boxID, c.kind, c.slot, "tech@depot", "lost PIN", time.Minute)
		require.NoError(t, err)
		tc.publish(wire.LeafCommand, msg)
		res = result(cmd.ID)
		require.False(t, res.OK, c.kind)
		require.Contains(t, res.Error, "not trusted", c.kind)
	}
	require.Equal(t, 1, rel.n())
	trusted.Store("v", true)

	// Signed, but with a reason longer than any audit line: refused by the
	// box too, whatever the cloud checked.
	long := wire.Command{V: 1, Box: boxID, ID: "c-long", Kind: wire.CommandRestoreKeypad, By: "x",
		Reason: strings.Repeat("r", wire.MaxCommandText+1), IssuedAt: time.Now(), Expires: time.Now().Add(time.Minute)}
	tc.publish(wire.LeafCommand, mustSign(t, signingKey, wire.KindCommand, tc.boxPub, long))
	res = result("c-long")
	require.False(t, res.OK)
	require.Contains(t, res.Error, "at most 200")

	// Resync: a sync request from 0.
	msg, cmd, err = tc.Command(boxID, wire.CommandResync, 0, "tech@depot", "check", time.Minute)
	require.NoError(t, err)
	tc.publish(wire.LeafCommand, msg)
	require.True(t, result(cmd.ID).OK)
	require.Eventually(t, func() bool {
		for _, r := range tc.syncRequests() {
			if r.Reason == "command" && r.Have == 0 {
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond)
	require.NotEmpty(t, refusals(t, tc, st), "the expired and the untrusted-clock commands are recorded")
}

// restores counts the restore_keypad commands the link runs on a real
// controller.
type restores struct {
	*box.Controller
	n atomic.Int32
}

func (r *restores) RestoreKeypad(by, reason, id string) error {
	r.n.Add(1)
	return r.Controller.RestoreKeypad(by, reason, id)
}

// lockHW is a box's locks and key sensors that only remember which slots
// were opened: the pins are tested in hal/ and sim/.
type lockHW struct {
	mu     sync.Mutex
	opened []int
}

func (h *lockHW) Release(slot int, _ time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opened = append(h.opened, slot)
	return nil
}
func (h *lockHW) Lock(int) error                 { return nil }
func (h *lockHW) LockAll() error                 { return nil }
func (h *lockHW) Present(slot int) (bool, error) { return true, nil }
func (h *lockHW) releases() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.opened...)
}

// TestRestoreKeypadCommand: a keypad closed by a spent guess budget refuses
// a driver's good code; a signed restore_keypad reopens it at once, so the
// same code opens the slot; the command redelivered does not run again (a
// second budget for a guesser), and is answered again.
func TestRestoreKeypadCommand(t *testing.T) {
	t.Parallel()
	hw := &lockHW{}
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	st := openBox(t, filepath.Join(t.TempDir(), "box.db"))
	pub, err := st.SyncPublicKey()
	require.NoError(t, err)
	tc := startCloud(t, b, pub)
	// A budget of 2, spent twice, stays under the tarpit's first wait (5
	// wrong codes): the tarpit keeps its count across a restore.
	c, err := box.New(box.Config{LockoutBudget: 2}, st, box.Hardware{Locks: hw, Sensors: hw}, box.SystemClock{}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	ctrl := &restores{Controller: c}
	l := startLink(t, b, st, func(o *link.Options) { o.Box = ctrl })
	require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)

	_, err = tc.PutBatch(boxID, testKeys(), grants(0, 1, "k1"))
	require.NoError(t, err)
	tc.push(0)
	requireSameRecords(t, tc, st, waitFor)
	typeCode := func(code string) {
		for _, k := range code + "#" {
			c.Press(k)
		}
		c.Flush()
	}
	for i := range 2 {
		typeCode(fmt.Sprintf("9999000%d", i))
	}
	lo, err := st.Lockout()
	require.NoError(t, err)
	require.Equal(t, 2, lo.Spent, "the budget is spent")
	typeCode("10000000")
	require.Empty(t, hw.releases(), "a closed keypad checks no code, a good one included")

	msg, cmd, err := tc.Command(boxID, wire.CommandRestoreKeypad, 0, "ops@depot", "guessing stopped", time.Minute)
	require.NoError(t, err)
	tc.publish(wire.LeafCommand, msg)
	res := awaitResult(t, tc, cmd.ID)
	require.True(t, res.OK, res.Error)
	require.EqualValues(t, 1, ctrl.n.Load())
	lo, err = st.Lockout()
	require.NoError(t, err)
	require.Zero(t, lo.Spent, "the whole budget is back")
	typeCode("10000000")
	require.Equal(t, []int{1}, hw.releases(), "the driver's code opens the slot again")

	// A guesser spends the budget again; the command replayed does not
	// give it back.
	for i := range 2 {
		typeCode(fmt.Sprintf("8888000%d", i))
	}
	before := len(tc.commandResults())
	tc.publish(wire.LeafCommand, msg)
	require.Eventually(t, func() bool { return len(tc.commandResults()) > before }, waitFor, 10*time.Millisecond)
	require.EqualValues(t, 1, ctrl.n.Load(), "a replayed command id runs once")
	lo, err = st.Lockout()
	require.NoError(t, err)
	require.Equal(t, 2, lo.Spent, "the replay gave nothing back")

	// The keypad_restored event reaches the cloud, with who and why.
	require.Eventually(t, func() bool {
		evs, err := tc.Events(boxID, 0, 100000)
		require.NoError(t, err)
		for _, e := range evs {
			if e.Type == box.EventKeypadRestored && strings.Contains(e.Detail, "ops@depot") &&
				strings.Contains(e.Detail, "guessing stopped") && strings.Contains(e.Detail, cmd.ID) {
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond)
}

func TestNew(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "box.db"), store.Options{BoxID: boxID})
	require.NoError(t, err)
	defer st.Close()
	_, err = link.New(link.Options{BoxID: boxID, BrokerURL: "tcp://127.0.0.1:1", Store: st})
	require.ErrorIs(t, err, store.ErrNotProvisioned)
	require.NoError(t, st.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{"k1": signingKey.Key.Public().(ed25519.PublicKey)}}))
	for name, o := range map[string]link.Options{
		"bad box id":   {BoxID: "a b", BrokerURL: "tcp://x:1", Store: st},
		"other box":    {BoxID: "box-b", BrokerURL: "tcp://x:1", Store: st},
		"no store":     {BoxID: boxID, BrokerURL: "tcp://x:1"},
		"no broker":    {BoxID: boxID, Store: st},
		"bare address": {BoxID: boxID, BrokerURL: "127.0.0.1:1883", Store: st},
	} {
		_, err := link.New(o)
		require.Error(t, err, name)
	}
	_, err = link.New(link.Options{BoxID: boxID, BrokerURL: "tcp://127.0.0.1:1", Store: st})
	require.NoError(t, err)
}
