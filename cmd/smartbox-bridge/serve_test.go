package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/link"
)

// runningBridge is a serve running in process on free loopback ports.
type runningBridge struct {
	svc    *service
	dir    string
	out    string // what serve printed on stdout
	log    *syncbuf.Buffer
	cancel context.CancelFunc
	done   chan error
}

// startBridge runs serve with the embedded broker and the admin endpoint on
// ports the system picks (127.0.0.1:0: nothing to race for).
func startBridge(t *testing.T, dir, brokerTOML string) *runningBridge {
	t.Helper()
	return startBridgeWith(t, dir, brokerTOML, "")
}

// startBridgeWith is startBridge with more config: keys of [fleetio] first
// (they go under its header), then any tables.
func startBridgeWith(t *testing.T, dir, brokerTOML, more string) *runningBridge {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "bridge.toml")
	if brokerTOML == "" {
		brokerTOML = "listen = \"127.0.0.1:0\"\n"
	}
	src := "data_dir = \"" + dir + "\"\n[broker]\n" + brokerTOML + "[admin]\nlisten = \"127.0.0.1:0\"\n[fleetio]\npublic_listen = \"127.0.0.1:0\"\n" + more
	require.NoError(t, os.WriteFile(cfgPath, []byte(src), 0o600))
	cfg, err := LoadConfig(cfgPath)
	require.NoError(t, err)

	logs := &syncbuf.Buffer{}
	var stdout bytes.Buffer
	svc, err := startService(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), &stdout)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	b := &runningBridge{svc: svc, dir: dir, out: stdout.String(), log: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { b.done <- svc.run(ctx, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() { b.stop(t) })
	return b
}

func (b *runningBridge) stop(t *testing.T) {
	t.Helper()
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	select {
	case err := <-b.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30 s")
	}
}

// cli runs a client subcommand against the bridge's data dir and returns
// its exit code and output.
func (b *runningBridge) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	n := 1 // --data goes after the command: "fleetio link" is two words
	if args[0] == "fleetio" && len(args) > 1 {
		n = 2
	}
	args = append(append(append([]string{}, args[:n]...), "--data", b.dir), args[n:]...)
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (b *runningBridge) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := b.cli(t, args...)
	require.Equal(t, exitOK, code, "smartbox-bridge %v: %s", args, errOut)
	return out
}

// releases records the release_slot commands the box runs. It stands in for
// box.Controller, whose own tests cover what a release does to the pins.
type releases struct {
	mu    sync.Mutex
	slots []int
	by    []string
}

func (r *releases) RemoteRelease(slot int, by, reason, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slots = append(r.slots, slot)
	r.by = append(r.by, by)
	return nil
}

// RestoreKeypad records a restore_keypad as slot 0: the box's own tests
// cover what a restore does to the keypad.
func (r *releases) RestoreKeypad(by, reason, id string) error {
	return r.RemoteRelease(0, by, reason, id)
}

func (r *releases) get() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.slots...)
}

// TestServeEndToEnd: serve with the embedded broker; a box registered, given a
// key and a grant through the CLI; a real link with a real store gets the
// grant, its events come back, a remote release reaches it, and no code or
// password is ever printed or logged.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		testEndToEnd(t, func(t *testing.T) *runningBridge { return startBridge(t, t.TempDir(), "") })
	})
	t.Run("mosquitto", func(t *testing.T) {
		t.Parallel()
		testEndToEnd(t, func(t *testing.T) *runningBridge {
			brokertest.SkipWithoutMosquitto(t)
			m := brokertest.Start(t, brokertest.Mosquitto, brokertest.Options{
				Users: map[string]string{brokertest.CloudUser: "cloud-pw", e2eBox: e2ePassword},
			})
			cloudPwFile := filepath.Join(t.TempDir(), "cloud.pw")
			require.NoError(t, os.WriteFile(cloudPwFile, []byte("cloud-pw\n"), 0o600))
			return startBridge(t, t.TempDir(), "url = \""+m.URL()+"\"\npassword_file = \""+cloudPwFile+"\"\n")
		})
	})
}

const (
	e2eBox      = "box-7"
	e2eCode     = "48213579"
	e2ePassword = "box-7-mqtt-secret"
)

func testEndToEnd(t *testing.T, start func(t *testing.T) *runningBridge) {
	const (
		boxID    = e2eBox
		code     = e2eCode
		password = e2ePassword
	)
	b := start(t)

	// The signing key: printed at start, and by signing-key, the same line.
	line := strings.TrimSpace(b.mustCLI(t, "signing-key"))
	require.Contains(t, b.out, line)
	kid, pub64, ok := strings.Cut(line, "=")
	require.True(t, ok)
	pub, err := base64.StdEncoding.DecodeString(pub64)
	require.NoError(t, err)
	require.Len(t, pub, ed25519.PublicKeySize)
	for _, f := range []string{bridge.FileSigningKey, bridge.FileAdminToken} {
		fi, err := os.Stat(filepath.Join(b.dir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}

	// The admin endpoint wants the token.
	addr, err := os.ReadFile(filepath.Join(b.dir, bridge.FileAdminAddr))
	require.NoError(t, err)
	for _, auth := range []string{"", "Bearer wrong", "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b"))} {
		req, err := http.NewRequest(http.MethodGet, "http://"+strings.TrimSpace(string(addr))+"/v1/boxes", nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "auth %q", auth)
	}

	st, boxPub := provisionedBox(t, boxID, kid, pub)

	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte(password+"\n"), 0o600))
	out := b.mustCLI(t, "register-box", "--id", boxID, "--public-key", base64.StdEncoding.EncodeToString(boxPub), "--password-file", pwFile)
	require.Contains(t, out, "registered box "+boxID)
	b.mustCLI(t, "put-key", "--box", boxID, "--key", "van-12", "--fob", "01 00 07 34 e0", "--slot", "3", "--name", "Van 12")
	out = b.mustCLI(t, "put-grant", "--box", boxID, "--grant", "booking-1", "--kind", "booking", "--code", code,
		"--keys", "van-12", "--from", "2026-01-01T00:00:00Z", "--until", "2099-01-01T00:00:00Z", "--max-uses", "2", "--driver", "contact-9")
	require.Contains(t, out, "revision 2")

	// Refusals come back as clear errors with exit 1.
	c, _, errOut := b.cli(t, "put-grant", "--box", boxID, "--grant", "booking-2", "--kind", "booking", "--code", code, "--keys", "van-12")
	require.Equal(t, exitFailure, c)
	require.Contains(t, errOut, "booking-1", "the clash names the other grant")
	c, _, errOut = b.cli(t, "put-key", "--box", "nobody", "--key", "k", "--fob", "0100073400", "--slot", "1")
	require.Equal(t, exitFailure, c)
	require.Contains(t, errOut, "unknown box")

	// The box connects and gets the grant.
	rel := &releases{}
	l, err := link.New(link.Options{BoxID: boxID, BrokerURL: b.svc.BrokerURL(), Username: boxID, Password: password,
		Store: st, Box: rel, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	lctx, lcancel := context.WithCancel(context.Background())
	ldone := make(chan error, 1)
	go func() { ldone <- l.Run(lctx) }()
	t.Cleanup(func() {
		lcancel()
		<-ldone
	})
	require.Eventually(t, func() bool {
		gs, err := st.GrantsByCode(code)
		return err == nil && len(gs) == 1 && gs[0].ID == "booking-1" && gs[0].MaxUses == 2 && gs[0].DriverRef == "contact-9"
	}, 15*time.Second, 20*time.Millisecond)

	// Its events (records_applied) come back, and its status says online at
	// the cloud's revision with an empty outbox.
	require.Eventually(t, func() bool {
		return strings.Contains(b.mustCLI(t, "events", "--box", boxID), string(box.EventRecordsApplied))
	}, 15*time.Second, 50*time.Millisecond)
	var row []string
	require.Eventually(t, func() bool {
		row = boxRow(b.mustCLI(t, "boxes"), boxID)
		return len(row) == 7 && strings.Join(row[:5], " ") == boxID+" yes 2 2 0"
	}, 15*time.Second, 50*time.Millisecond, "boxes row %v", row)

	// Revoke: the box learns it.
	b.mustCLI(t, "revoke-grant", "--box", boxID, "--grant", "booking-1")
	require.Eventually(t, func() bool {
		gs, err := st.GrantsByCode(code)
		return err == nil && len(gs) == 1 && gs[0].Revoked
	}, 15*time.Second, 20*time.Millisecond)

	// A signed remote release reaches the box and its answer comes back.
	out = b.mustCLI(t, "release-slot", "--box", boxID, "--slot", "3", "--by", "tech-ann", "--reason", "lost PIN", "--wait", "15s")
	require.Contains(t, out, "released slot 3")
	require.Equal(t, []int{3}, rel.get())
	// And a keypad restore, for a keypad a guesser closed.
	out = b.mustCLI(t, "restore-keypad", "--box", boxID, "--by", "ops-bo", "--reason", "guessing stopped", "--wait", "15s")
	require.Contains(t, out, "restored its keypad")
	require.Equal(t, []int{3, 0}, rel.get())
	c, _, errOut = b.cli(t, "restore-keypad", "--box", boxID, "--by", "ops-bo")
	require.Equal(t, exitUsage, c)
	require.Contains(t, errOut, "reason")

	// Neither the code nor the password was printed or logged anywhere.
	b.stop(t)
	all := b.out + b.log.String() + out
	require.NotContains(t, all, code)
	require.NotContains(t, all, password)
	_, err = os.Stat(filepath.Join(b.dir, bridge.FileAdminAddr))
	require.ErrorIs(t, err, os.ErrNotExist, "a stopped service leaves no address behind")
	c, _, errOut = b.cli(t, "boxes")
	require.Equal(t, exitFailure, c)
	require.Contains(t, errOut, "not running")
}

// provisionedBox is a box's store, provisioned with the bridge's signing key
// (kid, pub) as a technician would, and the box's sync public key to
// register.
func provisionedBox(t *testing.T, boxID, kid string, pub ed25519.PublicKey) (*store.Store, []byte) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "box.db"), store.Options{BoxID: boxID, Slots: 12, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{kid: pub}}))
	boxPub, err := st.SyncPublicKey()
	require.NoError(t, err)
	return st, boxPub
}

// boxRow is the fields of box id's row in the boxes table.
func boxRow(table, id string) []string {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == id {
			return f
		}
	}
	return nil
}
