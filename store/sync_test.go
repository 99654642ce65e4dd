package store

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
)

func TestSyncKey(t *testing.T) {
	s, clock := newStore(t)
	k1, err := s.SyncKey()
	require.NoError(t, err)
	pub, err := s.SyncPublicKey()
	require.NoError(t, err)
	require.Len(t, pub, 32)
	require.Equal(t, k1.PublicKey().Bytes(), pub)

	s = reopen(t, s, clock)
	k2, err := s.SyncKey()
	require.NoError(t, err)
	require.True(t, k1.Equal(k2), "the key is kept in the file")

	t.Run("file made before sync existed", func(t *testing.T) {
		s, _ := newStore(t)
		require.NoError(t, s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketSync) }))
		_, err := s.Provision()
		require.ErrorIs(t, err, ErrNotProvisioned)
		to, chunks, have, err := s.StagedChunks()
		require.NoError(t, err)
		require.Zero(t, to+uint64(chunks)+uint64(have))
		k, err := s.SyncKey()
		require.NoError(t, err)
		again, err := s.SyncKey()
		require.NoError(t, err)
		require.True(t, k.Equal(again))
	})
}

func TestProvision(t *testing.T) {
	s, clock := newStore(t)
	_, err := s.Provision()
	require.ErrorIs(t, err, ErrNotProvisioned)

	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p := Provision{CloudKeys: map[string]ed25519.PublicKey{"k1": pub}, BrokerURL: "ssl://cloud:8883", At: t0}
	require.NoError(t, s.SetProvision(p))
	s = reopen(t, s, clock)
	got, err := s.Provision()
	require.NoError(t, err)
	require.Equal(t, p, got)

	for name, bad := range map[string]Provision{
		"no keys":   {},
		"short key": {CloudKeys: map[string]ed25519.PublicKey{"k1": pub[:10]}},
		"bad kid":   {CloudKeys: map[string]ed25519.PublicKey{"k 1": pub}},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, s.SetProvision(bad))
			got, err := s.Provision()
			require.NoError(t, err)
			require.Equal(t, p, got, "unchanged")
		})
	}
}

func TestStageChunk(t *testing.T) {
	s, _ := newStore(t)
	mustApply(t, s, Batch{Keys: []box.Key{key("old", 5, fob(50))}, Grants: []box.GrantPut{booking("g-old", "999999", "old")}})

	chunks := []Batch{
		{Keys: []box.Key{key("k1", 1, fob(1)), key("k2", 2, fob(2))}},
		{Grants: []box.GrantPut{booking("g-1", "73914682", "k1")}},
		{Grants: []box.GrantPut{driverCode("d-1", "7", "5550123498")}, Keys: []box.Key{key("k3", 3, fob(3))}},
	}
	done, err := s.StageChunk(20, 3, 3, chunks[2])
	require.NoError(t, err)
	require.False(t, done)
	done, err = s.StageChunk(20, 1, 3, chunks[0])
	require.NoError(t, err)
	require.False(t, done)
	done, err = s.StageChunk(20, 1, 3, chunks[0]) // a duplicate
	require.NoError(t, err)
	require.False(t, done)
	to, n, have, err := s.StagedChunks()
	require.NoError(t, err)
	require.Equal(t, []any{uint64(20), 3, 2}, []any{to, n, have})

	// Staged codes are HMACs, never clear text.
	raw, err := os.ReadFile(s.Path())
	require.NoError(t, err)
	require.NotContains(t, string(raw), "5550123498")

	rev, err := s.Revision()
	require.NoError(t, err)
	require.Equal(t, uint64(1), rev, "nothing applied before the last chunk")

	last := chunks[1]
	last.Events = []box.Event{{Type: box.EventRecordsApplied, Detail: "snapshot"}}
	done, err = s.StageChunk(20, 2, 3, last)
	require.NoError(t, err)
	require.True(t, done)

	rev, err = s.Revision()
	require.NoError(t, err)
	require.Equal(t, uint64(20), rev)
	keys, err := s.Keys()
	require.NoError(t, err)
	require.Equal(t, []box.Key{key("k1", 1, fob(1)), key("k2", 2, fob(2)), key("k3", 3, fob(3))}, keys)
	gs, err := s.Grants()
	require.NoError(t, err)
	require.Equal(t, []string{"d-1", "g-1"}, grantIDs(gs))
	byCode, err := s.GrantsByCode("73914682")
	require.NoError(t, err)
	require.Equal(t, []string{"g-1"}, grantIDs(byCode))
	byCode, err = s.GrantsByCode("999999")
	require.NoError(t, err)
	require.Empty(t, byCode)
	evs, err := s.Events(0, 0)
	require.NoError(t, err)
	require.Equal(t, box.EventRecordsApplied, evs[len(evs)-1].Type)
	to, n, have, err = s.StagedChunks()
	require.NoError(t, err)
	require.Equal(t, []any{uint64(0), 0, 0}, []any{to, n, have}, "stage cleared")

	t.Run("another snapshot discards the stage", func(t *testing.T) {
		done, err := s.StageChunk(30, 1, 2, chunks[0])
		require.NoError(t, err)
		require.False(t, done)
		done, err = s.StageChunk(31, 2, 2, Batch{Grants: []box.GrantPut{booking("g-31", "123456", "k1")}})
		require.NoError(t, err)
		require.False(t, done, "chunk 1 was of revision 30")
		done, err = s.StageChunk(31, 1, 2, chunks[0])
		require.NoError(t, err)
		require.True(t, done)
		gs, err := s.Grants()
		require.NoError(t, err)
		require.Equal(t, []string{"g-31"}, grantIDs(gs))
	})

	t.Run("refused", func(t *testing.T) {
		rev, err := s.Revision()
		require.NoError(t, err)
		for name, tc := range map[string]struct {
			to            uint64
			chunk, chunks int
			b             Batch
		}{
			"older than the store": {to: rev - 1, chunk: 1, chunks: 1},
			"chunk 0":              {to: rev + 1, chunk: 0, chunks: 1},
			"chunk past the count": {to: rev + 1, chunk: 3, chunks: 2},
			"too many chunks":      {to: rev + 1, chunk: 1, chunks: MaxSnapshotChunks + 1},
			"revision 0":           {to: 0, chunk: 1, chunks: 1},
			"bad key":              {to: rev + 1, chunk: 1, chunks: 1, b: Batch{Keys: []box.Key{key("k1", 0, fob(1))}}},
			"bad code":             {to: rev + 1, chunk: 1, chunks: 1, b: Batch{Grants: []box.GrantPut{booking("g", "12ab56", "k1")}}},
		} {
			t.Run(name, func(t *testing.T) {
				done, err := s.StageChunk(tc.to, tc.chunk, tc.chunks, tc.b)
				require.Error(t, err)
				require.False(t, done)
				now, err := s.Revision()
				require.NoError(t, err)
				require.Equal(t, rev, now)
			})
		}
		_, err = s.StageChunk(rev-1, 1, 1, Batch{})
		require.ErrorIs(t, err, ErrRevisionMismatch)
	})

	t.Run("a key in two chunks discards the stage", func(t *testing.T) {
		rev, err := s.Revision()
		require.NoError(t, err)
		_, err = s.StageChunk(rev+1, 1, 2, Batch{Keys: []box.Key{key("k1", 1, fob(1))}})
		require.NoError(t, err)
		done, err := s.StageChunk(rev+1, 2, 2, Batch{Keys: []box.Key{key("k1", 2, fob(2))}})
		require.ErrorIs(t, err, box.ErrInvalidRecord)
		require.False(t, done)
		_, _, have, err := s.StagedChunks()
		require.NoError(t, err)
		require.Zero(t, have)
		now, err := s.Revision()
		require.NoError(t, err)
		require.Equal(t, rev, now)
	})
}

func TestCommands(t *testing.T) {
	s, clock := newStore(t)
	seen, res, err := s.BeginCommand("c-1")
	require.NoError(t, err)
	require.False(t, seen)
	require.Nil(t, res)

	seen, res, err = s.BeginCommand("c-1")
	require.NoError(t, err)
	require.True(t, seen)
	require.Nil(t, res, "not finished")

	require.NoError(t, s.FinishCommand("c-1", []byte(`{"ok":true}`)))
	s = reopen(t, s, clock)
	seen, res, err = s.BeginCommand("c-1")
	require.NoError(t, err)
	require.True(t, seen)
	require.JSONEq(t, `{"ok":true}`, string(res))

	_, _, err = s.BeginCommand("bad id")
	require.Error(t, err)
	require.Error(t, s.FinishCommand("c-1", nil))

	// Only the last MaxCommandIDs are remembered.
	for i := 2; i <= MaxCommandIDs+5; i++ {
		seen, _, err := s.BeginCommand(fmt.Sprintf("c-%d", i))
		require.NoError(t, err)
		require.False(t, seen)
	}
	for i, want := range map[int]bool{1: false, 5: false, 6: true, MaxCommandIDs + 5: true} {
		require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
			got := tx.Bucket(bucketSync).Bucket(bucketCommands).Get([]byte(fmt.Sprintf("c-%d", i))) != nil
			require.Equal(t, want, got, "c-%d", i)
			require.Equal(t, MaxCommandIDs, tx.Bucket(bucketSync).Bucket(bucketCommandOrder).Stats().KeyN)
			return nil
		}))
	}
}
