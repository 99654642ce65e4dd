package cloud_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

func events(seqs ...uint64) wire.EventBatch {
	b := wire.EventBatch{V: wire.Version, Box: "box-a"}
	for _, s := range seqs {
		b.Events = append(b.Events, box.Event{Seq: s, Time: time.Date(2026, 11, 2, 8, 0, int(s), 0, time.UTC),
			Type: box.EventCodeAccepted, GrantID: fmt.Sprintf("g%d", s), Slot: 1})
	}
	return b
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestIngestEvents(t *testing.T) {
	type step struct {
		seqs        []uint64
		wantStored  int
		wantThrough uint64
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{seqRange(1, 3), 3, 3}, {seqRange(4, 6), 3, 6}}},
		{"duplicate batch", []step{{seqRange(1, 3), 3, 3}, {seqRange(1, 3), 0, 3}}},
		{"overlapping batch", []step{{seqRange(1, 3), 3, 3}, {seqRange(2, 5), 2, 5}}},
		{"reordered within a batch", []step{{[]uint64{3, 1, 2}, 3, 3}}},
		{"duplicates within a batch", []step{{[]uint64{1, 1, 2, 2}, 2, 2}}},
		{"later batch first", []step{{seqRange(4, 6), 0, 0}, {seqRange(1, 3), 3, 3}, {seqRange(4, 6), 3, 6}}},
		{"gap inside a batch", []step{{[]uint64{1, 2, 4, 5}, 2, 2}, {seqRange(3, 5), 3, 5}}},
		{"empty batch", []step{{nil, 0, 0}, {seqRange(1, 1), 1, 1}, {nil, 0, 1}}},
		{"seq zero is never new", []step{{[]uint64{0}, 0, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			var hooked []uint64
			e.c.OnEvents(func(boxID string, evs []box.Event) {
				require.Equal(t, "box-a", boxID)
				for _, ev := range evs {
					hooked = append(hooked, ev.Seq)
				}
			})
			for i, s := range tc.steps {
				ack, stored, err := e.c.IngestEvents("box-a", events(s.seqs...))
				require.NoError(t, err, "step %d", i)
				require.Equal(t, s.wantStored, stored, "step %d", i)
				var a wire.EventAck
				require.NoError(t, e.verifier.Open(ack, wire.KindEventsAck, "box-a", &a))
				require.Equal(t, s.wantThrough, a.Through, "step %d", i)
			}
			last := tc.steps[len(tc.steps)-1].wantThrough
			got, err := e.c.Events("box-a", 0, 0)
			require.NoError(t, err)
			require.Len(t, got, int(last))
			for i, ev := range got {
				require.EqualValues(t, i+1, ev.Seq, "stored exactly once, in order, no gap")
				require.Equal(t, fmt.Sprintf("g%d", ev.Seq), ev.GrantID)
			}
			require.Equal(t, seqRange(1, last), hooked)
			high, err := e.c.HighestSeq("box-a")
			require.NoError(t, err)
			require.Equal(t, last, high)
		})
	}
	t.Run("paging", func(t *testing.T) {
		e := newEnv(t, nil)
		_, _, err := e.c.IngestEvents("box-a", events(seqRange(1, 10)...))
		require.NoError(t, err)
		got, err := e.c.Events("box-a", 4, 3)
		require.NoError(t, err)
		require.Len(t, got, 3)
		require.EqualValues(t, 5, got[0].Seq)
		got, err = e.c.Events("box-a", 10, 3)
		require.NoError(t, err)
		require.Empty(t, got)
	})
}

func TestIngestRefused(t *testing.T) {
	e := newEnv(t, nil)
	b := events(1, 2)
	b.Box = "box-b"
	_, _, err := e.c.IngestEvents("box-a", b)
	require.ErrorIs(t, err, wire.ErrWrongBox)
	require.EqualValues(t, 1, e.c.Stats().WrongBox)

	b = events(1, 2)
	b.V = 2
	_, _, err = e.c.IngestEvents("box-a", b)
	require.ErrorIs(t, err, wire.ErrVersion)

	b = events(1)
	b.Box = "box-z"
	_, _, err = e.c.IngestEvents("box-z", b)
	require.ErrorIs(t, err, cloud.ErrUnknownBox)

	got, err := e.c.Events("box-a", 0, 0)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestEventFlood(t *testing.T) {
	e := newEnv(t, func(o *cloud.Options) { o.EventRate = cloud.Rate{PerSecond: 2, Burst: 3} })
	require.NoError(t, e.c.RegisterBox("box-b", e.boxKey.PublicKey().Bytes()))
	seq := uint64(0)
	send := func(boxID string) error {
		b := events(seq + 1)
		b.Box = boxID
		_, _, err := e.c.IngestEvents(boxID, b)
		if err == nil && boxID == "box-a" {
			seq++
		}
		return err
	}
	for range 3 {
		require.NoError(t, send("box-a"))
	}
	err := send("box-a")
	require.ErrorIs(t, err, cloud.ErrThrottled)
	require.EqualValues(t, 1, e.c.Stats().EventsThrottled)
	// Another box is not held up by this one.
	require.NoError(t, send("box-b"))
	// Half a second later one more token.
	e.clock.Add(500 * time.Millisecond)
	require.NoError(t, send("box-a"))
	require.ErrorIs(t, send("box-a"), cloud.ErrThrottled)
	got, err := e.c.Events("box-a", 0, 0)
	require.NoError(t, err)
	require.Len(t, got, 4, "throttled batches store nothing (and get no ack)")
}

func BenchmarkIngestEvents(b *testing.B) {
	e := newEnv(b, func(o *cloud.Options) { o.EventRate = cloud.Rate{PerSecond: 1e9, Burst: 1e9} })
	const per = 100
	b.ReportAllocs()
	b.ResetTimer()
	seq := uint64(1)
	for b.Loop() {
		_, n, err := e.c.IngestEvents("box-a", events(seqRange(seq, seq+per-1)...))
		if err != nil || n != per {
			b.Fatalf("ingest: %d stored, %v", n, err)
		}
		seq += per
	}
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "events/s")
}

// A re-flashed box (registered again with a new key) starts its outbox at
// seq 1 again: its events are stored after the old ones, not taken for
// duplicates, and acked in its own numbering. A box that kept its outbox
// through a new key keeps its numbering.
func TestIngestAfterReRegister(t *testing.T) {
	newKey := func() []byte {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		require.NoError(t, err)
		return k.PublicKey().Bytes()
	}
	// ack opens an ack as the box holding pub (its new card) would.
	ack := func(e *env, pub, raw []byte) uint64 {
		var a wire.EventAck
		v := e.verifier
		v.BoxKey = pub
		require.NoError(t, v.Open(raw, wire.KindEventsAck, "box-a", &a))
		return a.Through
	}

	t.Run("re-flashed", func(t *testing.T) {
		e := newEnv(t, nil)
		_, _, err := e.c.IngestEvents("box-a", events(seqRange(1, 5)...))
		require.NoError(t, err)
		require.NoError(t, e.c.RegisterBox("box-a", e.boxKey.PublicKey().Bytes()), "same key: nothing changes")
		pub := newKey()
		require.NoError(t, e.c.RegisterBox("box-a", pub))

		raw, stored, err := e.c.IngestEvents("box-a", events(seqRange(1, 3)...))
		require.NoError(t, err)
		require.Equal(t, 3, stored, "not duplicates")
		require.EqualValues(t, 3, ack(e, pub, raw), "acked in the box's own numbering")
		var a wire.EventAck
		require.ErrorIs(t, e.verifier.Open(raw, wire.KindEventsAck, "box-a", &a), wire.ErrWrongAudience,
			"the old card cannot take the new card's ack")
		raw, stored, err = e.c.IngestEvents("box-a", events(seqRange(2, 4)...))
		require.NoError(t, err)
		require.Equal(t, 1, stored)
		require.EqualValues(t, 4, ack(e, pub, raw))

		got, err := e.c.Events("box-a", 0, 0)
		require.NoError(t, err)
		require.Len(t, got, 9)
		for i, ev := range got {
			require.EqualValues(t, i+1, ev.Seq, "one numbering in the cloud")
		}
		require.Equal(t, "g1", got[5].GrantID, "the new card's first event follows the old ones")
		high, err := e.c.HighestSeq("box-a")
		require.NoError(t, err)
		require.EqualValues(t, 9, high)
	})

	t.Run("kept its outbox", func(t *testing.T) {
		e := newEnv(t, nil)
		_, _, err := e.c.IngestEvents("box-a", events(seqRange(1, 5)...))
		require.NoError(t, err)
		pub := newKey()
		require.NoError(t, e.c.RegisterBox("box-a", pub))
		raw, stored, err := e.c.IngestEvents("box-a", events(seqRange(6, 7)...))
		require.NoError(t, err)
		require.Equal(t, 2, stored)
		require.EqualValues(t, 7, ack(e, pub, raw))
		raw, stored, err = e.c.IngestEvents("box-a", events(seqRange(1, 7)...))
		require.NoError(t, err)
		require.Zero(t, stored, "old ones are still duplicates")
		require.EqualValues(t, 7, ack(e, pub, raw))
	})
}

// TestOddBytesFromABox: what a box may put in JSON strings (NUL, bytes
// that are not UTF-8) is stored and read back on either engine, and a
// command result or an id naming nothing with them is refused as naming
// nothing, not with a store error.
func TestOddBytesFromABox(t *testing.T) {
	e := newEnv(t, nil)
	b := events(1, 2)
	b.Events[0].Detail = "nul \x00 here"
	b.Events[1].Detail = "not utf-8 \xff\xfe"
	raw, stored, err := e.c.IngestEvents("box-a", b)
	require.NoError(t, err)
	require.Equal(t, 2, stored)
	require.EqualValues(t, 2, ackThrough(t, e, raw))
	evs, err := e.c.Events("box-a", 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, "nul \x00 here", evs[0].Detail)
	require.Equal(t, "not utf-8 \ufffd\ufffd", evs[1].Detail, "encoding/json replaces what is not UTF-8")

	require.ErrorIs(t, e.c.SetCommandResult("box-a", wire.CommandResult{V: 1, Box: "box-a", ID: "x\x00"}), cloud.ErrNotFound)
	_, err = e.c.RevokeGrant("box-a", "g\x00")
	require.ErrorIs(t, err, cloud.ErrNotFound)
	_, err = e.c.Revision("box\x00")
	require.ErrorIs(t, err, cloud.ErrUnknownBox)
}
