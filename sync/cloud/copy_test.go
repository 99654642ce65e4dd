package cloud_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// TestCopyToPostgres: a bbolt store with two boxes, everything a box has
// (keys, grants with codes, a revoked and a deleted grant, a trimmed log,
// events across days, a re-registered box's numbering, a status, a command
// and its result) copied into PostgreSQL arrives row by row, and the
// PostgreSQL store answers as the file did: same records, revisions,
// deltas, events, codes that open.
func TestCopyToPostgres(t *testing.T) {
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("copies into PostgreSQL: runs with the PostgreSQL engine's tests (" + pgtest.EnvEngine + "=postgres)")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	clock := &fakeNow{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "cloud.db")
	opts := cloud.Options{Path: path, Signer: wire.Signer{KeyID: "k1", Key: priv}, Now: clock.Now, LogLimit: 30,
		EventRate: cloud.Rate{PerSecond: 1e6, Burst: 1e6}, Logger: quiet}
	src, err := cloud.Open(opts)
	require.NoError(t, err)
	boxKeys := map[string]*ecdh.PrivateKey{}
	for _, id := range []string{"box-a", "box-b"} {
		boxKeys[id], err = ecdh.X25519().GenerateKey(rand.Reader)
		require.NoError(t, err)
		require.NoError(t, src.RegisterBox(id, boxKeys[id].PublicKey().Bytes()))
	}
	for i := 1; i <= 5; i++ {
		_, err := src.PutKey("box-a", key(i))
		require.NoError(t, err)
	}
	for i := range 40 { // past LogLimit: the log is trimmed
		_, err := src.PutGrant("box-a", booking(fmt.Sprintf("g%02d", i), key(i%5+1).ID), fmt.Sprintf("%06d", 500000+i))
		require.NoError(t, err)
	}
	_, err = src.RevokeGrant("box-a", "g03")
	require.NoError(t, err)
	_, err = src.DeleteGrant("box-a", "g04")
	require.NoError(t, err)
	_, err = src.PutKey("box-b", key(9))
	require.NoError(t, err)
	for d := range 3 { // events received on three days
		b := events(seqRange(uint64(d*10+1), uint64(d*10+10))...)
		_, _, err := src.IngestEvents("box-a", b)
		require.NoError(t, err)
		clock.Add(24 * time.Hour)
	}
	// box-b re-flashed: a new key, its numbering pending until its first batch.
	_, _, err = src.IngestEvents("box-b", wire.EventBatch{V: wire.Version, Box: "box-b", Events: events(1, 2).Events})
	require.NoError(t, err)
	newKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, src.RegisterBox("box-b", newKey.PublicKey().Bytes()))
	boxKeys["box-b"] = newKey
	require.NoError(t, src.SetStatus("box-a", wire.Status{V: wire.Version, Box: "box-a", Online: true, Revision: 12}))
	_, cmd, err := src.Command("box-a", wire.CommandReleaseSlot, 3, "tech", "stuck key", time.Hour)
	require.NoError(t, err)
	require.NoError(t, src.SetCommandResult("box-a", wire.CommandResult{V: wire.Version, Box: "box-a", ID: cmd.ID, OK: true}))
	_, cmd2, err := src.Command("box-a", wire.CommandResync, 0, "", "", time.Hour)
	require.NoError(t, err)
	require.NoError(t, src.Close())

	pool := pgPool(t, pgtest.New(t))
	n, err := cloud.CopyToPostgres(context.Background(), path, pool, quiet)
	require.NoError(t, err)
	require.Equal(t, cloud.CopyCounts{Meta: 3, Boxes: 2, Keys: 6, Fobs: 6, Grants: 39, Codes: 39,
		LogEntries: 30 + 1, Events: 32, EventDays: 4, Commands: 2}, n,
		"meta: schema, code key, check; box-b's key is one log entry; box-a's 30 of 47")

	// Both stores, opened as they would be, answer the same.
	src, err = cloud.Open(opts)
	require.NoError(t, err)
	defer src.Close()
	pgOpts := opts
	pgOpts.Path, pgOpts.Postgres = "", pool
	dst, err := cloud.Open(pgOpts)
	require.NoError(t, err)
	defer dst.Close()
	ids, err := dst.Boxes()
	require.NoError(t, err)
	require.Equal(t, []string{"box-a", "box-b"}, ids)
	for _, id := range ids {
		for _, f := range []func(c *cloud.Cloud) (any, error){
			func(c *cloud.Cloud) (any, error) { return c.Revision(id) },
			func(c *cloud.Cloud) (any, error) { return c.HighestSeq(id) },
			func(c *cloud.Cloud) (any, error) { return c.Events(id, 0, 100) },
			func(c *cloud.Cloud) (any, error) {
				k, g, err := c.Records(id)
				return []any{k, g}, err
			},
			func(c *cloud.Cloud) (any, error) {
				st, ok, err := c.Status(id)
				return []any{st, ok}, err
			},
		} {
			want, err := f(src)
			require.NoError(t, err)
			got, err := f(dst)
			require.NoError(t, err)
			require.Equal(t, want, got, "box %s", id)
		}
		// A delta from the oldest revision the log holds, and a snapshot:
		// the same records and codes from either store.
		rev, err := src.Revision(id)
		require.NoError(t, err)
		for _, have := range []uint64{0, max(rev, 30) - 30, rev - 1} {
			want := openAll(t, src, id, boxKeys[id], priv, have)
			got := openAll(t, dst, id, boxKeys[id], priv, have)
			require.Equal(t, want, got, "box %s from %d", id, have)
		}
	}
	res, ok, err := dst.CommandResult("box-a", cmd.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, res.OK)
	_, ok, err = dst.CommandResult("box-a", cmd2.ID)
	require.NoError(t, err)
	require.False(t, ok, "a command not answered yet")

	// box-b's first batch after its re-flash confirms the new numbering,
	// in the copy as it would have in the file.
	_, stored, err := dst.IngestEvents("box-b", wire.EventBatch{V: wire.Version, Box: "box-b", Events: events(1).Events})
	require.NoError(t, err)
	require.Equal(t, 1, stored)
	evs, err := dst.Events("box-b", 2, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.EqualValues(t, 3, evs[0].Seq)

	// A second copy (the file closed again) is refused and changes nothing.
	require.NoError(t, src.Close())
	_, err = cloud.CopyToPostgres(context.Background(), path, pool, quiet)
	require.ErrorIs(t, err, cloud.ErrNotEmpty)
	high, err := dst.HighestSeq("box-b")
	require.NoError(t, err)
	require.EqualValues(t, 3, high)
}

// openAll is what a box learns from c's answer to have: each message's
// records with their codes opened, signatures checked.
func openAll(t *testing.T, c *cloud.Cloud, id string, boxKey *ecdh.PrivateKey, signer ed25519.PrivateKey, have uint64) []any {
	t.Helper()
	v := wire.Verifier{Keys: map[string]ed25519.PublicKey{"k1": signer.Public().(ed25519.PublicKey)},
		BoxKey: boxKey.PublicKey().Bytes()}
	msgs, err := c.Answer(wire.SyncRequest{V: wire.Version, Box: id, Have: have})
	require.NoError(t, err)
	var out []any
	for _, m := range msgs {
		var b wire.RecordBatch
		require.NoError(t, v.Open(m, wire.KindRecords, id, &b))
		codes := map[string]string{}
		if len(b.Grants) > 0 {
			o, err := wire.NewCodeOpener(boxKey, b.Ephemeral, id, b.To)
			require.NoError(t, err)
			for i, g := range b.Grants {
				if g.CodeSealed != nil {
					codes[g.ID], err = o.Open(g.ID, g.CodeSealed)
					require.NoError(t, err)
				}
				b.Grants[i].CodeSealed = nil
			}
		}
		var grants []box.Grant
		for _, g := range b.Grants {
			grants = append(grants, g.Grant)
		}
		out = append(out, []any{b.From, b.To, b.Snapshot, b.Chunk, b.Chunks, b.Keys, b.DeleteKeys, grants,
			b.DeleteGrants, codes})
	}
	return out
}

// TestCopyToPostgresRefuses: a file that is not a cloud store, or none,
// copies nothing.
func TestCopyToPostgresRefuses(t *testing.T) {
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("copies into PostgreSQL: runs with the PostgreSQL engine's tests (" + pgtest.EnvEngine + "=postgres)")
	}
	pool := pgPool(t, pgtest.New(t))
	dir := t.TempDir()
	_, err := cloud.CopyToPostgres(context.Background(), filepath.Join(dir, "none.db"), pool, nil)
	require.ErrorContains(t, err, "none.db")

	// A bbolt file of another store (the box's own, say).
	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("slots"))
		return err
	}))
	require.NoError(t, db.Close())
	_, err = cloud.CopyToPostgres(context.Background(), other, pool, nil)
	require.ErrorContains(t, err, "not a cloud store")
	var used bool
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT EXISTS (SELECT 1 FROM cloud_meta) OR EXISTS (SELECT 1 FROM cloud_boxes)`).Scan(&used))
	require.False(t, used)
}
