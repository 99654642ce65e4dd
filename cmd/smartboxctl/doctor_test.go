package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/smartbox-oss/smartbox/cmd/internal/boardprofile"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
)

// doctorReport is doctor --json's output.
type doctorReport struct {
	OK       bool      `json:"ok"`
	Findings []finding `json:"findings"`
}

// runDoctor runs smartboxctl doctor --json with args and returns its exit
// code and findings.
func runDoctor(t *testing.T, args ...string) (int, doctorReport) {
	t.Helper()
	code, out, errOut := ctl(t, append([]string{"doctor", "--json"}, args...)...)
	var r doctorReport
	require.NoError(t, json.Unmarshal([]byte(out), &r), "stdout: %s\nstderr: %s", out, errOut)
	return code, r
}

// findingOf returns the one finding of check.
func (r doctorReport) of(t *testing.T, check string) finding {
	t.Helper()
	var got []finding
	for _, f := range r.Findings {
		if f.Check == check {
			got = append(got, f)
		}
	}
	require.NotEmpty(t, got, "no %s finding in %+v", check, r.Findings)
	return got[len(got)-1]
}

func requireProblem(t *testing.T, r doctorReport, check string, says ...string) finding {
	t.Helper()
	f := r.of(t, check)
	require.Equal(t, stateProblem, f.State, "%+v", f)
	require.NotEmpty(t, f.Fix, "a problem says what to do: %+v", f)
	for _, s := range says {
		require.Contains(t, f.What, s)
	}
	return f
}

func requireOK(t *testing.T, r doctorReport, check string, says ...string) {
	t.Helper()
	f := r.of(t, check)
	require.Equal(t, stateOK, f.State, "%+v", f)
	for _, s := range says {
		require.Contains(t, f.What, s)
	}
}

// shortSocketPath is a socket path short enough for sun_path's 107
// bytes, which t.TempDir's can pass.
func shortSocketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbdoc")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

// noSocket is a socket path where nothing is.
func noSocket(t *testing.T) string { return filepath.Join(t.TempDir(), "none.sock") }

// renderConfig writes profile's config for box-a with data dir dir, the
// [cloud] table (if any) appended, and edit applied to the text.
func writeProfileConfig(t *testing.T, profile, dir, cloud string, edit func(string) string) string {
	t.Helper()
	p, err := boardprofile.ByName(profile)
	require.NoError(t, err)
	src, err := p.Render(boardprofile.Params{BoxID: "box-a", DataDir: dir})
	require.NoError(t, err)
	text := string(src) + "\n" + cloud
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(t.TempDir(), "smartboxd.toml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

// headerPins registers the Raspberry Pi header's lines as gpiotest pins, as
// periph's gpioioctl driver would on a Pi, once per test process.
var headerPins sync.Once

func registerHeaderPins(t *testing.T) {
	headerPins.Do(func() {
		for i := range 28 {
			name := fmt.Sprintf("GPIO%d", i)
			if gpioreg.ByName(name) == nil {
				require.NoError(t, gpioreg.Register(&gpiotest.Pin{N: name, Num: i}))
			}
		}
	})
}

// A SmartBox v1 config on a bare Raspberry Pi (header lines, no expander
// lines): the missing pins by field and role, the profile the machine fits.
// Its reader port does not exist here.
func TestDoctorPinsAndReader(t *testing.T) {
	registerHeaderPins(t)
	dir := t.TempDir()
	cfg := writeProfileConfig(t, "smartbox-v1", dir, "", nil)
	code, r := runDoctor(t, "--config", cfg, "--socket", noSocket(t))
	require.Equal(t, exitFailure, code)
	requireOK(t, r, "config", "profile smartbox-v1")
	f := requireProblem(t, r, "pins", `hardware.slots.locks: all 12 slot lock pins ("LOCK1" .. "LOCK12")`,
		`hardware.slots.sensors: all 12 slot key sensor pins`, "board profile smartbox-v1")
	require.NotContains(t, f.What, "hardware.keypad", "the keypad's header lines exist")
	require.Contains(t, f.Fix, "rpi3, rpi4, rpi5")
	requireProblem(t, r, "reader", "/dev/serial0 does not exist")

	// The header config on the same machine: every pin is there.
	cfg = writeProfileConfig(t, "rpi4", dir, "", nil)
	_, r = runDoctor(t, "--config", cfg, "--socket", noSocket(t))
	requireOK(t, r, "pins", "GPIO lines the config names exist")

	// One line the board lacks (the Pi header stops at GPIO27): named by
	// field, role and number; the config then fits no profile.
	cfg = writeProfileConfig(t, "rpi4", dir, "", func(s string) string {
		return strings.Replace(s, `locks = ["GPIO17"`, `locks = ["GPIO40"`, 1)
	})
	_, r = runDoctor(t, "--config", cfg, "--socket", noSocket(t))
	f = requireProblem(t, r, "pins", `hardware.slots.locks: slot lock 1 "GPIO40" (periph`)
	require.NotContains(t, f.What, "the config's pins are those of")
	require.Contains(t, f.Fix, "board profile rpi3, rpi4, rpi5")

	t.Run("reader port", func(t *testing.T) {
		regular := filepath.Join(t.TempDir(), "ttyAMA0")
		require.NoError(t, os.WriteFile(regular, nil, 0o600))
		dangling := filepath.Join(t.TempDir(), "serial0")
		require.NoError(t, os.Symlink("ttyAMA9", dangling))
		linkToNull := filepath.Join(t.TempDir(), "serial1")
		require.NoError(t, os.Symlink("/dev/null", linkToNull))
		for _, tc := range []struct{ port, state, says string }{
			{regular, stateProblem, "is not a character device"},
			{dangling, stateProblem, "is a link to ttyAMA9, which does not exist"},
			{linkToNull, stateOK, "(-> /dev/null) is a character device"},
		} {
			cfg := writeProfileConfig(t, "rpi4", dir, "", func(s string) string {
				return strings.Replace(s, `"/dev/serial0"`, `"`+tc.port+`"`, 1)
			})
			_, r := runDoctor(t, "--config", cfg, "--socket", noSocket(t))
			f := r.of(t, "reader")
			require.Equal(t, tc.state, f.State, "%+v", f)
			require.Contains(t, f.What, tc.says)
		}
	})
}

func TestDoctorConfig(t *testing.T) {
	code, r := runDoctor(t, "--config", filepath.Join(t.TempDir(), "nope.toml"), "--socket", noSocket(t))
	require.Equal(t, exitFailure, code)
	requireProblem(t, r, "config", "no config at")
	require.Equal(t, stateSkipped, r.of(t, "pins").State)

	bad := writeFile(t, "smartboxd.toml", "box_id = \"box-a\"\n[hardware]\nprofile = \"pi-zero\"\n")
	_, r = runDoctor(t, "--config", bad, "--socket", noSocket(t))
	requireProblem(t, r, "config", "hardware.profile", "pi-zero")

	// A text report: one line per finding, the fix under a problem.
	code, out, errOut := ctl(t, "doctor", "--config", bad, "--socket", noSocket(t))
	require.Equal(t, exitFailure, code)
	require.Contains(t, out, "PROBLEM  config")
	require.Contains(t, out, "what to do: ")
	require.Contains(t, errOut, "problem(s) found")
}

// The store: missing, damaged, held by another process, fine.
func TestDoctorStore(t *testing.T) {
	dir := t.TempDir()
	cfg := writeProfileConfig(t, "sim", dir, "", nil)
	sock := noSocket(t)
	_, r := runDoctor(t, "--config", cfg, "--socket", sock)
	requireProblem(t, r, "store", "no store at "+filepath.Join(dir, "box.db"))

	st, err := store.Open(filepath.Join(dir, "box.db"), store.Options{BoxID: "box-a", Slots: 4})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	_, r = runDoctor(t, "--config", cfg, "--socket", sock)
	requireOK(t, r, "store", "passes bbolt's consistency check")

	t.Run("held by another process", func(t *testing.T) {
		flock, err := exec.LookPath("flock")
		if err != nil {
			t.Skip("flock(1) is not installed (util-linux)")
		}
		// flock(1) takes the same flock(2) lock bbolt does, and holds it
		// until its stdin closes; the pid file names it, as the store's
		// Open would.
		cmd := exec.Command(flock, "--exclusive", filepath.Join(dir, "box.db"), "cat")
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			stdin.Close()
			_ = cmd.Wait()
		})
		// cat echoes once flock holds the lock.
		_, err = io.WriteString(stdin, "locked\n")
		require.NoError(t, err)
		buf := make([]byte, 7)
		_, err = io.ReadFull(stdout, buf)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "box.db.pid"), fmt.Appendf(nil, "%d\n", cmd.Process.Pid), 0o644))

		_, r := runDoctor(t, "--config", cfg, "--socket", sock)
		f := requireProblem(t, r, "store", fmt.Sprintf("(pid %d) holds %s but does not answer on %s", cmd.Process.Pid, filepath.Join(dir, "box.db"), sock))
		require.Contains(t, f.Fix, "restart")
	})

	t.Run("damaged", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "box.db"), []byte(strings.Repeat("not a bbolt file ", 512)), 0o600))
		_, r := runDoctor(t, "--config", writeProfileConfig(t, "sim", dir, "", nil), "--socket", sock)
		requireProblem(t, r, "store", "is damaged")
	})
}

// A socket file nothing answers on (a killed smartboxd's).
func TestDoctorStaleSocket(t *testing.T) {
	path := shortSocketPath(t)
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())

	_, r := runDoctor(t, "--config", writeProfileConfig(t, "sim", t.TempDir(), "", nil), "--socket", path)
	requireProblem(t, r, "daemon", "a socket file is at "+path+" but nothing answers")
}

// A socket that accepts and never answers: a stuck daemon.
func TestDoctorStuckSocket(t *testing.T) {
	path := shortSocketPath(t)
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	_, r := runDoctor(t, "--config", writeProfileConfig(t, "sim", t.TempDir(), "", nil), "--socket", path)
	requireProblem(t, r, "daemon", "accepts but does not answer within "+socketAnswerWait.String())
}

// The outbox rule on the status a daemon reports: the ages involved
// (a quarter of an hour) are not waited for in a test.
func TestDoctorOutboxRule(t *testing.T) {
	now := time.Now()
	long := int64((outboxStaleAfter + time.Minute) / time.Second)
	for _, tc := range []struct {
		name  string
		st    boxsocket.Status
		state string
		says  string
	}{
		{"empty", boxsocket.Status{Cloud: "connected", UptimeS: long}, stateOK, "empty"},
		{"draining", boxsocket.Status{Cloud: "connected", Outbox: 3, UptimeS: long, LastAck: now.Add(-time.Minute)}, stateOK, "3 events wait, draining"},
		{"just started", boxsocket.Status{Cloud: "not connected", Outbox: 3, UptimeS: 10}, stateOK, "wait for the connection"},
		{"not connected", boxsocket.Status{Cloud: "not connected", Outbox: 3, UptimeS: long}, stateProblem, "has not been connected"},
		{"no ack for long", boxsocket.Status{Cloud: "connected", Outbox: 3, UptimeS: long, LastAck: now.Add(-time.Hour)}, stateProblem, "last acknowledged events 1h0m0s ago"},
		{"never acked", boxsocket.Status{Cloud: "connected", Outbox: 3, UptimeS: long}, stateProblem, "acknowledged none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &doctor{status: &tc.st}
			d.checkOutbox()
			require.Len(t, d.findings, 1)
			require.Equal(t, tc.state, d.findings[0].State, "%+v", d.findings[0])
			require.Contains(t, d.findings[0].What, tc.says)
		})
	}
}

// The broker, classified from a real attempt: refused, another CA, a
// wrong password, and a login that works.
func TestDoctorBroker(t *testing.T) {
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{TLS: true})
	other := brokertest.TestCerts(t) // another CA than the broker's
	dir := t.TempDir()
	pw := writeFile(t, "mqtt-password", brokertest.Password("box-a")+"\n")
	wrongPW := writeFile(t, "wrong-password", "guess\n")
	refused := fmt.Sprintf("tcp://127.0.0.1:%d", brokertest.FreePort(t))
	tlsURL := strings.Replace(b.TLSURL(), "127.0.0.1", "localhost", 1)
	otherName, otherCA := tlsServer(t, "broker.example", time.Now().Add(time.Hour), nil)
	expired, expiredCA := tlsServer(t, "localhost", time.Now().Add(-time.Hour), nil)
	// A broker that takes client certificates of another CA than the box's.
	strict, strictCA := tlsServer(t, "localhost", time.Now().Add(time.Hour), other.Pool)
	cert, key, _ := b.Certs().ClientCert(t, "box-a")
	for _, tc := range []struct {
		name, cloud, state string
		says               []string
	}{
		{"refused", fmt.Sprintf("[cloud]\nbroker_url = %q\npassword_file = %q\n", refused, pw), stateProblem,
			[]string{"connection refused at " + strings.TrimPrefix(refused, "tcp://")}},
		{"another CA", fmt.Sprintf("[cloud]\nbroker_url = %q\npassword_file = %q\nca_file = %q\n", tlsURL, pw, other.CAFile), stateProblem,
			[]string{"TLS: the broker's certificate", "is not signed by a CA the box trusts (cloud.ca_file)"}},
		{"name mismatch", fmt.Sprintf("[cloud]\nbroker_url = %q\npassword_file = %q\nca_file = %q\n", otherName, pw, otherCA), stateProblem,
			[]string{"TLS: the broker's certificate", `is for broker.example, not "localhost"`}},
		{"expired", fmt.Sprintf("[cloud]\nbroker_url = %q\npassword_file = %q\nca_file = %q\n", expired, pw, expiredCA), stateProblem,
			[]string{"TLS: the broker's certificate", "has expired or is not valid yet (valid "}},
		{"client certificate refused", fmt.Sprintf("[cloud]\nbroker_url = %q\nca_file = %q\ncert_file = %q\nkey_file = %q\n", strict, strictCA, cert, key), stateProblem,
			[]string{"TLS: the broker at", "refused the box's client certificate"}},
		{"DNS", fmt.Sprintf("[cloud]\nbroker_url = \"ssl://no-such-broker.invalid:8883\"\npassword_file = %q\n", pw), stateProblem,
			[]string{"DNS: ", `"no-such-broker.invalid"`}},
		{"wrong password", fmt.Sprintf("[cloud]\nbroker_url = %q\npassword_file = %q\n", b.URL(), wrongPW), stateProblem,
			[]string{`refused the box's login as user "box-a"`, "CONNACK"}},
		{"fine over TLS", fmt.Sprintf("[cloud]\nbroker_url = %q\npassword_file = %q\nca_file = %q\n", tlsURL, pw, b.Certs().CAFile), stateOK,
			[]string{"logged in at", "over TLS", "CONNACK 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r := runDoctor(t, "--config", writeProfileConfig(t, "sim", dir, tc.cloud, nil), "--socket", noSocket(t))
			f := r.of(t, "broker")
			require.Equal(t, tc.state, f.State, "%+v", f)
			for _, s := range tc.says {
				require.Contains(t, f.What, s)
			}
			t.Log(f.What)
		})
	}
}

// A nearly full disk, from statfs numbers put in its place.
func TestDoctorDisk(t *testing.T) {
	dir := t.TempDir()
	cfg := writeProfileConfig(t, "sim", dir, "", nil)
	_, r := runDoctor(t, "--config", cfg, "--socket", noSocket(t))
	requireOK(t, r, "disk", "on the file system of "+dir)

	real := statfs
	t.Cleanup(func() { statfs = real })
	statfs = func(path string, st *unix.Statfs_t) error {
		require.Equal(t, dir, path)
		*st = unix.Statfs_t{Bsize: 4096, Blocks: 1 << 20 /* 4 GiB */, Bavail: 5 << 10 /* 20 MiB */}
		return nil
	}
	_, r = runDoctor(t, "--config", cfg, "--socket", noSocket(t))
	requireProblem(t, r, "disk", "nearly full: 20.0 MiB free of 4.0 GiB (0.5 %")
}

// tlsServer serves TLS on loopback with a self-signed certificate for
// the DNS name name, valid until notAfter; with clientCAs it requires a
// client certificate from them. It returns an ssl:// URL naming localhost
// and the certificate's file (to trust it). Each connection is a
// handshake, then an MQTT CONNACK 0 to whatever was sent.
func tlsServer(t *testing.T, name string, notAfter time.Time, clientCAs *x509.CertPool) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	caFile := writeFile(t, "server.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	if clientCAs != nil {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Read(make([]byte, 512))
					_, _ = c.Write([]byte{0x20, 2, 0, 0})
				}
			}()
		}
	}()
	return fmt.Sprintf("ssl://localhost:%d", ln.Addr().(*net.TCPAddr).Port), caFile
}
