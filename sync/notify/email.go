package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"
)

// TLSMode says what the mailer does about STARTTLS.
type TLSMode string

// The TLS modes.
const (
	// TLSRequire refuses to send unless the server offers STARTTLS and the
	// handshake verifies: the default, because the mail carries a PIN.
	TLSRequire TLSMode = "require"
	// TLSOpportunistic uses STARTTLS when offered, plain text otherwise.
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSNone never starts TLS: for a relay on loopback (and tests).
	TLSNone TLSMode = "none"
)

// EmailConfig configures an SMTP submission client.
type EmailConfig struct {
	Addr     string // "host:port" of the submission server (587 usually)
	From     string // sender address, "SmartBox <box@example.com>" or a bare address
	Username string // AUTH PLAIN when set
	Password string
	TLS      TLSMode     // default TLSRequire
	TLSConf  *tls.Config // optional: roots, ServerName (defaults to Addr's host)
	// HelloName is the EHLO name; default "localhost".
	HelloName string
	// Timeout bounds one whole delivery (dial to QUIT) when the context has
	// no earlier deadline; default 30 s, so a stalled server cannot hold a
	// bridge worker for the RFC 5321 five minutes per command.
	Timeout time.Duration
}

// Mailer sends plain-text mail through one SMTP server. Safe for concurrent
// use: each Send uses its own connection.
type Mailer struct {
	cfg  EmailConfig
	from *mail.Address
	host string
}

// NewMailer checks cfg and returns a Mailer.
func NewMailer(cfg EmailConfig) (*Mailer, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("notify: smtp address %q: want host:port", cfg.Addr)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("notify: smtp from %q: %w", cfg.From, err)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSRequire
	case TLSRequire, TLSOpportunistic, TLSNone:
	default:
		return nil, fmt.Errorf("notify: smtp tls mode %q: want require, opportunistic or none", cfg.TLS)
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errors.New("notify: smtp password set without a username")
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Mailer{cfg: cfg, from: from, host: host}, nil
}

// Send delivers one message to one recipient. The error names the SMTP step
// that failed and the server's reply; it never contains the body.
func (m *Mailer) Send(ctx context.Context, to Recipient, subject, body string) error {
	rcpt, err := recipientAddress(to)
	if err != nil {
		return err
	}
	msg, err := m.compose(rcpt, subject, body, time.Now())
	if err != nil {
		return err
	}
	if err := m.deliver(ctx, rcpt.Address, msg); err != nil {
		if cerr := ctxErr(ctx); cerr != nil {
			return fmt.Errorf("notify: smtp %s: %w (%v)", m.cfg.Addr, cerr, err)
		}
		return fmt.Errorf("notify: smtp %s: %w", m.cfg.Addr, err)
	}
	return nil
}

func (m *Mailer) deliver(ctx context.Context, rcpt string, msg []byte) error {
	deadline := time.Now().Add(m.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	// net/smtp takes no context: a deadline on the connection bounds every
	// read and write, and cancellation pulls it into the past.
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	stop := context.AfterFunc(dctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(m.cfg.HelloName); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	offered, _ := c.Extension("STARTTLS")
	switch {
	case m.cfg.TLS == TLSNone:
	case offered:
		conf := &tls.Config{MinVersion: tls.VersionTLS12}
		if m.cfg.TLSConf != nil {
			conf = m.cfg.TLSConf.Clone()
		}
		if conf.ServerName == "" {
			conf.ServerName = m.host
		}
		if err := c.StartTLS(conf); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	case m.cfg.TLS == TLSRequire:
		return errors.New("server does not offer STARTTLS and tls mode is require")
	}
	if m.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("AUTH: credentials set but the server offers no AUTH")
		}
		// PlainAuth itself refuses to send the password in clear to anything
		// but localhost: a second guard beside the TLS mode.
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.host)); err != nil {
			return fmt.Errorf("AUTH PLAIN as %q: %w", m.cfg.Username, err)
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return fmt.Errorf("RCPT TO %s: %w", maskEmail(rcpt), err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA end: %w", err)
	}
	// The server took the message (250 after DATA); a failed QUIT is not a
	// failed delivery, and resending would duplicate the mail.
	_ = c.Quit()
	return nil
}

func recipientAddress(to Recipient) (*mail.Address, error) {
	if strings.ContainsAny(to.Name, "\r\n") {
		return nil, errors.New("notify: recipient name contains a line break")
	}
	a, err := mail.ParseAddress(to.Email)
	if err != nil {
		return nil, fmt.Errorf("notify: recipient %q email %s: %w", to.Name, maskEmail(to.Email), err)
	}
	return &mail.Address{Name: to.Name, Address: a.Address}, nil
}

// compose builds an RFC 5322 message: UTF-8 text, quoted-printable so long
// lines and accents survive any relay, RFC 2047 encoded words in headers.
func (m *Mailer) compose(to *mail.Address, subject, body string, now time.Time) ([]byte, error) {
	if strings.ContainsAny(subject, "\r\n") {
		return nil, errors.New("notify: subject contains a line break")
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("notify: message id: %w", err)
	}
	domain := m.from.Address[strings.LastIndexByte(m.from.Address, '@')+1:]
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", m.from.String())
	hdr("To", to.String())
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=UTF-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("Auto-Submitted", "auto-generated") // RFC 3834: no vacation replies
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body = strings.ReplaceAll(body, "\r\n", "\n")
	if _, err := qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n"))); err != nil {
		return nil, fmt.Errorf("notify: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("notify: encode body: %w", err)
	}
	return b.Bytes(), nil
}

// ctxErr is ctx.Err, or DeadlineExceeded when the context's deadline has
// passed but its timer has not fired yet: the connection deadline is the
// same instant and often wins the race.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
