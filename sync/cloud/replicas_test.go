package cloud_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"slices"
	gosync "sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// What only PostgreSQL has: several Clouds (replicas) on one database.
// One bbolt file has one process (its file lock), so these run on the
// PostgreSQL engine only.

func needReplicas(t *testing.T) {
	t.Helper()
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("replicas on one store: bbolt has one process per file (its lock); run with " +
			pgtest.EnvEngine + "=postgres")
	}
}

// TestReplicasPutGrants: two Clouds on one database put grants to one box
// at once. The box's revisions are serialised in the database: every put
// gets its own revision, they run 2..N+1 with none missing, and the log
// makes a delta from before them all that brings a box to exactly the
// records stored, every code opening (one code key for both).
func TestReplicasPutGrants(t *testing.T) {
	needReplicas(t)
	e := newEnv(t, nil)
	other := e.another(t)
	_, err := e.c.PutKey("box-a", key(1))
	require.NoError(t, err)
	const perWorker, workers = 20, 4 // per replica
	var mu gosync.Mutex
	var revs []uint64
	var wg gosync.WaitGroup
	errs := make(chan error, 2*workers)
	for r, c := range []*cloud.Cloud{e.c, other} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					n := (r*workers+w)*perWorker + i
					rev, err := c.PutGrant("box-a", booking(fmt.Sprintf("g%03d", n), "k1"), fmt.Sprintf("%06d", 100000+n))
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					revs = append(revs, rev)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	total := 2 * workers * perWorker
	slices.Sort(revs)
	want := make([]uint64, total)
	for i := range want {
		want[i] = uint64(i + 2) // revision 1 is the key
	}
	require.Equal(t, want, revs, "one revision per put, none twice, none missing")
	for _, c := range []*cloud.Cloud{e.c, other} {
		rev, err := c.Revision("box-a")
		require.NoError(t, err)
		require.EqualValues(t, total+1, rev)
	}

	// A box at revision 1 is brought current by deltas from the log, by
	// either replica.
	for _, c := range []*cloud.Cloud{e.c, other} {
		r := e.replica(t)
		r.rev, r.keys["k1"] = 1, key(1)
		msgs, err := c.Answer(wire.SyncRequest{V: wire.Version, Box: "box-a", Have: 1})
		require.NoError(t, err)
		for _, m := range msgs {
			b, _ := e.open(t, m)
			require.False(t, b.Snapshot, "the log holds every revision: deltas, not a snapshot")
		}
		r.apply(msgs)
		r.requireSame()
		require.Len(t, r.codes, total)
		for n := range total {
			require.Equal(t, fmt.Sprintf("%06d", 100000+n), r.codes[fmt.Sprintf("g%03d", n)])
		}
	}
}

// TestReplicasIngestSameBatch: the same event batches reach two Clouds at
// once (a box resending while the first replica's ack is in flight, or a
// broker delivering twice). Each event is stored once, both acks say how
// far the stored run goes, and the stored log has no gap.
func TestReplicasIngestSameBatch(t *testing.T) {
	needReplicas(t)
	e := newEnv(t, func(o *cloud.Options) { o.EventRate = cloud.Rate{PerSecond: 1e6, Burst: 1e6} })
	other := e.another(t)
	const rounds, per = 10, 50
	for round := range rounds {
		b := events(seqRange(uint64(round*per+1), uint64((round+1)*per))...)
		var wg gosync.WaitGroup
		stored := make([]int, 2)
		acks := make([][]byte, 2)
		errs := make([]error, 2)
		for i, c := range []*cloud.Cloud{e.c, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				acks[i], stored[i], errs[i] = c.IngestEvents("box-a", b)
			}()
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.Equal(t, per, stored[0]+stored[1], "round %d: every event stored by one replica only", round)
		for _, a := range acks {
			require.EqualValues(t, (round+1)*per, ackThrough(t, e, a))
		}
	}
	evs, err := other.Events("box-a", 0, rounds*per+10)
	require.NoError(t, err)
	require.Len(t, evs, rounds*per)
	for i, ev := range evs {
		require.EqualValues(t, i+1, ev.Seq)
	}
	high, err := e.c.HighestSeq("box-a")
	require.NoError(t, err)
	require.EqualValues(t, rounds*per, high)
	require.EqualValues(t, rounds*per, e.c.Stats().DuplicateEvents+other.Stats().DuplicateEvents,
		"the replica that came second acked them as duplicates")
}

// TestReplicasCodeKeyOnce: replicas opening a new database at once, none
// given Options.CodeKey, make one code key between them: a code put
// through any replica opens from a snapshot made by any other.
func TestReplicasCodeKeyOnce(t *testing.T) {
	needReplicas(t)
	st := newStore(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	const n = 4
	clouds := make([]*cloud.Cloud, n)
	errs := make([]error, n)
	stores := make([]storeAt, n)
	for i := range stores {
		stores[i] = st.replica(t)
	}
	var wg gosync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clouds[i], errs[i] = cloud.Open(stores[i].opts(cloud.Options{Signer: wire.Signer{KeyID: "k1", Key: priv}}))
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		t.Cleanup(func() { clouds[i].Close() })
	}
	var keys int
	require.NoError(t, st.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM cloud_meta WHERE name = 'code_key'`).Scan(&keys))
	require.Equal(t, 1, keys)

	e := &env{store: st}
	e.verifier.Keys = map[string]ed25519.PublicKey{"k1": priv.Public().(ed25519.PublicKey)}
	e.boxKey, err = ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	e.verifier.BoxKey = e.boxKey.PublicKey().Bytes()
	require.NoError(t, clouds[0].RegisterBox("box-a", e.verifier.BoxKey))
	_, err = clouds[1].PutKey("box-a", key(1))
	require.NoError(t, err)
	_, err = clouds[2].PutGrant("box-a", booking("g1", "k1"), "4815162342")
	require.NoError(t, err)
	for _, c := range clouds {
		msgs, err := c.Answer(wire.SyncRequest{V: wire.Version, Box: "box-a"})
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		_, codes := e.open(t, msgs[0])
		require.Equal(t, "4815162342", codes["g1"])
	}
	// A later Open, given no key, takes the one made.
	c, err := cloud.Open(st.replica(t).opts(cloud.Options{Signer: wire.Signer{KeyID: "k1", Key: priv}}))
	require.NoError(t, err)
	defer c.Close()
	keysNow, grants, err := c.Records("box-a")
	require.NoError(t, err)
	require.Len(t, keysNow, 1)
	require.Equal(t, "k1", keysNow[0].ID)
	require.Len(t, grants, 1)
}
