package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/link"
)

// testPKI makes a CA and a certificate signed by it, written as PEM files.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	pool   *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	var err error
	p.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	require.NoError(t, err)
	p.ca, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	p.caFile = filepath.Join(p.dir, "ca.crt")
	require.NoError(t, os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.ca)
	return p
}

// issue makes a certificate for cn (a server for 127.0.0.1 when server).
func (p *testPKI) issue(t *testing.T, cn string, server bool) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	certFile, keyFile = filepath.Join(p.dir, cn+".crt"), filepath.Join(p.dir, cn+".key")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return certFile, keyFile, cert
}

// TestServeTLSClientCert: the embedded broker's TLS listener from the config
// (server certificate, client CA); a box registered without a password
// connects with its client certificate (CN = box id) and gets its grant.
func TestServeTLSClientCert(t *testing.T) {
	t.Parallel()
	const boxID = "box-tls"
	pki := newTestPKI(t)
	srvCert, srvKey, _ := pki.issue(t, "server", true)
	_, _, boxCert := pki.issue(t, boxID, false)
	b := startBridge(t, t.TempDir(), "listen = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\ncert_file = \""+srvCert+
		"\"\nkey_file = \""+srvKey+"\"\nclient_ca_file = \""+pki.caFile+"\"\n")
	require.NotEmpty(t, b.svc.broker.TLSAddr())

	kid, pub64, _ := strings.Cut(strings.TrimSpace(b.mustCLI(t, "signing-key")), "=")
	pub, err := base64.StdEncoding.DecodeString(pub64)
	require.NoError(t, err)
	st, err := store.Open(filepath.Join(t.TempDir(), "box.db"), store.Options{BoxID: boxID, Slots: 12, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{kid: pub}}))
	boxPub, err := st.SyncPublicKey()
	require.NoError(t, err)

	out := b.mustCLI(t, "register-box", "--id", boxID, "--public-key", base64.RawURLEncoding.EncodeToString(boxPub))
	require.Contains(t, out, "client certificate")
	b.mustCLI(t, "put-key", "--box", boxID, "--key", "k1", "--fob", "0100073400", "--slot", "1")
	b.mustCLI(t, "put-grant", "--box", boxID, "--grant", "g1", "--kind", "driver_code", "--code", "9911", "--keys", "k1", "--driver", "contact-1")

	l, err := link.New(link.Options{BoxID: boxID, BrokerURL: "ssl://" + b.svc.broker.TLSAddr(), Store: st,
		TLS:    &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{boxCert}, MinVersion: tls.VersionTLS12},
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		gs, err := st.GrantsByCode("9911")
		return err == nil && len(gs) == 1 && gs[0].ID == "g1"
	}, 15*time.Second, 20*time.Millisecond)
}
