package link_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/box/boxtest"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/link"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// TestReplayForOldCardRefused: what the cloud signed for a box's old SD card
// (an events ack, a records batch, a command), captured and replayed to the
// re-flashed card of the same box id, is refused there: the ack deletes
// nothing from the new card's outbox, the batch applies nothing, the command
// does not run, and each refusal is a sync_refused event. What the cloud
// signs for the new card still works.
func TestReplayForOldCardRefused(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	old := openBox(t, filepath.Join(t.TempDir(), "old-card.db"))
	oldPub, err := old.SyncPublicKey()
	require.NoError(t, err)
	tc := startCloud(t, b, oldPub)

	// Captured while the old card ran: an ack through 5, a snapshot of its
	// keys, a resync command.
	oldEvents := wire.EventBatch{V: wire.Version, Box: boxID}
	for s := uint64(1); s <= 5; s++ {
		oldEvents.Events = append(oldEvents.Events, box.Event{Seq: s, Time: time.Now(), Type: box.EventKeyTaken, Slot: 1})
	}
	oldAck, stored, err := tc.IngestEvents(boxID, oldEvents)
	require.NoError(t, err)
	require.Equal(t, 5, stored)
	_, err = tc.PutBatch(boxID, testKeys(), nil)
	require.NoError(t, err)
	oldRecords, err := tc.Answer(wire.SyncRequest{V: wire.Version, Box: boxID})
	require.NoError(t, err)
	require.Len(t, oldRecords, 1)
	oldCommand, _, err := tc.Command(boxID, wire.CommandResync, 0, "", "", time.Hour)
	require.NoError(t, err)

	// The card is re-flashed (a new store, a new sync key) and registered
	// again. The cloud sends it nothing yet, so whatever the new card holds
	// or deletes is the replays' doing.
	st := openBox(t, filepath.Join(t.TempDir(), "new-card.db"))
	newPub, err := st.SyncPublicKey()
	require.NoError(t, err)
	require.NotEqual(t, oldPub, newPub)
	require.NoError(t, tc.RegisterBox(boxID, newPub))
	tc.holdEvents.Store(true)
	tc.setBudget(0)
	commit(t, st, 5, "new card")
	l := startLink(t, b, st, nil)
	require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)

	for _, c := range []struct {
		name, leaf string
		msg        []byte
	}{
		{"ack", wire.LeafEventsAck, oldAck},
		{"records", wire.LeafRecords, oldRecords[0]},
		{"command", wire.LeafCommand, oldCommand},
	} {
		before := len(eventsOfType(t, st, box.EventSyncRefused))
		tc.publish(c.leaf, c.msg)
		require.Eventually(t, func() bool { return len(eventsOfType(t, st, box.EventSyncRefused)) > before },
			waitFor, 10*time.Millisecond, c.name)
		refused := eventsOfType(t, st, box.EventSyncRefused)
		require.Contains(t, refused[len(refused)-1].Detail, wire.ErrWrongAudience.Error(), c.name)

		kept := eventsOfType(t, st, box.EventCodeRefused)
		require.Len(t, kept, 5, "%s: the new card's events are all still in its outbox", c.name)
		require.EqualValues(t, 1, kept[0].Seq)
		rev, err := st.Revision()
		require.NoError(t, err)
		require.Zero(t, rev, "%s: no records applied", c.name)
		keys, err := st.Keys()
		require.NoError(t, err)
		require.Empty(t, keys, c.name)
		require.Empty(t, tc.commandResults(), "%s: no command ran", c.name)
	}

	// The normal path: what the cloud signs for the new card is taken.
	tc.holdEvents.Store(false)
	tc.setBudget(-1)
	tc.push(0)
	requireSameRecords(t, tc, st, waitFor)
	last, err := st.LastSeq()
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		depth, err := st.OutboxDepth()
		require.NoError(t, err)
		return depth == 0
	}, waitFor, 20*time.Millisecond, "the new card's events are acked")
	evs, err := tc.Events(boxID, 0, 1000)
	require.NoError(t, err)
	require.Len(t, evs, 5+int(last), "the old card's 5 events, then every one of the new card's")
	for i, e := range evs {
		require.EqualValues(t, i+1, e.Seq)
	}
}

// TestThrottledBoxLosesNothing: a cloud whose byte budget for the box is
// spent stores what fits and holds the rest back (no ack); the box keeps
// those events, retries with a growing wait, and once the budget refills
// every event is stored once, in order.
func TestThrottledBoxLosesNothing(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	st := openBox(t, filepath.Join(t.TempDir(), "box.db"))
	pub, err := st.SyncPublicKey()
	require.NoError(t, err)
	clock := boxtest.NewClock(time.Now())
	tc := startCloudWith(t, b, pub, func(o *cloud.Options) {
		o.Now = clock.Now
		o.EventBytes = cloud.Rate{PerSecond: 1, Burst: 8 << 10} // some 50 of these events, refilled by the clock
	})
	commit(t, st, 200, "a refusal with some detail to it, as a busy box makes")
	startLink(t, b, st, func(o *link.Options) {
		o.AckTimeout, o.MaxAckWait = 100*time.Millisecond, 400*time.Millisecond
	})
	require.Eventually(t, func() bool { return tc.Stats().EventsOverBudget > 0 }, waitFor, 10*time.Millisecond)
	hi, err := tc.HighestSeq(boxID)
	require.NoError(t, err)
	require.Less(t, hi, uint64(200), "held back at the budget")
	require.Eventually(t, func() bool {
		depth, err := st.OutboxDepth()
		require.NoError(t, err)
		return depth == 200-int(hi)
	}, waitFor, 10*time.Millisecond, "the box deletes what was acked and keeps every event the cloud held back")

	// Held back, the box backs off: over 1.5 s, waits of 100, 200, 400,
	// 400 ms... make at most 5 resends (a fixed 100 ms would make 15).
	before := tc.eventBatches.Load()
	time.Sleep(1500 * time.Millisecond) // observing a rate, not waiting for an event
	resent := tc.eventBatches.Load() - before
	t.Logf("resends in 1.5 s while held back: %d", resent)
	require.LessOrEqual(t, resent, int64(6), "the wait for an ack grows")

	// The budget refills (an hour a poll here); the box's retries take
	// the rest, a budget's worth each.
	require.Eventually(t, func() bool {
		clock.Advance(time.Hour)
		depth, err := st.OutboxDepth()
		require.NoError(t, err)
		return depth == 0
	}, waitFor, 50*time.Millisecond)
	requireEventsOnce(t, tc, st, waitFor)
}
