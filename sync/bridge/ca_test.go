package bridge

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// mqttWait bounds one MQTT round trip in these tests: generous for a
// loaded machine, never reached when things work.
const mqttWait = 20 * time.Second

// makeCSR is a PEM certificate request for cn with key, asking for extra
// names that the bridge must ignore.
func makeCSR(t *testing.T, cn string, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: cn, Organization: []string{"evil"}},
		DNSNames: []string{"bridge.example"},
	}, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func registerTestBox(t *testing.T, b *testBridge, id string) {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, b.AdminClient().Do(context.Background(), "POST", "/v1/boxes",
		adminapi.RegisterBoxRequest{ID: id, PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())}, nil))
}

// dialBox connects to the TLS listener as box id with a client certificate
// and returns the connect error.
func dialBox(t *testing.T, b *testBridge, id string, cert tls.Certificate, ca string) (paho.Client, error) {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(ca)))
	o := paho.NewClientOptions().AddBroker("ssl://" + b.BrokerTLSAddr()).SetClientID(id).
		SetAutoReconnect(false).SetConnectTimeout(mqttWait).SetProtocolVersion(4).
		SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"})
	cl := paho.NewClient(o)
	tok := cl.Connect()
	require.True(t, tok.WaitTimeout(mqttWait), "connect: no answer")
	if tok.Error() == nil {
		t.Cleanup(func() { cl.Disconnect(100) })
	}
	return cl, tok.Error()
}

// issue has a certificate issued for box id with a new key; replace is
// adminapi.CertificateRequest.Replace (needed when the box has one for another key).
func issue(t *testing.T, b *testBridge, id string, replace bool) (tls.Certificate, adminapi.CertificateResponse) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	resp, err := b.AdminClient().Certificate(context.Background(), id, makeCSR(t, id, key), replace)
	require.NoError(t, err)
	blk, _ := pem.Decode([]byte(resp.Certificate))
	require.NotNil(t, blk)
	return tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: key}, resp
}

// A box with a certificate from POST /v1/boxes/{box}/certificate connects
// over the embedded TLS listener (no cert files configured) and is that
// box: it may subscribe to its own records, not another box's. Issued
// again (the card re-provisioned), the first certificate is refused at
// CONNECT and the second let in.
func TestIssuedCertificateConnectsAndReplacesTheOld(t *testing.T) {
	b := startTest(t, Options{Broker: BrokerOptions{ListenTLS: freeLoopbackPort}})
	registerTestBox(t, b, "depot-1")
	ctx := context.Background()

	prov, err := b.AdminClient().Provisioning(ctx)
	require.NoError(t, err)
	require.Equal(t, "ssl://"+b.BrokerTLSAddr(), prov.BrokerURL)
	require.Contains(t, prov.CACert, "BEGIN CERTIFICATE")
	require.Equal(t, b.SigningKeyLine(), prov.SigningKey.Line)

	first, resp := issue(t, b, "depot-1", false)
	require.Equal(t, prov.CACert, resp.CACert)
	leaf, err := x509.ParseCertificate(first.Certificate[0])
	require.NoError(t, err)
	require.Equal(t, "depot-1", leaf.Subject.CommonName)
	require.Empty(t, leaf.Subject.Organization, "only the CN is copied")
	require.Empty(t, leaf.DNSNames, "the CSR's names are ignored")
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
	require.Equal(t, x509.KeyUsageDigitalSignature, leaf.KeyUsage)
	require.WithinDuration(t, time.Now().Add(boxCertLifetime), leaf.NotAfter, time.Minute)
	require.WithinDuration(t, leaf.NotAfter, resp.NotAfter, time.Second)

	cl, err := dialBox(t, b, "depot-1", first, prov.CACert)
	require.NoError(t, err)
	own := cl.Subscribe(wire.Topic("depot-1", wire.LeafRecords), 1, nil)
	require.True(t, own.WaitTimeout(mqttWait))
	require.Equal(t, byte(1), own.(*paho.SubscribeToken).Result()[wire.Topic("depot-1", wire.LeafRecords)])
	other := cl.Subscribe(wire.Topic("depot-2", wire.LeafRecords), 1, nil)
	require.True(t, other.WaitTimeout(mqttWait))
	require.Equal(t, byte(0x80), other.(*paho.SubscribeToken).Result()[wire.Topic("depot-2", wire.LeafRecords)])
	cl.Disconnect(100)

	var boxes []adminapi.BoxInfo
	require.NoError(t, b.AdminClient().Do(ctx, "GET", "/v1/boxes", nil, &boxes))
	require.Len(t, boxes, 1)
	require.WithinDuration(t, resp.NotAfter, boxes[0].CertNotAfter, time.Second)
	require.Equal(t, leaf.SerialNumber.Text(16), boxes[0].CertSerial)

	second, _ := issue(t, b, "depot-1", true)
	_, err = dialBox(t, b, "depot-1", first, prov.CACert)
	require.Error(t, err, "the replaced certificate must be refused")
	require.Contains(t, b.log.String(), "is not the box's current one")
	_, err = dialBox(t, b, "depot-1", second, prov.CACert)
	require.NoError(t, err)
}

// Requests the CA must not sign are refused with a message that says why.
func TestCertificateRequestsRefused(t *testing.T) {
	b := startTest(t, Options{})
	registerTestBox(t, b, "depot-1")
	ctx := context.Background()
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)

	good := makeCSR(t, "depot-1", p256)
	blk, _ := pem.Decode(good)
	tampered := append([]byte(nil), blk.Bytes...)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	badSig := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered})

	for name, tc := range map[string]struct {
		box  string
		csr  []byte
		want string
	}{
		"another box":   {"depot-1", makeCSR(t, "depot-2", p256), `subject CN is "depot-2", want the box id "depot-1"`},
		"bad signature": {"depot-1", badSig, "signature does not verify"},
		"RSA key":       {"depot-1", makeCSR(t, "depot-1", rsa1024), "want ECDSA P-256/P-384 or Ed25519"},
		"P-224 key":     {"depot-1", makeCSR(t, "depot-1", p224), "ECDSA curve P-224"},
		"big CSR":       {"depot-1", []byte(strings.Repeat("A", maxCSR+1)), "over 8192"},
		"huge body":     {"depot-1", []byte(strings.Repeat("A", maxAdminBody+1)), "request body over"},
		"two blocks":    {"depot-1", append(append([]byte(nil), good...), good...), "more than one PEM block"},
		"not PEM":       {"depot-1", []byte("hello"), `want one PEM "CERTIFICATE REQUEST" block`},
		"unregistered":  {"depot-9", makeCSR(t, "depot-9", p256), "box depot-9 is not registered"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := b.AdminClient().Certificate(ctx, tc.box, tc.csr, false)
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, err = b.AdminClient().Certificate(ctx, "depot-1", makeCSR(t, "depot-1", ed), false)
	require.NoError(t, err, "Ed25519 is accepted")
}

// The CA is made on first start and kept: a restart serves the same one. A
// data dir with only one of its two files is refused with both named.
func TestCAKeptAndHalfPairRefused(t *testing.T) {
	boltOnly(t, "the CA's files in the data dir (on PostgreSQL it is in the database: TestReplicasShareSecrets)")
	dir := t.TempDir()
	tlsOn := BrokerOptions{ListenTLS: freeLoopbackPort}
	b := startTest(t, Options{DataDir: dir, Broker: tlsOn})
	first, err := b.AdminClient().Provisioning(context.Background())
	require.NoError(t, err)
	require.NotContains(t, first.CACert, "PRIVATE KEY")
	firstServer := serverCert(t, b, first.CACert)
	for _, f := range []string{FileCAKey, FileCACert} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
	ca, err := parseCA(mustRead(t, filepath.Join(dir, FileCAKey)), []byte(first.CACert))
	require.NoError(t, err)
	require.True(t, ca.cert.IsCA)
	require.True(t, ca.cert.MaxPathLenZero)
	require.Equal(t, x509.KeyUsageCertSign|x509.KeyUsageCRLSign, ca.cert.KeyUsage)
	require.True(t, strings.HasPrefix(ca.cert.Subject.CommonName, "SmartBox bridge CA "))
	require.NoError(t, b.Close())

	again := startTest(t, Options{DataDir: dir, Broker: tlsOn})
	second, err := again.AdminClient().Provisioning(context.Background())
	require.NoError(t, err)
	require.Equal(t, first.CACert, second.CACert, "a restart keeps the CA")
	require.NotEqual(t, firstServer.SerialNumber, serverCert(t, again, second.CACert).SerialNumber,
		"the broker's certificate is issued again at each start")
	require.NoError(t, again.Close())

	require.NoError(t, os.Remove(filepath.Join(dir, FileCACert)))
	_, err = Start(context.Background(), Options{DataDir: dir})
	require.ErrorContains(t, err, filepath.Join(dir, FileCAKey))
	require.ErrorContains(t, err, filepath.Join(dir, FileCACert))
	_, err = os.Stat(filepath.Join(dir, FileCACert))
	require.ErrorIs(t, err, os.ErrNotExist, "never silently replaced")
}

// A first start cut between the CA's two files (the marker still there)
// is finished by the next: a new pair, which nobody can have been given.
func TestCACutWhileMade(t *testing.T) {
	boltOnly(t, "the ca.making marker between the two CA files")
	dir := t.TempDir()
	ca, err := newCA()
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	require.NoError(t, err)
	require.NoError(t, writeSecret(filepath.Join(dir, fileCAMaking), nil))
	require.NoError(t, writeSecret(filepath.Join(dir, FileCAKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))

	b := startTest(t, Options{DataDir: dir, Broker: BrokerOptions{ListenTLS: freeLoopbackPort}})
	prov, err := b.AdminClient().Provisioning(context.Background())
	require.NoError(t, err)
	made, err := parseCA(mustRead(t, filepath.Join(dir, FileCAKey)), []byte(prov.CACert))
	require.NoError(t, err, "the new key and certificate are a pair")
	require.False(t, made.key.Equal(ca.key), "the half-written key was not kept")
	require.NoFileExists(t, filepath.Join(dir, fileCAMaking))
	serverCert(t, b, prov.CACert)
}

// serverCert is the embedded broker's TLS certificate, verified against
// caPEM for the address boxes dial (127.0.0.1, one of DefaultTLSNames).
func serverCert(t *testing.T, b *testBridge, caPEM string) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(caPEM)))
	c, err := tls.Dial("tcp", b.BrokerTLSAddr(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
