package brokertest

import (
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/smartbox-oss/smartbox/sync/broker"
)

// MochiBroker is the embedded broker under test.
type MochiBroker struct {
	cfg   broker.Config
	certs *Certs

	mu sync.Mutex
	b  *broker.Broker
}

var _ Broker = (*MochiBroker)(nil)

func startMochi(t testing.TB, opts Options) *MochiBroker {
	t.Helper()
	w := &testWriter{t: t}
	users := make([]broker.User, 0, len(opts.Users))
	for name, pw := range opts.Users {
		// The minimum bcrypt cost: a test connects often and runs under
		// -race; production hashes come from broker.HashPassword.
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("brokertest: hashing password of %s: %v", name, err)
		}
		users = append(users, broker.User{Name: name, PasswordHash: string(h)})
	}
	m := &MochiBroker{
		cfg: broker.Config{
			Listen:      "127.0.0.1:0",
			CloudUser:   opts.CloudUser,
			StaticUsers: users,
			DataDir:     t.TempDir(),
			Logger:      slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})),
		},
		certs: opts.Certs,
	}
	if opts.TLS {
		m.cfg.ListenTLS = "127.0.0.1:0"
		m.cfg.TLS = opts.Certs.ServerTLS()
	}
	m.start(t)
	// The first start bound free ports; keep them for restarts.
	m.cfg.Listen = m.b.Addr()
	if opts.TLS {
		m.cfg.ListenTLS = m.b.TLSAddr()
	}
	t.Cleanup(func() { m.Stop(); w.close() })
	return m
}

func (m *MochiBroker) start(t testing.TB) {
	t.Helper()
	b, err := broker.Start(m.cfg)
	if err != nil {
		t.Fatalf("brokertest: starting mochi: %v", err)
	}
	m.mu.Lock()
	m.b = b
	m.mu.Unlock()
}

// Kind is Mochi.
func (m *MochiBroker) Kind() Kind { return Mochi }

// URL is the plain listener.
func (m *MochiBroker) URL() string { return "tcp://" + m.cfg.Listen }

// TLSURL is the TLS listener ("" without TLS).
func (m *MochiBroker) TLSURL() string {
	if m.cfg.ListenTLS == "" {
		return ""
	}
	return "tls://" + m.cfg.ListenTLS
}

// CertURL is TLSURL: mochi takes client certificates on its TLS listener.
func (m *MochiBroker) CertURL() string { return m.TLSURL() }

// Certs are the certificates in use.
func (m *MochiBroker) Certs() *Certs { return m.certs }

// Embedded is the running broker (nil while stopped), for Denied and the
// expiry setting.
func (m *MochiBroker) Embedded() *broker.Broker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.b
}

// StoreFile is the bbolt file in the broker's data directory.
func (m *MochiBroker) StoreFile() string { return filepath.Join(m.cfg.DataDir, broker.StoreFile) }

// Restart closes the broker, keeping its store, and starts it again.
func (m *MochiBroker) Restart(t testing.TB) {
	t.Helper()
	m.Stop()
	m.start(t)
}

// Stop closes the broker.
func (m *MochiBroker) Stop() {
	m.mu.Lock()
	b := m.b
	m.b = nil
	m.mu.Unlock()
	if b != nil {
		_ = b.Close()
	}
}

// testWriter sends log lines to t.Log, so a failing test shows the broker's
// security events next to its own messages.
// After the test it drops them: t.Log then would panic.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Logf("%s", p)
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
