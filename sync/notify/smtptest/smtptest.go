// Package smtptest is a real SMTP server (go-smtp) on loopback that keeps
// every message it accepts, for tests of whatever sends mail through
// sync/notify: the bridge service, the end-to-end tests. It takes plain
// SMTP without AUTH (notify.TLSNone); sync/notify's own tests cover
// STARTTLS and AUTH against a server of their own.
package smtptest

import (
	"io"
	"mime/quotedprintable"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Server is the running server. Addr is its host:port.
type Server struct {
	Addr string

	mu  sync.Mutex
	got []Mail
}

// Mail is one accepted message.
type Mail struct {
	To      []string // envelope recipients
	Raw     string   // as received
	Header  string   // the header block, LF line ends
	Subject string   // the Subject header as written (RFC 2047 left encoded)
	Body    string   // decoded from quoted-printable (soft line breaks joined)
}

// Text is the header and the decoded body, as a person reads the mail.
func (m Mail) Text() string { return m.Header + "\n\n" + m.Body }

// Start serves on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "mail.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
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
		return err
	}
	head, body, _ := strings.Cut(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n\n")
	m := Mail{To: slices.Clone(x.to), Raw: string(raw), Header: head, Body: body}
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
	x.s.mu.Unlock()
	return nil
}
