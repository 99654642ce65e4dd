package cloud_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// storedBytes is what the box's stored events take as JSON.
func storedBytes(t testing.TB, c *cloud.Cloud, boxID string) (n int, count int) {
	t.Helper()
	evs, err := c.Events(boxID, 0, 1<<30)
	require.NoError(t, err)
	for _, e := range evs {
		v, err := json.Marshal(e)
		require.NoError(t, err)
		n += len(v)
	}
	return n, len(evs)
}

func ackThrough(t testing.TB, e *env, raw []byte) uint64 {
	t.Helper()
	var a wire.EventAck
	require.NoError(t, e.verifier.Open(raw, wire.KindEventsAck, "box-a", &a))
	return a.Through
}

// TestEventFloodBytes: 200 batches of 500 made-up events with 1.7 KB
// details each (what one box's password pushed to 172 MB before) store at
// most the box's byte budget; the rest is refused unacked and counted, and
// another box's traffic goes on.
func TestEventFloodBytes(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, func(o *cloud.Options) {
		o.EventRate = cloud.Rate{PerSecond: 1e6, Burst: 1e6} // the byte budget alone
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	require.NoError(t, e.c.RegisterBox("box-b", e.boxKey.PublicKey().Bytes()))
	junk := strings.Repeat("x", 1700)
	seq, throttled, sent := uint64(0), 0, 0
	for range 200 {
		b := wire.EventBatch{V: wire.Version, Box: "box-a"}
		for i := range 500 {
			b.Events = append(b.Events, box.Event{Seq: seq + uint64(i) + 1, Time: e.clock.Now(), Type: box.EventCodeRefused, Detail: junk})
		}
		sent += 500 * (len(junk) + 80)
		raw, _, err := e.c.IngestEvents("box-a", b)
		if err != nil {
			require.ErrorIs(t, err, cloud.ErrThrottled)
			throttled++
			continue
		}
		seq = ackThrough(t, e, raw) // the box resends from its oldest unacked event
	}
	n, count := storedBytes(t, e.c, "box-a")
	t.Logf("sent %d MB of events; stored %d events, %d bytes (store %d bytes on disk); %d of 200 batches refused",
		sent>>20, count, n, e.store.size(t), throttled)
	require.LessOrEqual(t, n, cloud.DefaultEventBytes.Burst, "at most the byte budget is stored")
	require.Greater(t, n, cloud.DefaultEventBytes.Burst*9/10, "the budget is used, not wasted")
	require.Greater(t, throttled, 170, "about 29 batches of 500 cut events fill 8 MiB")
	st := e.c.Stats()
	require.EqualValues(t, count, st.EventsOversize, "every one of them had its detail cut")
	require.NotZero(t, st.EventsOverBudget)
	require.EqualValues(t, count, seq, "acked exactly what was stored")
	require.Equal(t, 1, strings.Count(logs.String(), "security: a box sends events over the cloud's bounds"),
		"one security line per box and window, not one per event or batch:\n%s", logs.String())

	// Another box is not held up by this one.
	b := events(1, 2, 3)
	b.Box = "box-b"
	_, stored, err := e.c.IngestEvents("box-b", b)
	require.NoError(t, err)
	require.Equal(t, 3, stored)

	// A window later, one more line with the counts since.
	e.clock.Add(cloud.SecurityLogWindow)
	_, _, err = e.c.IngestEvents("box-a", wire.EventBatch{V: wire.Version, Box: "box-a",
		Events: []box.Event{{Seq: seq + 1, Type: box.EventCodeRefused, Detail: junk}}})
	require.NoError(t, err, "ten minutes earned about 170 KB")
	require.Equal(t, 2, strings.Count(logs.String(), "security: a box sends events over the cloud's bounds"))
}

// TestOversizeEventAcked: an event over the detail or the size bound is
// stored cut short (or as an event_dropped placeholder) under its own seq,
// acked and counted, so the box's outbox moves on and the cloud's numbering
// has no gap.
func TestOversizeEventAcked(t *testing.T) {
	e := newEnv(t, nil)
	long := strings.Repeat("é", 3000) // 6000 bytes, two a character
	huge := strings.Repeat("k", 5000)
	b := events(1, 2, 3, 4)
	b.Events[1].Detail = long
	b.Events[2].KeyID = huge
	raw, stored, err := e.c.IngestEvents("box-a", b)
	require.NoError(t, err)
	require.Equal(t, 4, stored)
	require.EqualValues(t, 4, ackThrough(t, e, raw), "acked through the oversize ones")
	require.EqualValues(t, 2, e.c.Stats().EventsOversize)

	got, err := e.c.Events("box-a", 0, 0)
	require.NoError(t, err)
	require.Len(t, got, 4)
	for i, ev := range got {
		require.EqualValues(t, i+1, ev.Seq, "no gap")
		v, err := json.Marshal(ev)
		require.NoError(t, err)
		require.LessOrEqual(t, len(v), cloud.MaxEventSize)
	}
	require.Equal(t, box.EventCodeAccepted, got[1].Type, "cut short, not dropped")
	require.Equal(t, "g2", got[1].GrantID)
	require.LessOrEqual(t, len(got[1].Detail), cloud.MaxEventDetail)
	require.True(t, strings.HasPrefix(got[1].Detail, "éé"))
	require.Contains(t, got[1].Detail, "[cut by the cloud: 6000 bytes]")
	require.True(t, json.Valid([]byte(fmt.Sprintf("%q", got[1].Detail))))
	require.NotContains(t, got[1].Detail, "\uFFFD", "cut between characters")

	require.Equal(t, cloud.EventDropped, got[2].Type, "too big even without its detail: a placeholder")
	require.Equal(t, b.Events[2].Time, got[2].Time)
	require.Contains(t, got[2].Detail, `"code_accepted" event of`)
	require.Equal(t, "g4", got[3].GrantID, "the next event is stored as sent")
}

// TestEventRetention: events received more than the retention ago are
// deleted (on ingest for the sending box, by SweepEvents for every box); the
// box's numbering and de-duplication are not disturbed.
func TestEventRetention(t *testing.T) {
	e := newEnv(t, func(o *cloud.Options) { o.EventRetention = 90 * 24 * time.Hour })
	require.NoError(t, e.c.RegisterBox("box-b", e.boxKey.PublicKey().Bytes()))
	ingest := func(boxID string, seqs ...uint64) {
		t.Helper()
		b := events(seqs...)
		b.Box = boxID
		_, _, err := e.c.IngestEvents(boxID, b)
		require.NoError(t, err)
	}
	seqsOf := func(boxID string) []uint64 {
		evs, err := e.c.Events(boxID, 0, 0)
		require.NoError(t, err)
		var out []uint64
		for _, ev := range evs {
			out = append(out, ev.Seq)
		}
		return out
	}
	ingest("box-a", 1, 2, 3)
	ingest("box-b", 1, 2)
	e.clock.Add(60 * 24 * time.Hour)
	ingest("box-a", 4, 5)
	e.clock.Add(30 * 24 * time.Hour) // day 90: the first events are 90 days old, not more
	n, err := e.c.SweepEvents()
	require.NoError(t, err)
	require.Zero(t, n, "kept for the whole retention")

	e.clock.Add(25 * time.Hour) // over 90 days (and the day they came) ago
	ingest("box-a", 6)          // ingest sweeps the sending box
	require.Equal(t, []uint64{4, 5, 6}, seqsOf("box-a"))
	require.Equal(t, []uint64{1, 2}, seqsOf("box-b"), "a silent box waits for the sweep")
	n, err = e.c.SweepEvents()
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Empty(t, seqsOf("box-b"))
	require.EqualValues(t, 5, e.c.Stats().EventsExpired)

	// A resend of deleted events is still a duplicate, not new.
	raw, stored, err := e.c.IngestEvents("box-a", events(1, 2, 3))
	require.NoError(t, err)
	require.Zero(t, stored)
	require.EqualValues(t, 6, ackThrough(t, e, raw))
	high, err := e.c.HighestSeq("box-a")
	require.NoError(t, err)
	require.EqualValues(t, 6, high)

	e.clock.Add(91 * 24 * time.Hour)
	n, err = e.c.SweepEvents()
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Empty(t, seqsOf("box-a"))
}

// TestBusyBoxUnaffected: a busy box's day (12 keys each taken and returned
// ten times, with the events a real controller makes, and some refusals)
// is stored whole within the byte budget; the figures are logged.
func TestBusyBoxUnaffected(t *testing.T) {
	e := newEnv(t, nil)
	var day []box.Event
	add := func(ev box.Event) {
		ev.Seq = uint64(len(day) + 1)
		ev.Time = e.clock.Now()
		day = append(day, ev)
	}
	for round := range 10 {
		for slot := 1; slot <= 12; slot++ {
			keyID, grantID := fmt.Sprintf("van-%02d-key", slot), fmt.Sprintf("fleetio-assignment-%08d", 1000*round+slot)
			add(box.Event{Type: box.EventCodeAccepted, GrantID: grantID, Detail: "booking"})
			add(box.Event{Type: box.EventSlotReleased, Slot: slot, KeyID: keyID, GrantID: grantID, Purpose: box.PurposeTake})
			add(box.Event{Type: box.EventKeyTaken, Slot: slot, KeyID: keyID, GrantID: grantID})
			add(box.Event{Type: box.EventSlotRelocked, Slot: slot, Reason: box.ReasonKeyTaken})
			add(box.Event{Type: box.EventSlotReleased, Slot: slot, KeyID: keyID, FobUID: "01000734E0", Purpose: box.PurposeReturn})
			add(box.Event{Type: box.EventKeyReturned, Slot: slot, KeyID: keyID, FobUID: "01000734E0", ReturnBy: box.ReturnByFob, SeatedMS: 2400})
			add(box.Event{Type: box.EventSlotRelocked, Slot: slot, Reason: box.ReasonKeyReturned})
			add(box.Event{Type: box.EventCodeRefused, Reason: box.ReasonUnknownCode, Failures: 1})
		}
	}
	for range 100 {
		add(box.Event{Type: box.EventRecordsApplied, Detail: "delta revision 41 to 42: 0 keys, 1 grants put, 0 keys, 0 grants deleted"})
	}
	// Sent as the link does: a batch per event or two over the day, here
	// in 24 hourly batches.
	per := len(day)/24 + 1
	for i := 0; i < len(day); i += per {
		raw, _, err := e.c.IngestEvents("box-a", wire.EventBatch{V: wire.Version, Box: "box-a", Events: day[i:min(i+per, len(day))]})
		require.NoError(t, err)
		require.EqualValues(t, min(i+per, len(day)), ackThrough(t, e, raw))
		e.clock.Add(time.Hour)
	}
	n, count := storedBytes(t, e.c, "box-a")
	require.Equal(t, len(day), count)
	t.Logf("a busy day: %d events, %d bytes (%d a event); budget %d bytes an hour, burst %d",
		count, n, n/count, int(cloud.DefaultEventBytes.PerSecond*3600), cloud.DefaultEventBytes.Burst)
	st := e.c.Stats()
	require.Zero(t, st.EventsOversize+st.EventsOverBudget+st.EventsThrottled)

	// The same box back from a month offline drains its whole outbox at once.
	e2 := newEnv(t, func(o *cloud.Options) { o.EventRate = cloud.Rate{PerSecond: 1e6, Burst: 1e6} })
	var month []box.Event
	for d := range 30 {
		for _, ev := range day {
			ev.Seq += uint64(d * len(day))
			month = append(month, ev)
		}
	}
	for i := 0; i < len(month); i += 500 {
		_, stored, err := e2.c.IngestEvents("box-a", wire.EventBatch{V: wire.Version, Box: "box-a", Events: month[i:min(i+500, len(month))]})
		require.NoError(t, err)
		require.Equal(t, min(500, len(month)-i), stored)
	}
	t.Logf("a month's outbox: %d events, store %d bytes on disk", len(month), e2.store.size(t))
}
