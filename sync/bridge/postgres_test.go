package bridge

import (
	"context"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// pgOnly skips a test of what only a bridge on PostgreSQL does when the
// suite runs on bbolt (the PostgreSQL pass of make test runs it).
func pgOnly(t *testing.T) {
	t.Helper()
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("PostgreSQL only: runs in the SMARTBOX_TEST_STORE=postgres pass")
	}
}

// Replicas on one database, each with a data directory of its own, sign
// with one key, issue from one CA and take one admin token; the first to
// start made them, and a restart keeps them.
func TestReplicasShareSecrets(t *testing.T) {
	pgOnly(t)
	url := pgtest.New(t)
	a := startTest(t, Options{Store: StoreOptions{URL: url, Replica: "a"}})
	b := startTest(t, Options{Store: StoreOptions{URL: url, Replica: "b"}})
	require.True(t, a.SigningKeyCreated())
	require.False(t, b.SigningKeyCreated())
	require.Equal(t, a.SigningKeyLine(), b.SigningKeyLine())
	require.Equal(t, a.CACert(), b.CACert())
	require.Equal(t, a.AdminToken(), b.AdminToken())
	// The CLI on each replica's machine finds the token in its data dir.
	for _, r := range []*testBridge{a, b} {
		tok, err := os.ReadFile(filepath.Join(r.dir, FileAdminToken))
		require.NoError(t, err)
		require.Equal(t, a.AdminToken()+"\n", string(tok))
		_, err = os.Stat(filepath.Join(r.dir, FileSigningKey))
		require.ErrorIs(t, err, os.ErrNotExist, "the signing key is in the database only")
	}
	// A box registered through one replica is known to the other.
	registerTestBox(t, a, "depot-1")
	boxes, err := b.Cloud().Boxes()
	require.NoError(t, err)
	require.Contains(t, boxes, "depot-1")
	require.NoError(t, a.Close())
	again := startTest(t, Options{DataDir: a.dir, Store: StoreOptions{URL: url}})
	require.False(t, again.SigningKeyCreated())
	require.Equal(t, b.SigningKeyLine(), again.SigningKeyLine())
}

// A depot's data directory (its signing key file) on an empty database is
// refused: that depot's boxes trust its key, and the start would make
// another. The error says what to run.
func TestDepotKeyOnEmptyDatabaseRefused(t *testing.T) {
	pgOnly(t)
	dir := oldDataDir(t)
	_, err := Start(t.Context(), Options{DataDir: dir, Store: StoreOptions{URL: pgtest.New(t)}})
	require.ErrorContains(t, err, "smartbox-bridge migrate")
	require.ErrorContains(t, err, filepath.Join(dir, FileSigningKey))
}

// MoveToPostgres takes a depot's every store and secret into an empty
// database: a replica started on it with a fresh data directory has the
// depot's signing key, CA and admin token, its boxes' accounts and
// certificates, keys and grants, links and bookings. A second move, and a
// start during a move, are refused.
func TestMoveToPostgres(t *testing.T) {
	pgOnly(t)
	ctx := context.Background()
	dir := oldDataDir(t)
	// One start on bbolt: the renames, the CA and the admin token, as a
	// depot that has run has them; and a box certificate.
	depot, err := Start(ctx, Options{DataDir: dir})
	require.NoError(t, err)
	line, caCert, token := depot.SigningKeyLine(), depot.CACert(), depot.AdminToken()
	notAfter := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	require.NoError(t, depot.accounts.SetCert("depot-2", issuedCert{Serial: big.NewInt(0xabc), NotAfter: notAfter, KeySHA256: "k"}, false, time.Now()))
	require.NoError(t, depot.Close())

	url := pgtest.New(t)
	rep, err := MoveToPostgres(ctx, dir, url, nil)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Secrets)
	require.Equal(t, 2, rep.Accounts)
	require.Equal(t, 1, rep.Cloud.Boxes)
	require.Equal(t, 1, rep.Cloud.Grants)
	require.Equal(t, 1, rep.Cloud.Keys)

	_, err = MoveToPostgres(ctx, dir, url, nil)
	require.ErrorContains(t, err, "already holds a bridge's data")

	r := startTest(t, Options{Store: StoreOptions{URL: url}})
	require.False(t, r.SigningKeyCreated())
	require.Equal(t, line, r.SigningKeyLine(), "the boxes still trust the signer")
	require.Equal(t, caCert, r.CACert())
	require.Equal(t, token, r.AdminToken())
	requireOldDepotData(t, r)
	serial, ok := r.accounts.CertSerial("depot-2")
	require.True(t, ok)
	require.Equal(t, int64(0xabc), serial.Int64())

	// A move cut short leaves its marker: no replica starts on it.
	_, err = r.pool.Exec(ctx, `INSERT INTO bridge_secrets (name, value) VALUES ($1, 'x')`, secretMoving)
	require.NoError(t, err)
	_, err = Start(ctx, Options{DataDir: t.TempDir(), Store: StoreOptions{URL: url}})
	require.ErrorContains(t, err, "is moving a depot into this database")
}
