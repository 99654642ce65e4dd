package brokertest

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// MosquittoACL is the ACL of sync/README.md ("Brokers and access control"),
// the block after its "mosquitto-acl" marker, word for word (a test
// compares them). Start's mosquitto uses it as its acl_file.
const MosquittoACL = `# The cloud reads what every box sends and writes what every box reads.
user cloud
topic read smartbox/v1/+/status
topic read smartbox/v1/+/sync/request
topic read smartbox/v1/+/events
topic read smartbox/v1/+/command/result
topic write smartbox/v1/+/records
topic write smartbox/v1/+/events/ack
topic write smartbox/v1/+/command

# Every other user is a box, and its user name is its box id.
pattern write smartbox/v1/%u/status
pattern write smartbox/v1/%u/sync/request
pattern write smartbox/v1/%u/events
pattern write smartbox/v1/%u/command/result
pattern read smartbox/v1/%u/records
pattern read smartbox/v1/%u/events/ack
pattern read smartbox/v1/%u/command
`

// startTimeout bounds how long mosquitto may take to accept connections;
// it starts in milliseconds, but CI machines are busy.
const startTimeout = 15 * time.Second

// MosquittoBroker is a mosquitto child process.
type MosquittoBroker struct {
	bin     string
	dir     string
	conf    string
	certs   *Certs
	port    int
	tlsPort int
	crtPort int

	mu   sync.Mutex
	cmd  *exec.Cmd
	dead chan struct{} // closed when cmd exits
	log  *childLog
}

var _ Broker = (*MosquittoBroker)(nil)

func startMosquitto(t testing.TB, opts Options) *MosquittoBroker {
	t.Helper()
	bin, err := MosquittoPath()
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	if opts.CloudUser != CloudUser {
		t.Fatalf("brokertest: mosquitto's ACL names the cloud user %q, not %q", CloudUser, opts.CloudUser)
	}
	m := &MosquittoBroker{bin: bin, dir: t.TempDir(), certs: opts.Certs}
	m.log = newChildLog(t, m.dir)
	if err := os.Mkdir(filepath.Join(m.dir, "data"), 0o755); err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	writeFile(t, filepath.Join(m.dir, "acl"), MosquittoACL)
	writeFile(t, filepath.Join(m.dir, "passwd"), mosquittoPasswords(t, opts.Users))
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.log.String())
		}
	})
	// A port found free may be taken before mosquitto binds it; try afresh.
	for attempt := 1; ; attempt++ {
		m.port, m.tlsPort, m.crtPort = FreePort(t), 0, 0
		if opts.TLS {
			m.tlsPort, m.crtPort = FreePort(t), FreePort(t)
		}
		m.conf = filepath.Join(m.dir, "mosquitto.conf")
		writeFile(t, m.conf, m.config())
		err := m.start()
		if err == nil {
			return m
		}
		if attempt == 3 {
			t.Fatalf("brokertest: starting mosquitto: %v\n%s", err, m.log.String())
		}
	}
}

// The queue bounds sync/README.md advises for mosquitto: those of the
// embedded broker's cloud session (sync/broker, queue.go), since mosquitto
// has one value for every client.
const (
	mosquittoMaxQueuedMessages = 4096
	mosquittoMaxQueuedBytes    = 64 << 20
)

// config writes the mosquitto.conf. mosquitto started as root drops to the
// user mosquitto unless told otherwise, and then cannot read files in the
// test's 0700 temp dir: "user root" keeps it root (as a non-root user it
// changes nothing). per_listener_settings false makes the password file and
// ACL apply to every listener.
func (m *MosquittoBroker) config() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if os.Geteuid() == 0 {
		w("user root")
	}
	w("per_listener_settings false")
	w("allow_anonymous false")
	w("password_file %s", filepath.Join(m.dir, "passwd"))
	w("acl_file %s", filepath.Join(m.dir, "acl"))
	w("persistence true")
	w("persistence_location %s/", filepath.Join(m.dir, "data"))
	w("autosave_interval 1")
	// As sync/README.md advises: the largest message of the protocol.
	w("message_size_limit %d", wire.MaxMessageSize)
	// As sync/README.md advises: a byte bound on each client's queue (the
	// default has none), and its message count.
	w("max_queued_messages %d", mosquittoMaxQueuedMessages)
	w("max_queued_bytes %d", mosquittoMaxQueuedBytes)
	w("log_dest stderr")
	w("log_type error")
	w("log_type warning")
	w("log_type notice")
	w("log_type information")
	w("listener %d 127.0.0.1", m.port)
	if m.tlsPort != 0 {
		w("listener %d 127.0.0.1", m.tlsPort)
		w("cafile %s", m.certs.CAFile)
		w("certfile %s", m.certs.ServerCertFile)
		w("keyfile %s", m.certs.ServerKeyFile)
		w("require_certificate false")
		// Client certificates authenticate here: the CN becomes the user
		// name, so the ACL's %%u pattern applies to it.
		w("listener %d 127.0.0.1", m.crtPort)
		w("cafile %s", m.certs.CAFile)
		w("certfile %s", m.certs.ServerCertFile)
		w("keyfile %s", m.certs.ServerKeyFile)
		w("require_certificate true")
		w("use_identity_as_username true")
	}
	return b.String()
}

func (m *MosquittoBroker) start() error {
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout = m.log.f
	cmd.Stderr = m.log.f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", m.bin, err)
	}
	dead := make(chan struct{})
	go func() { _ = cmd.Wait(); close(dead) }()
	m.mu.Lock()
	m.cmd, m.dead = cmd, dead
	m.mu.Unlock()
	for _, p := range []int{m.port, m.tlsPort, m.crtPort} {
		if p == 0 {
			continue
		}
		if err := waitListening(hostPort(p), dead, startTimeout); err != nil {
			m.Stop()
			return err
		}
	}
	return nil
}

// Kind is Mosquitto.
func (m *MosquittoBroker) Kind() Kind { return Mosquitto }

// URL is the plain listener.
func (m *MosquittoBroker) URL() string { return "tcp://" + hostPort(m.port) }

// TLSURL is the TLS listener with passwords ("" without TLS).
func (m *MosquittoBroker) TLSURL() string {
	if m.tlsPort == 0 {
		return ""
	}
	return "tls://" + hostPort(m.tlsPort)
}

// CertURL is the listener where the client certificate's CN is the user name.
func (m *MosquittoBroker) CertURL() string {
	if m.crtPort == 0 {
		return ""
	}
	return "tls://" + hostPort(m.crtPort)
}

// Certs are the certificates in use.
func (m *MosquittoBroker) Certs() *Certs { return m.certs }

// StoreFile is mosquitto's persistence file.
func (m *MosquittoBroker) StoreFile() string { return filepath.Join(m.dir, "data", "mosquitto.db") }

// Log is what mosquitto wrote so far.
func (m *MosquittoBroker) Log() string { return m.log.String() }

// Restart stops mosquitto (it saves its persistence file on SIGTERM) and
// starts it again on the same ports and data.
func (m *MosquittoBroker) Restart(t testing.TB) {
	t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		t.Fatalf("brokertest: restarting mosquitto: %v\n%s", err, m.log.String())
	}
}

// Stop sends SIGTERM and waits for mosquitto to exit (SIGKILL after 10 s).
func (m *MosquittoBroker) Stop() {
	m.mu.Lock()
	cmd, dead := m.cmd, m.dead
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-dead:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-dead
	}
}

// mosquittoPasswords is a password_file in mosquitto 2's "$7$" format:
// PBKDF2-SHA512, 101 iterations (mosquitto_passwd's default), 12-byte salt,
// 64-byte hash, both base64 — what `mosquitto_passwd -b` writes, without
// running it once per user.
func mosquittoPasswords(t testing.TB, users map[string]string) string {
	t.Helper()
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		if strings.ContainsAny(n, ":\n") {
			t.Fatalf("brokertest: user name %q cannot go in a mosquitto password file", n)
		}
		salt := make([]byte, 12)
		if _, err := rand.Read(salt); err != nil {
			t.Fatalf("brokertest: salt: %v", err)
		}
		const iter = 101
		h, err := pbkdf2.Key(sha512.New, users[n], salt, iter, sha512.Size)
		if err != nil {
			t.Fatalf("brokertest: hashing password of %s: %v", n, err)
		}
		fmt.Fprintf(&b, "%s:$7$%d$%s$%s\n", n, iter,
			base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(h))
	}
	return b.String()
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("brokertest: writing %s: %v", path, err)
	}
}

// childLog is a child's output in a file: the child writes to it directly
// (no copying goroutine, nothing to lock), restarts append to it, and String
// reads what is there so far.
type childLog struct{ f *os.File }

func newChildLog(t testing.TB, dir string) *childLog {
	f, err := os.OpenFile(filepath.Join(dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("brokertest: mosquitto log: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return &childLog{f: f}
}

func (l *childLog) String() string {
	b, err := os.ReadFile(l.f.Name())
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", l.f.Name(), err)
	}
	return string(b)
}
