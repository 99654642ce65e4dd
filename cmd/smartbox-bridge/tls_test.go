package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/link"
)

// TestServeTLSClientCert: the embedded broker's TLS listener from the config
// (server certificate, client CA); a box registered without a password
// connects with its client certificate (CN = box id) and gets its grant.
func TestServeTLSClientCert(t *testing.T) {
	t.Parallel()
	const boxID = "box-tls"
	certs := brokertest.TestCerts(t)
	b := startBridge(t, t.TempDir(), "listen = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\ncert_file = \""+certs.ServerCertFile+
		"\"\nkey_file = \""+certs.ServerKeyFile+"\"\nclient_ca_file = \""+certs.CAFile+"\"\n")
	require.NotEmpty(t, b.svc.BrokerTLSAddr())

	kid, pub64, _ := strings.Cut(strings.TrimSpace(b.mustCLI(t, "signing-key")), "=")
	pub, err := base64.StdEncoding.DecodeString(pub64)
	require.NoError(t, err)
	st, boxPub := provisionedBox(t, boxID, kid, pub)

	out := b.mustCLI(t, "register-box", "--id", boxID, "--public-key", base64.RawURLEncoding.EncodeToString(boxPub))
	require.Contains(t, out, "client certificate")
	b.mustCLI(t, "put-key", "--box", boxID, "--key", "k1", "--fob", "0100073400", "--slot", "1")
	b.mustCLI(t, "put-grant", "--box", boxID, "--grant", "g1", "--kind", "driver_code", "--code", "9911", "--keys", "k1", "--driver", "contact-1")

	linkGetsGrant(t, b, boxID, st, certs.ClientTLS(t, boxID), "9911", "g1")
}

// linkGetsGrant runs a box's link over the embedded TLS listener with tc
// until the box holds grant id under code.
func linkGetsGrant(t *testing.T, b *runningBridge, boxID string, st *store.Store, tc *tls.Config, code, id string) {
	t.Helper()
	l, err := link.New(link.Options{BoxID: boxID, BrokerURL: "ssl://" + b.svc.BrokerTLSAddr(), Store: st,
		TLS: tc, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		gs, err := st.GrantsByCode(code)
		return err == nil && len(gs) == 1 && gs[0].ID == id
	}, 15*time.Second, 20*time.Millisecond)
}
