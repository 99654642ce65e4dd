// Package smtptest is a real SMTP server (go-smtp) on loopback that keeps
// every message it accepts, for tests of whatever sends mail through
// sync/notify: the bridge service, the end-to-end tests. It takes plain
// SMTP without AUTH (notify.TLSNone); sync/notify's own tests cover
// STARTTLS and AUTH against a server of their own.
//
// Start(t) serves until the test ends; Listen and Close run it outside a
// test, as the simulator's driver inbox, and Changed wakes a watcher at each
// accepted message.
package smtptest

import (
	"errors"
	"fmt"
	"io"
	"log"
	"mime/quotedprintable"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Bounds of the server: a bridge's notification is a few kilobytes, so a
// megabyte is far more than any honest message; the timeouts only make sure
// a stuck client cannot hold a connection (and a goroutine) for ever.
const (
	maxMessageBytes = 1 << 20
	readTimeout     = 10 * time.Second
	writeTimeout    = 10 * time.Second
)

// Server is the running server. Addr is its host:port.
type Server struct {
	Addr string

	// immutable after Listen
	srv    *smtp.Server
	ln     net.Listener
	served chan struct{} // closed when Serve has returned

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	got     []Mail
	changed chan struct{} // nil while nobody waits
}

// Mail is one accepted message.
type Mail struct {
	To      []string  // envelope recipients
	Raw     string    // as received
	Header  string    // the header block, LF line ends
	Subject string    // the Subject header as written (RFC 2047 left encoded)
	Body    string    // decoded from quoted-printable (soft line breaks joined)
	At      time.Time // when the server accepted it
}

// Text is the header and the decoded body, as a person reads the mail.
func (m Mail) Text() string { return m.Header + "\n\n" + m.Body }

// Listen serves on addr ("host:port"; "" = a free port on 127.0.0.1) until
// Close. The simulator runs it this way, outside any test, as the driver's
// mail inbox.
func Listen(addr string) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s := &Server{served: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	s.srv.Domain = "mail.test"
	s.srv.ReadTimeout, s.srv.WriteTimeout = readTimeout, writeTimeout
	s.srv.MaxMessageBytes = maxMessageBytes
	// go-smtp logs a connection's end to stderr by default; a sender
	// killed mid-session (the chaos run kills the bridge) resets its
	// connection, which is the sender's business, not this inbox's.
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtptest: listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln) // nil after Close; any other end also ends the server
	}()
	return s, nil
}

// Start serves on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Listen("")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Close stops the server: the listener and every open connection. It waits
// for the accept loop to end; calling it again does nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.srv.Close()
		// Close the listener here too: a Close right after Listen can come
		// before Serve has registered it with the server, and Serve then
		// sees the server closed at its first Accept.
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) && s.closeErr == nil {
			s.closeErr = fmt.Errorf("smtptest: close listener: %w", err)
		}
		<-s.served
	})
	return s.closeErr
}

// Changed returns a channel closed when the next message is accepted; call
// it again for the one after. A watcher (the simulator's inbox view) takes
// the channel, reads Mails, and waits: a message accepted in between closes
// the channel it already holds, so none is missed.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// Mails returns every message accepted so far, oldest first.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// To returns the messages sent to addr, oldest first.
func (s *Server) To(addr string) []Mail {
	var out []Mail
	for _, m := range s.Mails() {
		if slices.Contains(m.To, addr) {
			out = append(out, m)
		}
	}
	return out
}

type session struct {
	s  *Server
	to []string
}

func (x *session) Reset()                                    { x.to = nil }
func (x *session) Logout() error                             { return nil }
func (x *session) Mail(string, *smtp.MailOptions) error      { return nil }
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error { x.to = append(x.to, to); return nil }

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("smtptest: read message: %w", err)
	}
	head, body, _ := strings.Cut(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n\n")
	m := Mail{To: slices.Clone(x.to), Raw: string(raw), Header: head, Body: body, At: time.Now()}
	for _, line := range strings.Split(head, "\n") {
		if v, ok := strings.CutPrefix(line, "Subject: "); ok {
			m.Subject = v
		}
	}
	if dec, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body))); err == nil {
		m.Body = string(dec)
	}
	x.s.mu.Lock()
	x.s.got = append(x.s.got, m)
	if x.s.changed != nil {
		close(x.s.changed)
		x.s.changed = nil
	}
	x.s.mu.Unlock()
	return nil
}
