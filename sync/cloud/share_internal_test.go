package cloud

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// TestCatchUpSchedule drives the catch-up scans by hand: a box whose
// status stays online behind the store gets its first catch-up at the
// second scan that sees it so, then at scans doubling apart up to one per
// catchUpMaxScans; a box that reports a new revision starts afresh, one
// that is current or offline is left alone.
func TestCatchUpSchedule(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	o := Options{Path: filepath.Join(t.TempDir(), "cloud.db"), Signer: wire.Signer{Key: priv},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if pgtest.Engine() == pgtest.Postgres {
		pool, err := pgdb.Open(context.Background(), pgtest.New(t), pgdb.Options{})
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		o.Postgres = pool
	}
	c, err := Open(o)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	for _, id := range []string{"box-a", "box-b", "box-c"} {
		require.NoError(t, c.RegisterBox(id, boxKey.PublicKey().Bytes()))
		_, err := c.PutKey(id, box.Key{ID: "k1", FobUID: "01000734E0", Slot: 1})
		require.NoError(t, err)
	}
	status := func(id string, online bool, rev uint64) {
		t.Helper()
		require.NoError(t, c.SetStatus(id, wire.Status{V: wire.Version, Box: id, Online: online, Revision: rev}))
	}
	status("box-a", true, 0)  // behind
	status("box-b", true, 1)  // current
	status("box-c", false, 0) // behind but offline: it asks when it connects

	s := &server{done: make(chan struct{}), queues: make([]chan job, workers)}
	for i := range s.queues {
		s.queues[i] = make(chan job, queueLen)
	}
	cu := &catchUp{boxes: map[string]*behind{}}
	scan := func() []job {
		t.Helper()
		require.NoError(t, c.catchUpScan(s, cu))
		var got []job
		for _, q := range s.queues {
			for len(q) > 0 {
				got = append(got, <-q)
			}
		}
		return got
	}
	var at []int
	for n := 1; n <= 1000; n++ {
		for _, j := range scan() {
			require.Equal(t, job{box: "box-a", leaf: leafCatchUp, from: 0}, j)
			at = append(at, n)
		}
	}
	require.Equal(t, []int{2, 4, 8, 16, 32, 64, 128, 256, 512, 812}, at,
		"second sighting, then doubling, then one per catchUpMaxScans")
	require.EqualValues(t, len(at), c.Stats().CatchUps)

	// The box moves on but is still behind (it applied one batch of
	// two): a new revision reported is a new episode.
	_, err = c.PutKey("box-a", box.Key{ID: "k2", FobUID: "01000734E1", Slot: 2})
	require.NoError(t, err)
	status("box-a", true, 1)
	require.Empty(t, scan(), "first sighting at the new revision: a push may be on its way")
	require.Equal(t, []job{{box: "box-a", leaf: leafCatchUp, from: 1}}, scan())

	// The worker checks again before answering: a box current by then
	// gets nothing.
	status("box-a", true, 2)
	require.Nil(t, c.process(job{box: "box-a", leaf: leafCatchUp, from: 1}))
	require.Empty(t, scan())
	require.Empty(t, cu.boxes, "nothing remembered of a box that is current")

	// Still behind when the worker gets to it: the delta from the
	// revision reported, signed for the box.
	status("box-a", true, 1)
	msgs := c.process(job{box: "box-a", leaf: leafCatchUp, from: 1})
	require.Len(t, msgs, 1)
	require.Equal(t, wire.Topic("box-a", wire.LeafRecords), msgs[0].topic)
	var b wire.RecordBatch
	v := wire.Verifier{Keys: map[string]ed25519.PublicKey{"": priv.Public().(ed25519.PublicKey)},
		BoxKey: boxKey.PublicKey().Bytes()}
	require.NoError(t, v.Open(msgs[0].payload, wire.KindRecords, "box-a", &b))
	require.EqualValues(t, 1, b.From)
	require.EqualValues(t, 2, b.To)
	require.False(t, b.Snapshot)
}

func TestShareGroupChecked(t *testing.T) {
	for _, g := range []string{"a/b", "+", "g#", "has space", string(make([]byte, maxShareGroup+1))} {
		require.Error(t, checkShareGroup(g), "%q", g)
	}
	for _, g := range []string{"", "smartbox-cloud", "g1"} {
		require.NoError(t, checkShareGroup(g))
	}
}
