package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
)

// e2eWait bounds what a real smartboxd and bridge do in these tests (start,
// connect over TLS, sync, open a slot): generous for two loaded cores, never
// reached when things work.
const e2eWait = 60 * time.Second

// testBridge is a real bridge in-process with the embedded broker's TLS
// listener, and its admin token in a 0600 file.
type testBridge struct {
	*bridge.Service
	dataDir   string
	tokenFile string
}

func startBridge(t *testing.T) *testBridge {
	t.Helper()
	dir := t.TempDir()
	s, err := bridge.Start(context.Background(), bridge.Options{DataDir: dir,
		Broker: bridge.BrokerOptions{ListenTLS: "127.0.0.1:0"}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	tok := filepath.Join(t.TempDir(), "admin.token")
	require.NoError(t, os.WriteFile(tok, []byte(s.AdminToken()+"\n"), 0o600))
	return &testBridge{Service: s, dataDir: dir, tokenFile: tok}
}

// provision runs `smartboxctl provision` against b into target.
func (b *testBridge) provision(t *testing.T, target, boxID string, extra ...string) (int, string, string) {
	t.Helper()
	args := append([]string{"provision", "--target", target, "--box-id", boxID,
		"--bridge", b.AdminURL(), "--token-file", b.tokenFile}, extra...)
	return ctl(t, args...)
}

// card provisions a fresh card for boxID with the sim profile and returns
// its directory and tree.
func (b *testBridge) card(t *testing.T, boxID string) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	code, _, errOut := b.provision(t, dir, boxID, "--profile", "sim")
	require.Equal(t, exitOK, code, errOut)
	return dir, tree(t, dir)
}

// failingBridge fronts b and answers 500 to the calls whose path ends with
// suffix: a bridge that fails one step.
func failingBridge(t *testing.T, b *testBridge, suffix string) string {
	t.Helper()
	u, err := url.Parse(b.AdminURL())
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, suffix) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":"injected failure"}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// tree is every name under dir with its mode and a hash of its content:
// two equal trees are the same tree, byte for byte.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			v += " " + hex.EncodeToString(h[:])
		}
		out[rel] = v
		return nil
	}))
	return out
}

func fileMode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// boxInfo is the bridge's view of box id (GET /v1/boxes).
func boxInfo(t *testing.T, b *testBridge, id string) adminapi.BoxInfo {
	t.Helper()
	var boxes []adminapi.BoxInfo
	require.NoError(t, b.AdminClient().Do(context.Background(), http.MethodGet, "/v1/boxes", nil, &boxes))
	for _, bi := range boxes {
		if bi.ID == id {
			return bi
		}
	}
	t.Fatalf("the bridge has no box %s", id)
	return adminapi.BoxInfo{}
}

// startSmartboxd runs a real smartboxd from a provisioned card.
func startFromCard(t *testing.T, dir string) *boxsocket.Client {
	t.Helper()
	sock := filepath.Join(dir, "s.sock")
	startSmartboxd(t, filepath.Join(dir, relConfig), sock, "--data", dir)
	c := boxsocket.Dial(sock)
	t.Cleanup(c.Close)
	return c
}

func TestProvisionEndToEnd(t *testing.T) {
	b := startBridge(t)
	dir := t.TempDir()
	code, out, errOut := b.provision(t, dir, "box-e2e", "--profile", "sim", "--name", "Depot A", "--location", "Gate 1")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "created the store")
	require.Contains(t, out, "installed the bridge-signed client certificate")
	require.Contains(t, out, "box box-e2e: registered with the bridge")

	// The card: names, modes, nothing left of the staging.
	require.Equal(t, fs.FileMode(0o600), fileMode(t, filepath.Join(dir, relStore)))
	require.Equal(t, fs.FileMode(0o700), fileMode(t, filepath.Join(dir, tlsDir)))
	require.Equal(t, fs.FileMode(0o600), fileMode(t, filepath.Join(dir, relDeviceKey)))
	require.Equal(t, fs.FileMode(0o644), fileMode(t, filepath.Join(dir, relCert)))
	require.Equal(t, fs.FileMode(0o644), fileMode(t, filepath.Join(dir, relCA)))
	require.Equal(t, fs.FileMode(0o640), fileMode(t, filepath.Join(dir, relConfig)))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"box.db", "tls", "smartboxd.toml"}, names)
	cfg := string(readFile(t, filepath.Join(dir, relConfig)))
	require.Contains(t, cfg, `data_dir = "/var/lib/smartbox"`)
	require.Contains(t, cfg, `cert_file = "tls/box.crt"`)
	require.Contains(t, cfg, "ssl://127.0.0.1:")
	require.Equal(t, readFile(t, filepath.Join(b.dataDir, bridge.FileCACert)), readFile(t, filepath.Join(dir, relCA)))

	// The bridge knows the box: name, location, slots, a certificate.
	info := boxInfo(t, b, "box-e2e")
	require.Equal(t, "Depot A", info.Name)
	require.Equal(t, "Gate 1", info.Location)
	require.Equal(t, 12, info.Slots)
	require.False(t, info.CertNotAfter.IsZero())

	// A real smartboxd from the card connects with its certificate.
	c := startFromCard(t, dir)
	ctx := context.Background()
	require.Eventually(t, func() bool {
		st, err := c.Status(ctx)
		return err == nil && st.Cloud == "connected"
	}, e2eWait, 50*time.Millisecond, "smartboxd never connected with its client certificate")

	// A PIN put on the bridge syncs, and opens its slot.
	admin := b.AdminClient()
	require.NoError(t, admin.Do(ctx, http.MethodPut, "/v1/boxes/box-e2e/keys/key-3",
		bridge.PutKeyRequest{Name: "Van 3", FobUID: "0100000003", Slot: 3}, nil))
	require.NoError(t, admin.Do(ctx, http.MethodPut, "/v1/boxes/box-e2e/grants/g-1",
		bridge.PutGrantRequest{Kind: box.KindBooking, Code: "482913", KeyIDs: []string{"key-3"}}, nil))
	want := boxInfo(t, b, "box-e2e").Revision
	require.Eventually(t, func() bool {
		st, err := c.Status(ctx)
		return err == nil && st.Revision >= want
	}, e2eWait, 50*time.Millisecond, "the grant never synced (is the signing key the bridge's?)")
	require.NoError(t, c.Press(ctx, "482913#", 0))
	require.Eventually(t, func() bool {
		slots, err := c.Slots(ctx)
		return err == nil && len(slots) >= 3 && slots[2].Released
	}, e2eWait, 50*time.Millisecond, "slot 3 never released for the synced PIN")
}

func TestProvisionIdempotent(t *testing.T) {
	b := startBridge(t)
	dir, before := b.card(t, "box-1")

	code, out, errOut := b.provision(t, dir, "box-1", "--profile", "sim", "--name", "Renamed")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "nothing to change")
	require.Contains(t, out, "registered with the bridge")
	require.Equal(t, before, tree(t, dir), "a second run changed the card")
	require.Equal(t, "Renamed", boxInfo(t, b, "box-1").Name, "re-registered")

	// A missing certificate is fetched again for the same key; the store
	// and key stay.
	require.NoError(t, os.Remove(filepath.Join(dir, relCert)))
	code, out, errOut = b.provision(t, dir, "box-1", "--profile", "sim")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "installed the bridge-signed client certificate")
	require.NotContains(t, out, "device key")
	after := tree(t, dir)
	require.Equal(t, before[relStore], after[relStore])
	require.Equal(t, before[relDeviceKey], after[relDeviceKey])
}

func TestProvisionForce(t *testing.T) {
	b := startBridge(t)
	dir, before := b.card(t, "box-old")

	code, _, errOut := b.provision(t, dir, "box-new", "--profile", "sim")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, `is box "box-old"'s identity, not "box-new"'s`)
	require.Contains(t, errOut, "--force")
	require.Equal(t, before, tree(t, dir))

	code, _, errOut = b.provision(t, dir, "box-new", "--profile", "sim", "--force")
	require.Equal(t, exitOK, code, errOut)
	s, err := store.Open(filepath.Join(dir, relStore), store.Options{Logger: discardLogger})
	require.NoError(t, err)
	id, _ := s.Identity()
	require.NoError(t, s.Close())
	require.Equal(t, "box-new", id.BoxID)
	// The old files are kept, byte for byte.
	old, err := filepath.Glob(filepath.Join(dir, replacedPrefix+"*"))
	require.NoError(t, err)
	require.Len(t, old, 1)
	kept := tree(t, old[0])
	for _, rel := range []string{relStore, relDeviceKey, relCert, relCA, relConfig} {
		require.Equal(t, before[rel], kept[rel], rel)
	}
}

// The report shows what the card trusts, and a pinned signing key (its
// line or its fingerprint) that matches lets the run through.
func TestProvisionTrustAnchors(t *testing.T) {
	b := startBridge(t)
	kid, pub64, _ := strings.Cut(b.SigningKeyLine(), "=")
	pub, err := base64.StdEncoding.DecodeString(pub64)
	require.NoError(t, err)
	fp := adminapi.Fingerprint(pub)
	for i, pin := range []string{b.SigningKeyLine(), fp} {
		code, out, errOut := b.provision(t, t.TempDir(), fmt.Sprintf("box-t%d", i), "--profile", "sim", "--expect-signing-key", pin)
		require.Equal(t, exitOK, code, errOut)
		require.Contains(t, out, "trusts: signing key "+kid+" ("+fp+"), CA sha256:")
	}
}

// A card whose names are symbolic links (or tls a file) is refused before
// anything is written through them; an existing tls becomes 0700.
func TestProvisionRefusesLinks(t *testing.T) {
	b := startBridge(t)
	for _, tc := range []struct {
		name, want string
		plant      func(t *testing.T, dir, elsewhere string)
	}{
		{"box.db", "box.db is a symbolic link", func(t *testing.T, dir, elsewhere string) {
			require.NoError(t, os.Symlink(filepath.Join(elsewhere, "x.db"), filepath.Join(dir, relStore)))
		}},
		{"tls link", "tls is a symbolic link", func(t *testing.T, dir, elsewhere string) {
			require.NoError(t, os.Symlink(elsewhere, filepath.Join(dir, tlsDir)))
		}},
		{"tls file", "tls is not a directory", func(t *testing.T, dir, _ string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, tlsDir), nil, 0o600))
		}},
		{"config", "smartboxd.toml is a symbolic link", func(t *testing.T, dir, elsewhere string) {
			require.NoError(t, os.Symlink(filepath.Join(elsewhere, "etc.toml"), filepath.Join(dir, relConfig)))
		}},
		{"device key", "box.key is not a regular file", func(t *testing.T, dir, elsewhere string) {
			require.NoError(t, os.Mkdir(filepath.Join(dir, tlsDir), 0o700))
			require.NoError(t, os.Symlink(filepath.Join(elsewhere, "k"), filepath.Join(dir, relDeviceKey)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, elsewhere := t.TempDir(), t.TempDir()
			tc.plant(t, dir, elsewhere)
			before := tree(t, dir)
			code, _, errOut := b.provision(t, dir, "box-l", "--profile", "sim")
			require.Equal(t, exitFailure, code, errOut)
			require.Contains(t, errOut, tc.want)
			require.Equal(t, before, tree(t, dir))
			require.Empty(t, tree(t, elsewhere)["x.db"]+tree(t, elsewhere)["etc.toml"]+tree(t, elsewhere)["box.key"], "written through a link")
		})
	}
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, tlsDir), 0o755))
	code, _, errOut := b.provision(t, dir, "box-m", "--profile", "sim")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, fs.FileMode(0o700), fileMode(t, filepath.Join(dir, tlsDir)))
}

// A fresh card given the id of a box the bridge already has (a mistyped
// --box-id) does not take that box over: the bridge keeps its key and its
// certificate, and says so; --force replaces it.
func TestProvisionWrongBoxIDRefused(t *testing.T) {
	b := startBridge(t)
	_, _ = b.card(t, "box-a")
	before := boxInfo(t, b, "box-a")
	require.NotEmpty(t, before.CertSerial)

	dir := t.TempDir()
	code, _, errOut := b.provision(t, dir, "box-a", "--profile", "sim")
	require.Equal(t, exitFailure, code, errOut)
	require.Contains(t, errOut, "box box-a is already registered with another key")
	require.Contains(t, errOut, "is the box id right?")
	require.Contains(t, errOut, "--force replaces it there too")
	require.Equal(t, before.CertSerial, boxInfo(t, b, "box-a").CertSerial, "the real box's certificate stays")

	code, _, errOut = b.provision(t, dir, "box-a", "--profile", "sim", "--force")
	require.Equal(t, exitOK, code, errOut)
	require.NotEqual(t, before.CertSerial, boxInfo(t, b, "box-a").CertSerial)
}

// A bridge that fails before it changed leaves the card as it was.
func TestProvisionFailureChangesNothing(t *testing.T) {
	b := startBridge(t)
	for _, step := range []string{"/v1/boxes", "/v1/provisioning"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o600))
			before := tree(t, dir)
			code, _, errOut := ctl(t, "provision", "--target", dir, "--box-id", "box-f", "--profile", "sim",
				"--bridge", failingBridge(t, b, step), "--token-file", b.tokenFile)
			require.Equal(t, exitFailure, code)
			require.Contains(t, errOut, "injected failure")
			require.Contains(t, errOut, "nothing was changed")
			require.Equal(t, before, tree(t, dir))
		})
	}
}

// A bridge that fails the certificate step after registering the box:
// the error says what the bridge now holds, the card gets the store the
// bridge registered, and the same command again completes the card.
func TestProvisionFailureAfterRegister(t *testing.T) {
	b := startBridge(t)
	dir := t.TempDir()
	code, _, errOut := ctl(t, "provision", "--target", dir, "--box-id", "box-f", "--profile", "sim",
		"--bridge", failingBridge(t, b, "/certificate"), "--token-file", b.tokenFile)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "injected failure")
	require.NotContains(t, errOut, "nothing was changed")
	require.Contains(t, errOut, "now has box box-f registered with this card's sync key, and no new certificate")
	require.Contains(t, errOut, "running the same command again completes the card")
	require.FileExists(t, filepath.Join(dir, relStore))
	require.NoFileExists(t, filepath.Join(dir, relCert))
	require.True(t, boxInfo(t, b, "box-f").CertNotAfter.IsZero())

	code, out, errOut := b.provision(t, dir, "box-f", "--profile", "sim")
	require.Equal(t, exitOK, code, errOut)
	require.NotContains(t, out, "created the store")
	require.Contains(t, out, "installed the bridge-signed client certificate")
	require.Equal(t, certSerial(t, dir), boxInfo(t, b, "box-f").CertSerial)
}

// A run that failed after the bridge issued a certificate keeps its stage
// (key and certificate, the bridge's current one); the same command again
// takes them instead of asking for a certificate for a new key, which the
// bridge would refuse without --force.
func TestProvisionTakesKeptCertificate(t *testing.T) {
	b := startBridge(t)
	dir, _ := b.card(t, "box-k")
	serial := certSerial(t, dir)
	kept := filepath.Join(dir, stagePrefix+"kept")
	require.NoError(t, os.MkdirAll(filepath.Join(kept, tlsDir), 0o700))
	for _, rel := range []string{relDeviceKey, relCert} {
		require.NoError(t, os.Rename(filepath.Join(dir, rel), filepath.Join(kept, rel)))
	}
	// The card's own key is another one, whose certificate is not current.
	_, keyPEM, err := newDeviceKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, relDeviceKey), keyPEM, 0o600))

	code, out, errOut := b.provision(t, dir, "box-k", "--profile", "sim")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "took the certificate the bridge issued to the run that was interrupted")
	require.NotContains(t, out, "installed the bridge-signed client certificate", "no new certificate asked for")
	require.Equal(t, serial, certSerial(t, dir))
	require.Equal(t, serial, boxInfo(t, b, "box-k").CertSerial)
	require.NoDirExists(t, kept)
}

// A card that lost its device key asks a certificate for a new one, which
// the bridge refuses while the old one is current: the error says --force,
// and --force completes the card.
func TestProvisionLostKeyNeedsForce(t *testing.T) {
	b := startBridge(t)
	dir, _ := b.card(t, "box-d")
	serial := certSerial(t, dir)
	require.NoError(t, os.Remove(filepath.Join(dir, relDeviceKey)))
	code, _, errOut := b.provision(t, dir, "box-d", "--profile", "sim")
	require.Equal(t, exitFailure, code, errOut)
	require.Contains(t, errOut, "already has a current certificate for another key")
	require.Contains(t, errOut, "with --force, running the same command again completes the card")
	require.Equal(t, serial, boxInfo(t, b, "box-d").CertSerial)
	code, _, errOut = b.provision(t, dir, "box-d", "--profile", "sim", "--force")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, certSerial(t, dir), boxInfo(t, b, "box-d").CertSerial)
	require.NotEqual(t, serial, certSerial(t, dir))
}

// certSerial is the serial (hex) of the card's tls/box.crt.
func certSerial(t *testing.T, dir string) string {
	t.Helper()
	blk, _ := pem.Decode(readFile(t, filepath.Join(dir, relCert)))
	require.NotNil(t, blk)
	c, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	return c.SerialNumber.Text(16)
}

// A card whose certificate is valid but no longer the bridge's current one
// (the box was certified again since) gets a new one on a re-run.
func TestProvisionRenewsReplacedCertificate(t *testing.T) {
	b := startBridge(t)
	dir, _ := b.card(t, "box-s")
	old := certSerial(t, dir)
	key, err := loadDeviceKey(filepath.Join(dir, relDeviceKey))
	require.NoError(t, err)
	csr, err := makeCSR(key, "box-s")
	require.NoError(t, err)
	_, err = b.AdminClient().Certificate(context.Background(), "box-s", []byte(csr), false)
	require.NoError(t, err)
	require.NotEqual(t, old, boxInfo(t, b, "box-s").CertSerial)

	code, out, errOut := b.provision(t, dir, "box-s", "--profile", "sim")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "serial "+old+" is no longer the bridge's current one")
	require.Equal(t, certSerial(t, dir), boxInfo(t, b, "box-s").CertSerial)
	require.NotEqual(t, old, certSerial(t, dir))
}

func TestProvisionBadInput(t *testing.T) {
	b := startBridge(t)
	provisioned, _ := b.card(t, "box-1")

	looseToken := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(looseToken, []byte(b.AdminToken()), 0o644))
	wrongToken := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(wrongToken, []byte("not-the-token"), 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	unreachable := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	badPins := writeFile(t, "own.toml", "[hardware]\nprofile = \"smartbox-v1\"\n\n[hardware.keypad]\n"+
		"rows = [\"GPIO5\", \"GPIO6\", \"GPIO13\", \"GPIO99\"]\ncols = [\"GPIO16\", \"GPIO20\", \"GPIO21\"]\n\n"+
		"[hardware.reader]\nport = \"/dev/serial0\"\n\n[hardware.slots]\ncount = 1\nlocks = [\"GPIO17\"]\nsensors = [\"GPIO27\"]\nleds = [\"GPIO22\"]\n")
	withCloud := writeFile(t, "own.toml", "[hardware]\nprofile = \"sim\"\n\n[cloud]\nbroker_url = \"ssl://x:8883\"\npassword_file = \"pw\"\n")
	notDir := writeFile(t, "file", "x")

	for _, tc := range []struct {
		name   string
		target string
		args   []string
		code   int
		want   string
	}{
		{"no target", "", nil, exitUsage, "--target DIR is required"},
		{"missing target", filepath.Join(t.TempDir(), "nope"), nil, exitFailure, "mount the card"},
		{"target a file", notDir, nil, exitFailure, "is not a directory"},
		{"no box id", "", []string{"--box-id", ""}, exitUsage, "--box-id ID is required"},
		{"unknown profile", "", []string{"--profile", "rpi9"}, exitUsage, `no board profile "rpi9"`},
		{"pins the board lacks", "", []string{"--profile", "rpi4", "--config", badPins}, exitFailure, `"GPIO99": a rpi4 board has no such line`},
		{"own config with cloud", "", []string{"--config", withCloud}, exitFailure, "has a [cloud] table"},
		{"bad broker", "", []string{"--broker", "mqtt.example.com"}, exitUsage, `--broker "mqtt.example.com": want a TLS broker URL`},
		{"plain broker", "", []string{"--broker", "tcp://mqtt.example.com:1883"}, exitUsage, "want a TLS broker URL"},
		{"loose token", "", []string{"--token-file", looseToken}, exitFailure, "chmod 600"},
		{"wrong token", "", []string{"--token-file", wrongToken}, exitFailure, "refused the token in " + wrongToken},
		{"unreachable", "", []string{"--bridge", unreachable}, exitFailure, "is not reachable"},
		{"existing identity", provisioned, []string{"--box-id", "box-2"}, exitFailure, `is box "box-1"'s identity`},
		{"box id the bridge refuses", "", []string{"--box-id", bridge.DefaultCloudUser}, exitFailure, "is the cloud's broker user name"},
		{"bad bridge url", "", []string{"--bridge", "bridge.example.com"}, exitUsage, "--bridge"},
		{"plain http to another host", "", []string{"--bridge", "http://bridge.example.com:8480"}, exitUsage, "plain http:// would send the admin token in clear"},
		{"unexpected signing key", "", []string{"--expect-signing-key", "sha256:00"}, exitFailure, "not the sha256:00 expected (--expect-signing-key)"},
		{"unexpected signing key id", "", []string{"--expect-signing-key", "other=" + base64.StdEncoding.EncodeToString(make([]byte, 32))},
			exitFailure, "not the other expected (--expect-signing-key)"},
		{"offline without key", "", []string{"--offline", "--bridge", ""}, exitUsage, "--bridge"},
		{"offline alone", "", []string{"--bridge", "", "--token-file", "", "--offline"}, exitUsage, "--offline needs --signing-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" && tc.name != "no target" {
				target = t.TempDir()
			}
			var before map[string]string
			if fi, err := os.Stat(target); err == nil && fi.IsDir() {
				before = tree(t, target)
			}
			args := []string{"provision"}
			if target != "" {
				args = append(args, "--target", target)
			}
			args = append(args, "--box-id", "box-9", "--profile", "sim", "--bridge", b.AdminURL(), "--token-file", b.tokenFile)
			code, _, errOut := ctl(t, append(args, tc.args...)...)
			require.Equal(t, tc.code, code, errOut)
			require.Contains(t, errOut, tc.want)
			if before != nil {
				require.Equal(t, before, tree(t, target), "nothing written")
			}
		})
	}
}

func TestProvisionOwnConfig(t *testing.T) {
	b := startBridge(t)
	dir := t.TempDir()
	own := writeFile(t, "own.toml", "# my box\n[hardware]\nprofile = \"sim\"\n\n[hardware.slots]\ncount = 6\n")
	code, _, errOut := b.provision(t, dir, "box-own", "--profile", "sim", "--config", own, "--data-dir", "/srv/box")
	require.Equal(t, exitOK, code, errOut)
	cfg := string(readFile(t, filepath.Join(dir, relConfig)))
	require.Contains(t, cfg, "# my box")
	require.Contains(t, cfg, `box_id = "box-own"`)
	require.Contains(t, cfg, `data_dir = "/srv/box"`)
	require.Contains(t, cfg, `key_file = "tls/box.key"`)
	require.Equal(t, 6, boxInfo(t, b, "box-own").Slots, "slots from the config")
}

func TestProvisionOffline(t *testing.T) {
	b := startBridge(t)
	dir := t.TempDir()
	caFile := filepath.Join(b.dataDir, bridge.FileCACert)
	broker := "ssl://" + b.BrokerTLSAddr()
	code, out, errOut := ctl(t, "provision", "--target", dir, "--box-id", "box-off", "--profile", "sim", "--offline",
		"--signing-key", b.SigningKeyLine(), "--ca-file", caFile, "--broker", broker, "--name", "Far away")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, errOut, "register-box --record")
	var rec adminapi.ProvisionRecord
	require.NoError(t, json.Unmarshal([]byte(out), &rec), "stdout is the record: %s", out)
	require.Equal(t, "box-off", rec.Register.ID)
	require.Equal(t, "Far away", rec.Register.Name)
	require.Equal(t, 12, rec.Register.Slots)
	require.Contains(t, rec.CSR, "BEGIN CERTIFICATE REQUEST")
	require.NoFileExists(t, filepath.Join(dir, relCert))
	require.FileExists(t, filepath.Join(dir, relStore))

	// The admin carries the record to the bridge (what `smartbox-bridge
	// register-box --record` does) and the certificate back.
	ctx := context.Background()
	require.NoError(t, b.AdminClient().Do(ctx, http.MethodPost, "/v1/boxes", rec.Register, nil))
	cr, err := b.AdminClient().Certificate(ctx, "box-off", []byte(rec.CSR), false)
	require.NoError(t, err)

	// A certificate for another key is refused, and changes nothing.
	other := t.TempDir()
	code, otherOut, errOut := ctl(t, "provision", "--target", other, "--box-id", "box-off", "--profile", "sim", "--offline",
		"--signing-key", b.SigningKeyLine(), "--ca-file", caFile, "--broker", broker)
	require.Equal(t, exitOK, code, errOut)
	var otherRec adminapi.ProvisionRecord
	require.NoError(t, json.Unmarshal([]byte(otherOut), &otherRec))
	before := tree(t, dir)
	otherCert, err := b.AdminClient().Certificate(ctx, "box-off", []byte(otherRec.CSR), true)
	require.NoError(t, err)
	code, _, errOut = ctl(t, "provision", "--target", dir, "--certificate", writeFile(t, "other.crt", otherCert.Certificate))
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "another key")
	require.Equal(t, before, tree(t, dir))

	code, out, errOut = ctl(t, "provision", "--target", dir, "--certificate", writeFile(t, "box.crt", cr.Certificate))
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "installed the client certificate for box box-off")
	require.Equal(t, cr.Certificate, string(readFile(t, filepath.Join(dir, relCert))))
	require.Equal(t, fs.FileMode(0o644), fileMode(t, filepath.Join(dir, relCert)))
	require.NoFileExists(t, filepath.Join(dir, relStore+pidSuffix))
}

// A power cut during the final renames leaves some new files in place, no
// box.db and the staging directory: the same command again finishes it.
func TestProvisionAfterCut(t *testing.T) {
	b := startBridge(t)
	dir, _ := b.card(t, "box-cut")
	// Make the cut: box.db back into a staging directory, as if its rename
	// never happened.
	stale := filepath.Join(dir, stagePrefix+"cut")
	require.NoError(t, os.Mkdir(stale, 0o700))
	require.NoError(t, os.Rename(filepath.Join(dir, relStore), filepath.Join(stale, relStore)))
	half := tree(t, dir)

	staged := tree(t, stale)[relStore]

	// The staged store is the one the bridge has: it is taken, not made
	// again (a new one would be another key, which the bridge refuses).
	code, out, errOut := b.provision(t, dir, "box-cut", "--profile", "sim")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "took box.db from the run that was interrupted")
	require.NotContains(t, out, "created the store")
	require.NoDirExists(t, stale)
	now := tree(t, dir)
	require.Equal(t, staged, now[relStore])
	require.Equal(t, half[relDeviceKey], now[relDeviceKey], "the installed key stays")

	// And the card works.
	c := startFromCard(t, dir)
	require.Eventually(t, func() bool {
		st, err := c.Status(context.Background())
		return err == nil && st.Cloud == "connected"
	}, e2eWait, 50*time.Millisecond, "smartboxd never connected after a finished re-run")
}

// An unreadable box.db is refused, and moves aside with --force.
func TestProvisionCorruptStore(t *testing.T) {
	b := startBridge(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, relStore), []byte("not a bbolt file, but long enough to be looked at"), 0o600))
	before := tree(t, dir)
	code, _, errOut := b.provision(t, dir, "box-c", "--profile", "sim")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "--force moves it")
	require.Equal(t, before, tree(t, dir))
	code, _, errOut = b.provision(t, dir, "box-c", "--profile", "sim", "--force")
	require.Equal(t, exitOK, code, errOut)
	old, err := filepath.Glob(filepath.Join(dir, replacedPrefix+"*", relStore))
	require.NoError(t, err)
	require.Len(t, old, 1)
	require.Equal(t, before[relStore], tree(t, filepath.Dir(old[0]))[relStore])
}
