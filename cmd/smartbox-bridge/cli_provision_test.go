package main

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
)

// The offline path: a provisioning record (registration and CSR) carried
// to the bridge is registered and signed by `register-box --record`; the
// box then connects over the embedded TLS listener, which runs without
// any cert file (its certificate from the bridge's CA), with the
// certificate written to --cert-out, and gets its grant.
func TestRegisterBoxFromRecord(t *testing.T) {
	t.Parallel()
	const boxID = "box-offline"
	b := startBridge(t, t.TempDir(), "listen = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\n")
	require.NotEmpty(t, b.svc.BrokerTLSAddr())

	out := b.mustCLI(t, "provisioning")
	require.Contains(t, out, "broker URL:   ssl://"+b.svc.BrokerTLSAddr())
	require.Contains(t, out, "CA:           SmartBox bridge CA ")
	caPEM := out[strings.Index(out, "-----BEGIN CERTIFICATE-----"):]

	kid, pub64, _ := strings.Cut(strings.TrimSpace(b.mustCLI(t, "signing-key")), "=")
	require.Contains(t, out, "signing key:  "+kid+"="+pub64)
	pub, err := base64.StdEncoding.DecodeString(pub64)
	require.NoError(t, err)
	st, boxPub := provisionedBox(t, boxID, kid, pub)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: boxID}}, key)
	require.NoError(t, err)
	rec := adminapi.ProvisionRecord{
		Register: adminapi.RegisterBoxRequest{ID: boxID, PublicKey: base64.StdEncoding.EncodeToString(boxPub), Slots: 12},
		CSR:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
	}
	dir := t.TempDir()
	recFile, certFile := filepath.Join(dir, "record.json"), filepath.Join(dir, "box.crt")
	recJSON, err := json.Marshal(rec)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(recFile, recJSON, 0o600))

	code, _, errOut := b.cli(t, "register-box", "--record", recFile, "--cert-out", certFile)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, errOut, "registered box "+boxID)
	require.Contains(t, errOut, "written to "+certFile)
	certPEM, err := os.ReadFile(certFile)
	require.NoError(t, err)
	blk, _ := pem.Decode(certPEM)
	require.NotNil(t, blk)

	b.mustCLI(t, "put-key", "--box", boxID, "--key", "k1", "--fob", "0100073400", "--slot", "1")
	b.mustCLI(t, "put-grant", "--box", boxID, "--grant", "g1", "--kind", "driver_code", "--code", "9912", "--keys", "k1", "--driver", "contact-1")

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(caPEM)))
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{blk.Bytes}, PrivateKey: key}}}
	linkGetsGrant(t, b, boxID, st, tc, "9912", "g1")

	// Bad records: said so, with the file named, exit 1.
	big := filepath.Join(dir, "big.json")
	require.NoError(t, os.WriteFile(big, []byte(strings.Repeat(" ", maxRecordFile+1)), 0o600))
	notRec := filepath.Join(dir, "not.json")
	require.NoError(t, os.WriteFile(notRec, []byte(`{"id":"x"}`), 0o600))
	wrongCN := filepath.Join(dir, "wrong.json")
	rec.Register.ID = "box-other"
	recJSON, err = json.Marshal(rec)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(wrongCN, recJSON, 0o600))
	for file, want := range map[string]string{
		big:                           "over 65536 bytes",
		notRec:                        "not a provisioning record",
		wrongCN:                       `subject CN is "box-offline", want the box id "box-other"`,
		filepath.Join(dir, "missing"): "no such file",
	} {
		code, _, errOut := b.cli(t, "register-box", "--record", file)
		require.Equal(t, exitFailure, code, errOut)
		require.Contains(t, errOut, want)
	}
}

// register-box refuses another key for a registered box (a mistyped id
// would cut the real box off) unless --replace.
func TestRegisterBoxReplace(t *testing.T) {
	t.Parallel()
	b := startBridge(t, t.TempDir(), "listen = \"127.0.0.1:0\"\n")
	key := func() string {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		require.NoError(t, err)
		return base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
	}
	first, second := key(), key()
	b.mustCLI(t, "register-box", "--id", "box-r", "--public-key", first)
	b.mustCLI(t, "register-box", "--id", "box-r", "--public-key", first)
	code, _, errOut := b.cli(t, "register-box", "--id", "box-r", "--public-key", second)
	require.Equal(t, exitFailure, code, errOut)
	require.Contains(t, errOut, "already registered with another key")
	require.Contains(t, errOut, "--replace")
	b.mustCLI(t, "register-box", "--id", "box-r", "--public-key", second, "--replace")
}
