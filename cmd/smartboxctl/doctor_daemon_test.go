package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// daemonWait bounds what a real smartboxd process takes: building it
// (once), starting, connecting. Generous: the suite shares two cores.
const daemonWait = 2 * time.Minute

// A real smartboxd process provisioned with a signing key that is not the
// cloud's: doctor says so through the signed probe (POST
// /v1/cloud/probe); provisioned with the cloud's key, the same box passes,
// and doctor takes the broker, store, clock and outbox from the daemon.
func TestDoctorSigningKeyThroughTheDaemon(t *testing.T) {
	depottest.Smartboxd(t) // built before the broker and cloud start
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer := wire.Signer{KeyID: "cloud-1", Key: priv}
	c, err := cloud.Open(cloud.Options{Path: filepath.Join(t.TempDir(), "cloud.db"), Signer: signer})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- c.Serve(ctx, b.URL(), func(o *mqtt.ClientOptions) {
			o.SetUsername(brokertest.CloudUser).SetPassword(brokertest.Password(brokertest.CloudUser))
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-served
		_ = c.Close()
	})

	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "box.db"), store.Options{BoxID: "box-a", Slots: 4, Logger: discardLogger})
	require.NoError(t, err)
	other, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, st.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{"cloud-1": other}, At: time.Now()}))
	pub, err := st.SyncPublicKey()
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.NoError(t, c.RegisterBox("box-a", pub))

	pw := writeFile(t, "mqtt-password", brokertest.Password("box-a")+"\n")
	cfg := writeProfileConfig(t, "sim", dir, "[cloud]\nbroker_url = \""+b.URL()+"\"\npassword_file = \""+pw+"\"\n", nil)
	sock := shortSocketPath(t)

	start := func() func() {
		stop, stderr := startSmartboxd(t, cfg, sock)
		// Connected, and the cloud subscribed (it holds the box's retained
		// status, which it gets only once subscribed).
		require.Eventually(t, func() bool {
			s, ok, err := c.Status("box-a")
			return err == nil && ok && s.Online
		}, daemonWait, 20*time.Millisecond, "smartboxd connects; stderr:\n%s", stderr.String())
		// And the daemon says so (subscribed): the status is published first.
		sc := boxsocket.Dial(sock)
		defer sc.Close()
		require.Eventually(t, func() bool {
			s, err := sc.Status(t.Context())
			return err == nil && s.Cloud == "connected"
		}, daemonWait, 20*time.Millisecond, "smartboxd says connected; stderr:\n%s", stderr.String())
		return stop
	}

	stop := start()
	code, r := runDoctor(t, "--config", cfg, "--socket", sock)
	require.Equal(t, exitFailure, code, "%+v", r.Findings)
	f := requireProblem(t, r, "signing", "does not match", `signed with cloud key "cloud-1"`, `this box holds key "cloud-1" (sha256 `)
	require.Contains(t, f.Fix, "provision the box again")
	t.Log(f.What)
	requireOK(t, r, "daemon", "answers on "+sock)
	requireOK(t, r, "broker", "smartboxd is connected")
	requireOK(t, r, "store", "is smartboxd's, which answers")
	stop()

	st, err = store.Open(filepath.Join(dir, "box.db"), store.Options{Logger: discardLogger})
	require.NoError(t, err)
	require.NoError(t, st.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{"cloud-1": priv.Public().(ed25519.PublicKey)}, At: time.Now()}))
	require.NoError(t, st.Close())
	stop = start()
	defer stop()
	_, r = runDoctor(t, "--config", cfg, "--socket", sock)
	requireOK(t, r, "signing", `verified with the box's key "cloud-1"`)
	requireOK(t, r, "clock", "is trusted")
	requireOK(t, r, "outbox")

	// The sim board's clock set to 1970: before the build time, untrusted.
	sc := boxsocket.Dial(sock)
	defer sc.Close()
	require.NoError(t, sc.SetClock(t.Context(), boxsocket.ClockRequest{At: time.Unix(0, 0)}))
	_, r = runDoctor(t, "--config", cfg, "--socket", sock)
	requireProblem(t, r, "clock", "the box clock says 1970-01-01T00:00:00Z, before its floor")
}
