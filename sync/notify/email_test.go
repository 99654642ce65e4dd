package notify_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

func TestMailerHeadersAndBody(t *testing.T) {
	srv := startMailServer(t, serverOpts{})
	m, err := notify.NewMailer(notify.EmailConfig{Addr: srv.Addr, From: "SmartBox Depot <box@depot.example>", TLS: notify.TLSNone})
	require.NoError(t, err)

	subject := "Clé prête: Van 12"
	body := "Hello Zoë,\n\nYour PIN: 482913\n" + strings.Repeat("a long line ", 20) + "\n"
	to := notify.Recipient{Name: "Zoë Driver", Email: "zoe@example.com"}
	before := time.Now().Add(-time.Second)
	require.NoError(t, m.Send(context.Background(), to, subject, body))

	got := srv.messages()
	require.Len(t, got, 1)
	require.Equal(t, "box@depot.example", got[0].From)
	require.Equal(t, []string{"zoe@example.com"}, got[0].To)
	require.False(t, got[0].TLS)

	msg, err := mail.ReadMessage(strings.NewReader(string(got[0].Data)))
	require.NoError(t, err)
	h := msg.Header
	from, err := mail.ParseAddress(h.Get("From"))
	require.NoError(t, err)
	require.Equal(t, "SmartBox Depot", from.Name)
	rcpt, err := mail.ParseAddress(h.Get("To"))
	require.NoError(t, err)
	require.Equal(t, &mail.Address{Name: "Zoë Driver", Address: "zoe@example.com"}, rcpt)
	dec, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, subject, dec)
	date, err := h.Date()
	require.NoError(t, err)
	require.True(t, date.After(before) && date.Before(time.Now().Add(time.Second)), "date %v", date)
	require.Regexp(t, `^<[0-9a-f]{32}@depot\.example>$`, h.Get("Message-ID"))
	require.Equal(t, "1.0", h.Get("MIME-Version"))
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "text/plain", mt)
	require.Equal(t, "UTF-8", params["charset"])
	require.Equal(t, "quoted-printable", h.Get("Content-Transfer-Encoding"))
	raw, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	require.NoError(t, err)
	require.Equal(t, strings.ReplaceAll(body, "\n", "\r\n"), string(raw))
	for _, line := range strings.Split(string(got[0].Data), "\r\n") {
		require.LessOrEqual(t, len(line), 78, "line too long for a relay: %q", line)
	}
}

func TestMailerTLSModes(t *testing.T) {
	certs := brokertest.TestCerts(t)
	clientTLS := &tls.Config{RootCAs: certs.Pool, MinVersion: tls.VersionTLS12}
	tests := []struct {
		name     string
		offerTLS bool
		mode     notify.TLSMode
		user     string
		pass     string // client's password; the server wants "s3cret"
		wantTLS  bool
		wantErr  string
	}{
		{name: "require with STARTTLS and AUTH", offerTLS: true, mode: notify.TLSRequire, user: "mailer", pass: "s3cret", wantTLS: true},
		{name: "default mode is require", offerTLS: true, mode: "", wantTLS: true},
		{name: "opportunistic takes STARTTLS", offerTLS: true, mode: notify.TLSOpportunistic, wantTLS: true},
		{name: "opportunistic without offer sends plain", mode: notify.TLSOpportunistic},
		{name: "none ignores the offer", offerTLS: true, mode: notify.TLSNone},
		{name: "require without offer fails", mode: notify.TLSRequire, wantErr: "does not offer STARTTLS"},
		{name: "AUTH on loopback without TLS", mode: notify.TLSNone, user: "mailer", pass: "s3cret"},
		{name: "wrong password surfaced", offerTLS: true, mode: notify.TLSRequire, user: "mailer", pass: "nope", wantErr: "AUTH PLAIN as \"mailer\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := serverOpts{}
			if tt.offerTLS {
				o.tls = certs.ServerTLS()
			}
			if tt.user != "" {
				o.user, o.pass = tt.user, "s3cret"
			}
			srv := startMailServer(t, o)
			m, err := notify.NewMailer(notify.EmailConfig{
				Addr: srv.Addr, From: "box@depot.example", TLS: tt.mode, TLSConf: clientTLS,
				Username: tt.user, Password: tt.pass, Timeout: 5 * time.Second,
			})
			require.NoError(t, err)
			err = m.Send(context.Background(), notify.Recipient{Name: "A", Email: "a@example.com"}, "s", "PIN 123456\n")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "123456")
				if tt.pass != "" {
					require.NotContains(t, err.Error(), tt.pass, "an error must not carry the password")
				}
				require.Empty(t, srv.messages())
				return
			}
			require.NoError(t, err)
			got := srv.messages()
			require.Len(t, got, 1)
			require.Equal(t, tt.wantTLS, got[0].TLS)
			require.Equal(t, tt.user, got[0].AuthUser)
		})
	}
}

func TestMailerRefusesUntrustedCertificate(t *testing.T) {
	certs := brokertest.TestCerts(t)
	srv := startMailServer(t, serverOpts{tls: certs.ServerTLS()})
	m, err := notify.NewMailer(notify.EmailConfig{Addr: srv.Addr, From: "box@depot.example", TLS: notify.TLSOpportunistic})
	require.NoError(t, err)
	err = m.Send(context.Background(), notify.Recipient{Email: "a@example.com"}, "s", "b")
	require.ErrorContains(t, err, "STARTTLS")
	require.Empty(t, srv.messages())
}

// A server that accepts and never greets must not hold the caller past its
// context.
func TestMailerHonoursContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	m, err := notify.NewMailer(notify.EmailConfig{Addr: l.Addr().String(), From: "box@depot.example", TLS: notify.TLSNone})
	require.NoError(t, err)

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := m.Send(ctx, notify.Recipient{Email: "a@example.com"}, "s", "b")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		err := m.Send(ctx, notify.Recipient{Email: "a@example.com"}, "s", "b")
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("config timeout", func(t *testing.T) {
		m, err := notify.NewMailer(notify.EmailConfig{Addr: l.Addr().String(), From: "box@depot.example", TLS: notify.TLSNone, Timeout: 200 * time.Millisecond})
		require.NoError(t, err)
		err = m.Send(context.Background(), notify.Recipient{Email: "a@example.com"}, "s", "b")
		require.Error(t, err)
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded), "want a timeout, got %v", err)
	})
}

func TestMailerBadInput(t *testing.T) {
	cfgs := []struct {
		name string
		cfg  notify.EmailConfig
		want string
	}{
		{"no port", notify.EmailConfig{Addr: "mail.example", From: "a@b.c"}, "want host:port"},
		{"bad from", notify.EmailConfig{Addr: "mail.example:587", From: "not an address"}, "smtp from"},
		{"bad mode", notify.EmailConfig{Addr: "mail.example:587", From: "a@b.c", TLS: "sometimes"}, "tls mode"},
		{"password without user", notify.EmailConfig{Addr: "mail.example:587", From: "a@b.c", Password: "x"}, "without a username"},
	}
	for _, tt := range cfgs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := notify.NewMailer(tt.cfg)
			require.ErrorContains(t, err, tt.want)
		})
	}

	srv := startMailServer(t, serverOpts{})
	m, err := notify.NewMailer(notify.EmailConfig{Addr: srv.Addr, From: "box@depot.example", TLS: notify.TLSNone})
	require.NoError(t, err)
	sends := []struct {
		name    string
		to      notify.Recipient
		subject string
		want    string
	}{
		{"bad address", notify.Recipient{Email: "nobody"}, "s", "email"},
		{"header injection in name", notify.Recipient{Name: "A\r\nBcc: x@evil", Email: "a@example.com"}, "s", "line break"},
		{"header injection in subject", notify.Recipient{Email: "a@example.com"}, "s\r\nBcc: x@evil", "line break"},
	}
	for _, tt := range sends {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorContains(t, m.Send(context.Background(), tt.to, tt.subject, "b"), tt.want)
		})
	}
	require.Empty(t, srv.messages())
}
