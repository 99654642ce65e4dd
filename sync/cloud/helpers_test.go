package cloud_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	gosync "sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// The package's tests run on the engine pgtest.Engine() names (bbolt by
// default, PostgreSQL with SMARTBOX_TEST_STORE=postgres).
func TestMain(m *testing.M) { pgtest.Main(m) }

// storeAt is where a test's cloud keeps its store: a bbolt file in a temp
// directory, or a fresh PostgreSQL database. Opening it again (Options
// from opts) is a restart on the same data.
type storeAt struct {
	path string
	url  string        // the test's database on the PostgreSQL engine
	pool *pgxpool.Pool // a pool on url
}

func newStore(t testing.TB) storeAt {
	t.Helper()
	if pgtest.Engine() != pgtest.Postgres {
		return storeAt{path: filepath.Join(t.TempDir(), "cloud.db")}
	}
	url := pgtest.New(t)
	return storeAt{url: url, pool: pgPool(t, url)}
}

// replica is the same store as another process would open it: on
// PostgreSQL a pool of its own on the same database.
func (s storeAt) replica(t testing.TB) storeAt {
	t.Helper()
	if s.url != "" {
		s.pool = pgPool(t, s.url)
	}
	return s
}

// pgPool opens a pool on url, closed when the test ends.
func pgPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), url, pgdb.Options{})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// size is the store's size on disk: the file, or the database's.
func (s storeAt) size(t testing.TB) int64 {
	t.Helper()
	if s.pool == nil {
		fi, err := os.Stat(s.path)
		require.NoError(t, err)
		return fi.Size()
	}
	var n int64
	require.NoError(t, s.pool.QueryRow(context.Background(), `SELECT pg_database_size(current_database())`).Scan(&n))
	return n
}

// dump is everything the store holds, as an attacker with a copy of it
// reads it: the file's bytes, or every row of every cloud_ table as text.
func (s storeAt) dump(t testing.TB) []byte {
	t.Helper()
	if s.pool == nil {
		raw, err := os.ReadFile(s.path)
		require.NoError(t, err)
		return raw
	}
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name LIKE 'cloud\_%' ORDER BY table_name`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "cloud_grants")
	var out []byte
	for _, table := range tables {
		rows, err := s.pool.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t`)
		require.NoError(t, err)
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, r := range texts {
			out = append(append(out, r...), '\n')
		}
	}
	return out
}

// opts puts the store in o.
func (s storeAt) opts(o cloud.Options) cloud.Options {
	o.Path, o.Postgres = s.path, s.pool
	return o
}

// fakeNow is a settable clock for rate limits, windows and expiry.
type fakeNow struct {
	mu gosync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeNow) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

// env is a cloud with one registered box "box-a" and the box's keys.
type env struct {
	c        *cloud.Cloud
	store    storeAt
	verifier wire.Verifier
	boxKey   *ecdh.PrivateKey
	clock    *fakeNow
	signer   wire.Signer
	opts     cloud.Options // as e.c was opened
}

func (e *env) signerKey(testing.TB) ed25519.PrivateKey { return e.signer.Key }

func newEnv(t testing.TB, tweak func(*cloud.Options)) *env {
	t.Helper()
	st := newStore(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	clock := &fakeNow{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	opts := st.opts(cloud.Options{
		Signer: wire.Signer{KeyID: "k1", Key: priv},
		Now:    clock.Now,
	})
	if tweak != nil {
		tweak(&opts)
	}
	c, err := cloud.Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.RegisterBox("box-a", boxKey.PublicKey().Bytes()))
	return &env{c: c, store: st, verifier: wire.Verifier{Keys: map[string]ed25519.PublicKey{"k1": pub}, BoxKey: boxKey.PublicKey().Bytes()},
		boxKey: boxKey, clock: clock, signer: opts.Signer, opts: opts}
}

// another opens a second Cloud on e's store, as another replica (or a
// restart) would: same signer and clock, its own pool on PostgreSQL.
func (e *env) another(t testing.TB) *cloud.Cloud {
	t.Helper()
	c, err := cloud.Open(e.store.replica(t).opts(e.opts))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func key(i int) box.Key {
	return box.Key{ID: fmt.Sprintf("k%d", i), Name: fmt.Sprintf("Van %d", i), FobUID: fmt.Sprintf("%010X", i), Slot: i%12 + 1}
}

func booking(id string, keys ...string) box.Grant {
	return box.Grant{ID: id, Kind: box.KindBooking, KeyIDs: keys, Source: "fleetio"}
}

// replica is what a box would hold: it applies verified batches by the
// protocol's rules (delta only from its revision, snapshot chunks staged
// and applied together), opening every sealed code.
type replica struct {
	t      testing.TB
	e      *env
	rev    uint64
	keys   map[string]box.Key
	grants map[string]box.Grant
	codes  map[string]string
	stage  []wire.RecordBatch
	staged []map[string]string // the opened codes of each staged chunk
}

func (e *env) replica(t testing.TB) *replica {
	return &replica{t: t, e: e, keys: map[string]box.Key{}, grants: map[string]box.Grant{}, codes: map[string]string{}}
}

// open verifies one message and opens its codes.
func (e *env) open(t testing.TB, msg []byte) (wire.RecordBatch, map[string]string) {
	t.Helper()
	require.LessOrEqual(t, len(msg), wire.MaxMessageSize)
	var b wire.RecordBatch
	require.NoError(t, e.verifier.Open(msg, wire.KindRecords, "box-a", &b))
	codes := map[string]string{}
	if len(b.Grants) > 0 {
		o, err := wire.NewCodeOpener(e.boxKey, b.Ephemeral, "box-a", b.To)
		require.NoError(t, err)
		for _, g := range b.Grants {
			if g.CodeSealed == nil {
				continue
			}
			code, err := o.Open(g.ID, g.CodeSealed)
			require.NoError(t, err, "grant %s", g.ID)
			codes[g.ID] = code
		}
	}
	return b, codes
}

func (r *replica) apply(msgs [][]byte) {
	r.t.Helper()
	for _, m := range msgs {
		b, codes := r.e.open(r.t, m)
		if b.Snapshot {
			if len(r.stage) > 0 && r.stage[0].To != b.To {
				r.stage, r.staged = nil, nil
			}
			r.stage = append(r.stage, b)
			r.staged = append(r.staged, codes)
			if len(r.stage) < b.Chunks {
				continue
			}
			require.GreaterOrEqual(r.t, b.To, r.rev, "snapshot older than the box")
			r.keys, r.grants, r.codes = map[string]box.Key{}, map[string]box.Grant{}, map[string]string{}
			for i, c := range r.stage {
				require.Equal(r.t, i+1, c.Chunk)
				r.put(c, r.staged[i])
			}
			r.stage, r.staged = nil, nil
			r.rev = b.To
			continue
		}
		if b.To <= r.rev {
			continue // a duplicate or a replay: the box ignores it
		}
		require.Equal(r.t, r.rev, b.From, "delta from another revision")
		require.Greater(r.t, b.To, b.From)
		for _, id := range b.DeleteKeys {
			delete(r.keys, id)
		}
		for _, id := range b.DeleteGrants {
			delete(r.grants, id)
			delete(r.codes, id)
		}
		r.put(b, codes)
		r.rev = b.To
	}
}

func (r *replica) put(b wire.RecordBatch, codes map[string]string) {
	for _, k := range b.Keys {
		r.keys[k.ID] = k
	}
	for _, g := range b.Grants {
		r.grants[g.ID] = g.Grant
	}
	for id, code := range codes {
		r.codes[id] = code
	}
}

// requireSame checks the replica holds exactly the cloud's records.
func (r *replica) requireSame() {
	r.t.Helper()
	keys, grants, err := r.e.c.Records("box-a")
	require.NoError(r.t, err)
	rev, err := r.e.c.Revision("box-a")
	require.NoError(r.t, err)
	require.Equal(r.t, rev, r.rev)
	got := make([]box.Key, 0, len(r.keys))
	for _, k := range r.keys {
		got = append(got, k)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
	if keys == nil {
		keys = []box.Key{}
	}
	require.Equal(r.t, keys, got)
	gotG := make([]box.Grant, 0, len(r.grants))
	for _, g := range r.grants {
		gotG = append(gotG, g)
	}
	sort.Slice(gotG, func(i, j int) bool { return gotG[i].ID < gotG[j].ID })
	if grants == nil {
		grants = []box.Grant{}
	}
	require.Equal(r.t, grants, gotG)
}

func (e *env) answer(t testing.TB, have uint64) [][]byte {
	t.Helper()
	msgs, err := e.c.Answer(wire.SyncRequest{V: wire.Version, Box: "box-a", Have: have})
	require.NoError(t, err)
	return msgs
}
