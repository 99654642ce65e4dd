package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/broker"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
)

// A client certificate from the bridge's CA (Config.BoxCA) connects only
// while its serial is the box's current one: the card of a box that was
// provisioned again is shut out. A box with no current serial is refused;
// a certificate from another trusted CA (an operator's client_ca_file) is
// not checked.
func TestBoxCertSerial(t *testing.T) {
	bridgeCA, operatorCA := brokertest.TestCerts(t), brokertest.TestCerts(t)
	caPEM, err := os.ReadFile(bridgeCA.CAFile)
	require.NoError(t, err)
	blk, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)

	var mu sync.Mutex
	current := map[string]*big.Int{}
	tc := bridgeCA.ServerTLS()
	tc.ClientCAs = tc.ClientCAs.Clone()
	require.True(t, tc.ClientCAs.AppendCertsFromPEM(mustReadFile(t, operatorCA.CAFile)))
	b, err := broker.Start(broker.Config{
		ListenTLS: "127.0.0.1:0", TLS: tc, CloudUser: "cloud",
		StaticUsers: []broker.User{{Name: "cloud", PasswordHash: mustHash(t, "pw")}},
		BoxCA:       ca,
		BoxCertSerial: func(box string) (*big.Int, bool) {
			mu.Lock()
			defer mu.Unlock()
			s, ok := current[box]
			return s, ok
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })

	dial := func(cert tls.Certificate) error {
		c := conn{url: "ssl://" + b.TLSAddr(), id: "box-a", tls: bridgeCA.ClientTLS(t, "")}
		c.tls.Certificates = []tls.Certificate{cert}
		cl, _, err := c.dial(t)
		if err == nil {
			cl.Disconnect(100)
		}
		return err
	}
	serialOf := func(c tls.Certificate) *big.Int {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		require.NoError(t, err)
		return leaf.SerialNumber
	}
	_, _, first := bridgeCA.ClientCert(t, "box-a")
	_, _, second := bridgeCA.ClientCert(t, "box-a")

	before := b.Denied()
	require.Error(t, dial(first), "no current serial: refused")
	require.Greater(t, b.Denied(), before)

	mu.Lock()
	current["box-a"] = serialOf(first)
	mu.Unlock()
	require.NoError(t, dial(first))

	mu.Lock()
	current["box-a"] = serialOf(second) // provisioned again
	mu.Unlock()
	before = b.Denied()
	require.Error(t, dial(first), "the replaced certificate")
	require.Greater(t, b.Denied(), before)
	require.NoError(t, dial(second))

	_, _, operators := operatorCA.ClientCert(t, "box-a")
	require.NoError(t, dial(operators), "an operator CA's certificate is not subject to the serial")
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := broker.HashPassword(pw)
	require.NoError(t, err)
	return h
}
