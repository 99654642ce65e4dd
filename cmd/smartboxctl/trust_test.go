package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/store"
)

func newCloudKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub
}

// storedProvision opens the store read-only-ish to look at what trust or provision wrote.
func storedProvision(t *testing.T, dir string) (store.Provision, []byte) {
	t.Helper()
	s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{Logger: discardLogger})
	require.NoError(t, err)
	defer s.Close()
	p, err := s.Provision()
	require.NoError(t, err)
	pub, err := s.SyncPublicKey()
	require.NoError(t, err)
	return p, pub
}

func TestTrustAndIdentity(t *testing.T) {
	dir := initBox(t)
	k1, k2 := newCloudKey(t), newCloudKey(t)

	// Before provisioning: identity works, and says it is not provisioned.
	code, out, errOut := ctl(t, "identity", "--data", dir)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "box_id: box-1\n")
	require.Contains(t, out, "cloud_keys: none")
	line := out[strings.Index(out, "sync_public_key: "):]
	line = strings.TrimPrefix(line[:strings.IndexByte(line, '\n')], "sync_public_key: ")
	pub, err := base64.StdEncoding.DecodeString(line)
	require.NoError(t, err)
	require.Len(t, pub, 32, "an X25519 public key")

	// Any of the four base64 forms is taken.
	code, out, errOut = ctl(t, "trust", "--data", dir,
		"--cloud-key", "cloud-1="+base64.StdEncoding.EncodeToString(k1),
		"--cloud-key", "cloud-2="+base64.RawURLEncoding.EncodeToString(k2),
		"--broker", "ssl://mqtt.example.com:8883")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "provisioned with cloud keys cloud-1, cloud-2")
	require.Contains(t, out, "sync_public_key: "+line, "provision prints the box's key for the cloud")
	p, storedPub := storedProvision(t, dir)
	require.Equal(t, pub, storedPub)
	require.Equal(t, k1, p.CloudKeys["cloud-1"])
	require.Equal(t, k2, p.CloudKeys["cloud-2"])
	require.Equal(t, "ssl://mqtt.example.com:8883", p.BrokerURL)
	require.False(t, p.At.IsZero())

	// Provisioning again replaces the set (a key rotation done).
	code, out, errOut = ctl(t, "trust", "--data", dir, "--cloud-key", "cloud-2="+base64.URLEncoding.EncodeToString(k2))
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "replaced cloud keys cloud-1, cloud-2 with cloud-2")
	p, _ = storedProvision(t, dir)
	require.Len(t, p.CloudKeys, 1)

	code, out, _ = ctl(t, "identity", "--data", dir)
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "cloud_keys: cloud-2")

	// The listings say which revision and whether the box is provisioned.
	code, out, _ = ctl(t, "grants", "--data", dir)
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "box box-1: records revision 1, ")
	require.Contains(t, out, "provisioned for sync")
}

func TestTrustErrors(t *testing.T) {
	dir := initBox(t)
	key := base64.StdEncoding.EncodeToString(newCloudKey(t))
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no data", []string{"trust", "--cloud-key", "k=" + key}, exitUsage, "--data DIR is required"},
		{"no key", []string{"trust", "--data", dir}, exitUsage, "--cloud-key KID=BASE64 is required"},
		{"no kid", []string{"trust", "--data", dir, "--cloud-key", key}, exitUsage, "want KID=BASE64"},
		{"empty kid", []string{"trust", "--data", dir, "--cloud-key", "=" + key}, exitUsage, "want KID=BASE64"},
		{"bad kid", []string{"trust", "--data", dir, "--cloud-key", "a b=" + key}, exitUsage, `key id "a b"`},
		{"not base64", []string{"trust", "--data", dir, "--cloud-key", "k=not*base64"}, exitUsage, "not base64"},
		{"wrong length", []string{"trust", "--data", dir, "--cloud-key", "k=" + short}, exitUsage, "the key is 31 bytes, an Ed25519 public key is 32"},
		{"twice", []string{"trust", "--data", dir, "--cloud-key", "k=" + key, "--cloud-key", "k=" + key}, exitUsage, "given twice"},
		{"bad broker", []string{"trust", "--data", dir, "--cloud-key", "k=" + key, "--broker", "mqtt.example.com"}, exitUsage, "--broker"},
		{"no store", []string{"trust", "--data", t.TempDir(), "--cloud-key", "k=" + key}, exitFailure, "smartboxctl init"},
		{"identity no store", []string{"identity", "--data", t.TempDir()}, exitFailure, "smartboxctl init"},
		{"identity extra arg", []string{"identity", "--data", dir, "x"}, exitUsage, `unexpected argument "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := ctl(t, tc.args...)
			require.Equal(t, tc.code, code, errOut)
			require.Contains(t, errOut, tc.want)
		})
	}
	// Nothing was stored by any of them.
	s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{Logger: discardLogger})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Provision()
	require.ErrorIs(t, err, store.ErrNotProvisioned)
}
