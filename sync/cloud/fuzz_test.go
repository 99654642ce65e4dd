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

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// FuzzProcess feeds outside bytes, on every leaf a box may publish, to the
// code that handles them: nothing may panic, and whatever is stored must
// keep the event log gap-free.
func FuzzProcess(f *testing.F) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	o := Options{Path: filepath.Join(f.TempDir(), "cloud.db"), Signer: wire.Signer{Key: priv},
		EventRate: Rate{PerSecond: 1e9, Burst: 1 << 30}, SyncRate: Rate{PerSecond: 1e9, Burst: 1 << 30},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if pgtest.Engine() == pgtest.Postgres {
		pool, err := pgdb.Open(context.Background(), pgtest.New(f), pgdb.Options{})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(pool.Close)
		o.Postgres = pool
	}
	c, err := Open(o)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })
	if err := c.RegisterBox("box-a", boxKey.PublicKey().Bytes()); err != nil {
		f.Fatal(err)
	}
	if _, err := c.PutKey("box-a", box.Key{ID: "k1", FobUID: "01000734E0", Slot: 1}); err != nil {
		f.Fatal(err)
	}
	leaves := []string{wire.LeafStatus, wire.LeafSyncRequest, wire.LeafEvents, wire.LeafCommandResult}
	f.Add(uint8(0), []byte(`{"v":1,"box":"box-a","online":true,"revision":0}`))
	f.Add(uint8(1), []byte(`{"v":1,"box":"box-a","have":0}`))
	f.Add(uint8(1), []byte(`{"v":1,"box":"box-a","have":18446744073709551615}`))
	f.Add(uint8(2), []byte(`{"v":1,"box":"box-a","events":[{"seq":1,"type":"box_started","time":"2026-11-02T09:00:00Z"}]}`))
	f.Add(uint8(2), []byte(`{"v":1,"box":"box-b","events":[{"seq":1}]}`))
	f.Add(uint8(3), []byte(`{"v":1,"box":"box-a","id":"x","ok":true}`))
	f.Add(uint8(2), []byte(`{"v":1,"box":"box-a","events":[{"seq":"x"}]}`))
	f.Fuzz(func(t *testing.T, leaf uint8, payload []byte) {
		out := c.process(job{box: "box-a", leaf: leaves[int(leaf)%len(leaves)], payload: payload})
		for _, m := range out {
			if _, leafOut, err := wire.ParseTopic(m.topic); err != nil ||
				(leafOut != wire.LeafRecords && leafOut != wire.LeafEventsAck) {
				t.Fatalf("published on %q", m.topic)
			}
		}
		high, err := c.HighestSeq("box-a")
		if err != nil {
			t.Fatal(err)
		}
		evs, err := c.Events("box-a", 0, int(high)+1)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(evs)) != high {
			t.Fatalf("%d events stored, highest seq %d", len(evs), high)
		}
	})
}
