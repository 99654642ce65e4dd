package notify_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// mailServer is a real SMTP server (go-smtp) on loopback whose backend
// records every accepted message.
type mailServer struct {
	Addr string

	user, pass string // AUTH PLAIN credentials; "" means no AUTH offered

	mu   sync.Mutex
	got  []received
	seen chan struct{}
}

type received struct {
	From     string
	To       []string
	Data     []byte
	TLS      bool
	AuthUser string
}

type serverOpts struct {
	tls        *tls.Config // offer STARTTLS
	user, pass string
}

func startMailServer(t *testing.T, o serverOpts) *mailServer {
	t.Helper()
	ms := &mailServer{user: o.user, pass: o.pass, seen: make(chan struct{}, 100)}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		if ms.user != "" {
			return &authSession{session{ms: ms, conn: c}}, nil
		}
		return &session{ms: ms, conn: c}, nil
	}))
	s.Domain = "mail.test"
	s.TLSConfig = o.tls
	// Loopback tests of AUTH without TLS: the client's own guard
	// (net/smtp refuses PLAIN in clear except to localhost) is what is
	// tested there.
	s.AllowInsecureAuth = true
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.MaxMessageBytes = 1 << 20
	s.ErrorLog = testLogger{t}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ms.Addr = l.Addr().String()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return ms
}

func (ms *mailServer) messages() []received {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]received(nil), ms.got...)
}

type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, v ...any) { l.t.Logf("smtp server: "+format, v...) }
func (l testLogger) Println(v ...any)               { l.t.Log(append([]any{"smtp server:"}, v...)...) }

type session struct {
	ms       *mailServer
	conn     *smtp.Conn
	from     string
	to       []string
	authUser string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.ms.user != "" && s.authUser == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.ms.mu.Lock()
	s.ms.got = append(s.ms.got, received{From: s.from, To: s.to, Data: b, TLS: isTLS, AuthUser: s.authUser})
	s.ms.mu.Unlock()
	s.ms.seen <- struct{}{}
	return nil
}

type authSession struct{ session }

func (s *authSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *authSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.ms.user || pass != s.ms.pass {
			return errors.New("invalid username or password")
		}
		s.authUser = user
		return nil
	}), nil
}
