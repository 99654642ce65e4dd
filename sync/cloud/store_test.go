package cloud_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// TestBoltFile: the bbolt engine's file is private to its owner, one
// process at a time holds it (a second Open says ErrInUse rather than
// waiting forever), and a file that is not a store is refused, not
// overwritten. Its PostgreSQL counterparts are the replica tests (several
// Clouds on one database is what PostgreSQL is for) and
// TestPostgresNewerSchema.
func TestBoltFile(t *testing.T) {
	if pgtest.Engine() == pgtest.Postgres {
		t.Skip("bbolt file: mode, lock and format are the file's; PostgreSQL has no such file")
	}
	e := newEnv(t, nil)
	fi, err := os.Stat(e.store.path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "codes are encrypted, but the file is still nobody else's")

	_, err = cloud.Open(e.opts)
	require.ErrorIs(t, err, cloud.ErrInUse)
	require.Contains(t, err.Error(), e.store.path)

	junk := filepath.Join(t.TempDir(), "cloud.db")
	require.NoError(t, os.WriteFile(junk, []byte("not a bbolt file, and long enough to look like one's first page"), 0o600))
	o := e.opts
	o.Path = junk
	_, err = cloud.Open(o)
	require.Error(t, err)
	raw, err := os.ReadFile(junk)
	require.NoError(t, err)
	require.Equal(t, "not a bbolt file, and long enough to look like one's first page", string(raw), "left as it was")
}

// TestPostgresNewerSchema: a database a newer bridge migrated past what
// this code knows is refused at Open, before anything is read or written.
func TestPostgresNewerSchema(t *testing.T) {
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("schema versions are PostgreSQL's (a bbolt file carries its own, checked by every test's Open)")
	}
	st := newStore(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	opts := st.opts(cloud.Options{Signer: wire.Signer{KeyID: "k1", Key: priv}})
	c, err := cloud.Open(opts)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = st.pool.Exec(context.Background(), `INSERT INTO cloud_schema (version_id, is_applied) VALUES (99, true)`)
	require.NoError(t, err)
	_, err = cloud.Open(opts)
	require.ErrorContains(t, err, "newer bridge")
}
