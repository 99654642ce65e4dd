package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

const (
	syncBoxID     = "box-e2e"
	cloudPassword = "cloud-secret"
	boxPassword   = "box-e2e-secret"
	syncPIN       = "482913"
)

// syncRig is a broker (the embedded one the bridge runs, or mosquitto) and
// a real cloud serving on it.
type syncRig struct {
	broker brokertest.Broker
	url    string // the plain listener, for the cloud and password boxes
	cloud  *cloud.Cloud
	// cloudKeys are the signing keys a box is provisioned to trust.
	cloudKeys map[string]ed25519.PublicKey
}

func startSyncRig(t testing.TB, kind brokertest.Kind) *syncRig {
	t.Helper()
	r := startBrokerRig(t, kind)
	r.startCloud(t)
	return r
}

// startBrokerRig is the broker alone, for a rig whose cloud is a whole
// bridge service (it sets cloud and cloudKeys).
func startBrokerRig(t testing.TB, kind brokertest.Kind) *syncRig {
	t.Helper()
	if kind == brokertest.Mosquitto {
		brokertest.SkipWithoutMosquitto(t)
	}
	r := &syncRig{broker: brokertest.Start(t, kind, brokertest.Options{
		Users: map[string]string{brokertest.CloudUser: cloudPassword, syncBoxID: boxPassword},
		TLS:   true,
	})}
	r.url = r.broker.URL()
	return r
}

func (r *syncRig) startCloud(t testing.TB) {
	quiet := slog.New(slog.DiscardHandler)

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer := wire.Signer{KeyID: "cloud-1", Key: priv}
	r.cloudKeys = map[string]ed25519.PublicKey{signer.KeyID: priv.Public().(ed25519.PublicKey)}
	r.cloud, err = cloud.Open(cloud.Options{Path: filepath.Join(t.TempDir(), "cloud.db"), Signer: signer, Logger: quiet})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	subscribed := make(chan struct{})
	var once sync.Once
	go func() {
		served <- r.cloud.Serve(ctx, r.url, func(o *mqtt.ClientOptions) {
			o.SetUsername("cloud").SetPassword(cloudPassword).SetClientID("smartbox-cloud-1")
			// Serve subscribes in its connect handler without a way to
			// wait for it. A box that connects before that loses its first
			// event batch until the 10 s resend: follow Serve's subscribe
			// with one of our own; its SUBACK comes after Serve's.
			serveOnConnect := o.OnConnect
			o.SetOnConnectHandler(func(cl mqtt.Client) {
				serveOnConnect(cl)
				tok := cl.Subscribe(wire.CloudFilter("probe"), 0, nil)
				go func() {
					if tok.WaitTimeout(waitFor) && tok.Error() == nil {
						once.Do(func() { close(subscribed) })
					}
				}()
			})
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			require.NoError(t, err)
		case <-time.After(waitFor):
			t.Error("cloud.Serve did not stop")
		}
		_ = r.cloud.Close()
	})
	select {
	case <-subscribed:
	case <-time.After(waitFor):
		t.Fatal("the cloud did not subscribe")
	}
}

// provisionBox makes the box's store as smartboxctl init + provision would,
// registers the box with the cloud, and returns the data dir.
func (r *syncRig) provisionBox(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{BoxID: syncBoxID, Slots: 12, Logger: testLogger(t)})
	require.NoError(t, err)
	require.NoError(t, s.SetProvision(store.Provision{
		CloudKeys: r.cloudKeys,
		At:        time.Now(),
	}))
	pub, err := s.SyncPublicKey()
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, r.cloud.RegisterBox(syncBoxID, pub))
	return dir
}

// boxConfig writes a sim config for the box with the given [cloud] table.
func boxConfig(t *testing.T, dataDir, cloudTable string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "smartboxd.toml")
	src := "box_id = \"" + syncBoxID + "\"\ndata_dir = \"" + dataDir + "\"\n\n[hardware]\nprofile = \"sim\"\n\n" +
		"[timing]\nrelease = \"10s\"\nrelease_max = \"10s\"\n\n" + cloudTable
	require.NoError(t, os.WriteFile(p, []byte(src), 0o644))
	return p
}

func writeSecret(t *testing.T, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), mode))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

// cloudHas reports whether the cloud stored an event of typ for slot.
func cloudHas(t *testing.T, c *cloud.Cloud, typ box.EventType, slot int) bool {
	t.Helper()
	evs, err := c.Events(syncBoxID, 0, 1000)
	require.NoError(t, err)
	return slices.ContainsFunc(evs, func(e box.Event) bool { return e.Type == typ && e.Slot == slot })
}

// TestEndToEndCloud runs smartboxd (flags, config, daemon) in-process on
// sim hardware with [cloud] set, against the embedded broker and the real
// cloud: the cloud gives the box a key and a booking, the grant syncs, the
// PIN typed on the sim keypad opens the slot, the key is taken, and the
// cloud holds the events, box_stopped included once the box stops.
func TestEndToEndCloud(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broker brokertest.Kind
		cloud  func(t *testing.T, r *syncRig) string
	}{
		{"mochi password over tcp", brokertest.Mochi, func(t *testing.T, r *syncRig) string {
			pw := writeSecret(t, "mqtt-password", boxPassword+"\n", 0o600)
			return "[cloud]\nbroker_url = \"" + r.url + "\"\npassword_file = \"" + pw + "\"\n"
		}},
		{"mosquitto password over tcp", brokertest.Mosquitto, func(t *testing.T, r *syncRig) string {
			pw := writeSecret(t, "mqtt-password", boxPassword+"\n", 0o600)
			return "[cloud]\nbroker_url = \"" + r.url + "\"\npassword_file = \"" + pw + "\"\n"
		}},
		{"mochi client certificate over TLS", brokertest.Mochi, func(t *testing.T, r *syncRig) string {
			cert, key, _ := r.broker.Certs().ClientCert(t, syncBoxID)
			return "[cloud]\nbroker_url = \"" + r.broker.CertURL() + "\"\nca_file = \"" + r.broker.Certs().CAFile +
				"\"\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startSyncRig(t, tc.broker)
			dir := r.provisionBox(t)
			cfg := boxConfig(t, dir, tc.cloud(t, r))

			c := startConsole(t, "--config", cfg, "--log-level", "debug")

			// The box connects and says so in its retained status.
			require.Eventually(t, func() bool {
				st, ok, err := r.cloud.Status(syncBoxID)
				return err == nil && ok && st.Online
			}, waitFor, 20*time.Millisecond, "stderr:\n%s", c.stderr.String())
			c.say(t, "status", "connected")

			// The cloud adds a key and a booking with a PIN: it reaches the box.
			_, err := r.cloud.PutKey(syncBoxID, box.Key{ID: "key-1", FobUID: "01000734E0", Slot: 1, Name: "Van 3"})
			require.NoError(t, err)
			rev, err := r.cloud.PutGrant(syncBoxID, box.Grant{ID: "booking-1", Kind: box.KindBooking, KeyIDs: []string{"key-1"},
				Source: "fleetio"}, syncPIN)
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				st, ok, err := r.cloud.Status(syncBoxID)
				return err == nil && ok && st.Revision == rev
			}, waitFor, 20*time.Millisecond, "the box reports revision %d; stderr:\n%s", rev, c.stderr.String())
			c.say(t, "grants", "booking-1")
			c.say(t, "status", "revision")

			// The driver types the PIN: the slot opens; the key is taken.
			c.say(t, "press "+syncPIN+"#", "slot_released slot=1 key=key-1 grant=booking-1")
			c.say(t, "take 1", "key_taken slot=1 key=key-1")

			// The cloud has the events, exactly once.
			require.Eventually(t, func() bool {
				evs, err := r.cloud.Events(syncBoxID, 0, 1000)
				require.NoError(t, err)
				return slices.ContainsFunc(evs, func(e box.Event) bool { return e.Type == box.EventCodeAccepted && e.GrantID == "booking-1" })
			}, waitFor, 20*time.Millisecond, "code_accepted at the cloud")
			require.Eventually(t, func() bool { return cloudHas(t, r.cloud, box.EventKeyTaken, 1) }, waitFor, 20*time.Millisecond,
				"key_taken at the cloud")
			require.Eventually(t, func() bool {
				st, ok, err := r.cloud.Status(syncBoxID)
				return err == nil && ok && st.OutboxDepth == 0
			}, waitFor, 20*time.Millisecond, "the outbox drains")

			c.quit(t)
			// Shutdown order: the controller stopped first, then the link
			// delivered box_stopped and said it is offline.
			require.True(t, cloudHas(t, r.cloud, box.EventBoxStopped, 0), "box_stopped reached the cloud before the link closed")
			require.Eventually(t, func() bool {
				st, ok, err := r.cloud.Status(syncBoxID)
				return err == nil && ok && !st.Online
			}, waitFor, 20*time.Millisecond, "the box said it is offline")
			evs, err := r.cloud.Events(syncBoxID, 0, 1000)
			require.NoError(t, err)
			for i, e := range evs {
				require.Equal(t, uint64(i+1), e.Seq, "every event once, in order")
			}
			require.NotContains(t, c.stdout.String()+c.stderr.String(), syncPIN+" ", "no output shows the PIN")
		})
	}
}

// TestCloudStartupErrors: a [cloud] the box cannot use stops smartboxd at
// start with a message that says what to do.
func TestCloudStartupErrors(t *testing.T) {
	unprovisioned := t.TempDir()
	s, err := store.Open(filepath.Join(unprovisioned, "box.db"), store.Options{BoxID: syncBoxID, Logger: testLogger(t)})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	pw := writeSecret(t, "pw", "secret\n", 0o600)
	open := writeSecret(t, "pw", "secret\n", 0o644)
	for _, tc := range []struct {
		name  string
		data  string
		cloud string
		want  []string
	}{
		{"unprovisioned store", unprovisioned, "[cloud]\nbroker_url = \"tcp://127.0.0.1:1\"\npassword_file = \"" + pw + "\"\n",
			[]string{"never provisioned", "smartboxctl provision --data " + unprovisioned}},
		{"readable password file", unprovisioned, "[cloud]\nbroker_url = \"tcp://127.0.0.1:1\"\npassword_file = \"" + open + "\"\n",
			[]string{"smartboxd.toml:", "cloud.password_file", "mode 0644", "chmod 600"}},
		{"missing password file", unprovisioned, "[cloud]\nbroker_url = \"tcp://127.0.0.1:1\"\npassword_file = \"/nonexistent/pw\"\n",
			[]string{"cloud.password_file", "/nonexistent/pw", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := boxConfig(t, tc.data, tc.cloud)
			var stdout, stderr syncbuf.Buffer
			code := run(t.Context(), []string{"--config", cfg}, strings.NewReader(""), &stdout, &stderr)
			require.Equal(t, cli.ExitFailure, code, "stderr:\n%s", stderr.String())
			for _, w := range tc.want {
				require.Contains(t, stderr.String(), w)
			}
		})
	}
}

// TestOfflineBoxSaysSo: no [cloud], the box runs and logs once that it is
// offline-only; the console's status says the same.
func TestOfflineBoxSaysSo(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, "demo-box")
	c := startConsole(t, "--config", "smartboxd.sim.toml", "--data", dir)
	c.say(t, "status", "offline-only")
	require.Equal(t, 1, strings.Count(c.stderr.String(), "offline-only"), c.stderr.String())
	c.quit(t)
}
