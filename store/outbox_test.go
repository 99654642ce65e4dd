package store

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

// requireGapFree checks that the outbox holds exactly first..last, in order.
func requireGapFree(t *testing.T, s *Store, first, last uint64) []box.Event {
	t.Helper()
	evs, err := s.Events(0, 0)
	require.NoError(t, err)
	require.Len(t, evs, int(last-first+1))
	for i, e := range evs {
		require.Equal(t, first+uint64(i), e.Seq, "events[%d]", i)
	}
	depth, err := s.OutboxDepth()
	require.NoError(t, err)
	require.Equal(t, len(evs), depth)
	seq, err := s.LastSeq()
	require.NoError(t, err)
	require.Equal(t, last, seq)
	return evs
}

// TestOutboxQuota: at the quota, refusals are counted, not stored; a
// key_taken still commits; after an ack one refusals_merged with the count
// takes the next sequence number; nothing leaves a gap.
func TestOutboxQuota(t *testing.T) {
	const quota = 5
	clock := &testClock{now: t0}
	path := filepath.Join(t.TempDir(), "box.db")
	open := func() *Store {
		s, err := Open(path, Options{BoxID: "box-1", Now: clock.Now, Slots: 12, Timeout: 500 * time.Millisecond, OutboxQuota: quota})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	s := open()
	refused := box.Event{Type: box.EventCodeRefused, Reason: box.ReasonUnknownCode}
	for range quota {
		evs, err := s.Commit(box.Change{Events: []box.Event{refused}})
		require.NoError(t, err)
		require.Len(t, evs, 1)
	}
	requireGapFree(t, s, 1, quota)

	// Full: refusals are counted, in the same transaction as the lockout.
	lock := &box.Lockout{Failures: 9}
	clock.Set(t0.Add(time.Minute))
	evs, err := s.Commit(box.Change{Lockout: lock, Events: []box.Event{refused, {Type: box.EventFobUnknown, FobUID: "0000000001"}}})
	require.NoError(t, err)
	require.Empty(t, evs)
	lo, err := s.Lockout()
	require.NoError(t, err)
	require.Equal(t, 9, lo.Failures, "the rest of the change commits")
	clock.Set(t0.Add(2 * time.Minute))
	// A merge from the controller (a burst of 4) counts as 4.
	_, err = s.Commit(box.Change{Events: []box.Event{{Type: box.EventRefusalsMerged, Count: 4}}})
	require.NoError(t, err)
	n, err := s.RefusalsPending()
	require.NoError(t, err)
	require.Equal(t, 6, n)
	requireGapFree(t, s, 1, quota)

	// A key taken is stored whatever the quota; the count survives a restart.
	evs, err = s.Commit(box.Change{Events: []box.Event{{Type: box.EventKeyTaken, Slot: 3, KeyID: "k3"}, refused}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, box.EventKeyTaken, evs[0].Type)
	require.Equal(t, uint64(quota+1), evs[0].Seq)
	requireGapFree(t, s, 1, quota+1)
	require.NoError(t, s.Close())
	s = open()
	n, err = s.RefusalsPending()
	require.NoError(t, err)
	require.Equal(t, 7, n)

	// The cloud acks two: room again, and one refusals_merged stands for
	// the seven, with the next sequence number.
	clock.Set(t0.Add(time.Hour))
	gone, err := s.AckEvents(2)
	require.NoError(t, err)
	require.Equal(t, 2, gone)
	all := requireGapFree(t, s, 3, quota+2)
	m := all[len(all)-1]
	require.Equal(t, box.EventRefusalsMerged, m.Type)
	require.Equal(t, uint64(quota+2), m.Seq)
	require.Equal(t, 7, m.Count)
	require.Equal(t, t0.Add(time.Hour), m.Time)
	require.Contains(t, m.Detail, "code_refused 2, fob_unknown 1, refusals_merged 4")
	require.Contains(t, m.Detail, "2026-11-01T10:01:00Z to 2026-11-01T10:02:00Z")
	n, err = s.RefusalsPending()
	require.NoError(t, err)
	require.Zero(t, n)

	// Full again (3..7); an ack of one leaves one place: one refusal in,
	// the next counted, and written as a merge at the next ack.
	_, err = s.AckEvents(3)
	require.NoError(t, err)
	evs, err = s.Commit(box.Change{Events: []box.Event{refused, refused}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	requireGapFree(t, s, 4, quota+3)
	_, err = s.AckEvents(quota + 3)
	require.NoError(t, err)
	all = requireGapFree(t, s, quota+4, quota+4)
	require.Equal(t, box.EventRefusalsMerged, all[0].Type)
	require.Equal(t, 1, all[0].Count)
	evs, err = s.Commit(box.Change{Events: []box.Event{refused}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, box.EventCodeRefused, evs[0].Type)
	requireGapFree(t, s, quota+4, quota+5)
}

// TestOutboxQuotaCommitFlushes: the first commit that finds room (here: the
// store reopened with a larger quota) writes the pending merge before its
// own events.
func TestOutboxQuotaCommitFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "box.db")
	open := func(quota int) *Store {
		s, err := Open(path, Options{BoxID: "box-1", Now: func() time.Time { return t0 }, OutboxQuota: quota})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	s := open(2)
	refused := box.Event{Type: box.EventCodeRefused}
	evs, err := s.Commit(box.Change{Events: []box.Event{refused, refused, refused, {Type: box.EventSlotReleased, Slot: 1}}})
	require.NoError(t, err)
	require.Len(t, evs, 3, "two refusals and the slot")
	requireGapFree(t, s, 1, 3)
	require.NoError(t, s.Close())
	s = open(10)
	evs, err = s.Commit(box.Change{Events: []box.Event{{Type: box.EventKeyTaken, Slot: 1}}})
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, box.EventRefusalsMerged, evs[0].Type)
	require.Equal(t, 1, evs[0].Count)
	require.Equal(t, box.EventKeyTaken, evs[1].Type)
	requireGapFree(t, s, 1, 5)
}

func TestRefusalClass(t *testing.T) {
	for _, typ := range []box.EventType{box.EventKeyTaken, box.EventKeyReturned, box.EventSlotReleased, box.EventSlotRelocked,
		box.EventLockout, box.EventKeypadAttack, box.EventHardwareFault, box.EventBoxStarted, box.EventBoxStopped,
		box.EventRecordsApplied, box.EventClockUntrusted, box.EventSlotUnexpected} {
		require.False(t, typ.Refusal(), typ)
	}
	for _, typ := range []box.EventType{box.EventCodeRefused, box.EventFobUnknown, box.EventReturnRefused, box.EventSyncRefused,
		box.EventRefusalsMerged, box.EventKeyAbsent, box.EventCodeAccepted} {
		require.True(t, typ.Refusal(), typ)
	}
}

// TestEventsAfterTheLastSeq: after the largest seq there is nothing (the
// socket's ?after= is anyone's number; afterSeq+1 must not wrap to 0).
func TestEventsAfterTheLastSeq(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "box.db"), Options{BoxID: "box-1", Now: (&testClock{now: t0}).Now, Slots: 12})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.Commit(box.Change{Events: []box.Event{{Type: box.EventCodeRefused, Reason: box.ReasonUnknownCode}}})
	require.NoError(t, err)
	evs, err := s.Events(math.MaxUint64, 0)
	require.NoError(t, err)
	require.Empty(t, evs)
	evs, err = s.Events(math.MaxUint64-1, 0)
	require.NoError(t, err)
	require.Empty(t, evs)
}
