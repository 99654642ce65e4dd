package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// A depot run on bbolt moves onto PostgreSQL with `migrate` and serves from
// it with a fresh data directory: the same signing key, the box and its
// grant. A second migrate is refused, as is one with no [store].
func TestMigrateDepotToPostgres(t *testing.T) {
	dir := t.TempDir()
	b := startBridge(t, dir, "")
	line := b.svc.SigningKeyLine()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	b.mustCLI(t, "register-box", "--id", "depot-1", "--public-key", base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()))
	b.mustCLI(t, "put-key", "--box", "depot-1", "--key", "van-12", "--fob", "0100073400", "--slot", "3")
	b.mustCLI(t, "put-grant", "--box", "depot-1", "--grant", "booking-1", "--kind", "booking", "--code", "48213579", "--keys", "van-12")
	b.stop(t)

	urlFile := filepath.Join(t.TempDir(), "store.url")
	require.NoError(t, os.WriteFile(urlFile, []byte(pgtest.New(t)+"\n"), 0o600))
	store := "[store]\nurl_file = \"" + urlFile + "\"\n"
	cfg := filepath.Join(t.TempDir(), "bridge.toml")
	require.NoError(t, os.WriteFile(cfg, []byte("data_dir = \""+dir+"\"\n"+store), 0o600))
	migrate := func() (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"migrate", "--config", cfg}, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, errOut := migrate()
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "1 boxes, 1 keys, 1 grants")
	code, _, errOut = migrate()
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "already holds a bridge's data")

	replica := startBridgeWith(t, t.TempDir(), "", store)
	require.Equal(t, line, replica.svc.SigningKeyLine(), "the depot's boxes still trust the signer")
	out = replica.mustCLI(t, "boxes")
	require.Contains(t, out, "depot-1")
	_, grants, err := replica.svc.Cloud().Records("depot-1")
	require.NoError(t, err)
	require.Len(t, grants, 1)

	noStore := filepath.Join(t.TempDir(), "plain.toml")
	require.NoError(t, os.WriteFile(noStore, []byte("data_dir = \""+dir+"\"\n"), 0o600))
	var o, e bytes.Buffer
	require.Equal(t, exitUsage, run(context.Background(), []string{"migrate", "--config", noStore}, &o, &e))
	require.Contains(t, e.String(), "no [store]")
}
