package main

// The files and services the config names, read and made into the values
// sync/bridge takes: secrets, certificates, the notifier.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/secretfile"
)

// newNotifier builds the Dispatcher from [notify]: templates (checked now,
// so a broken one stops the start rather than a driver's PIN), the SMTP
// mailer and the SMS client, each only when configured, and the zone that
// messages show times in. Secrets come from files only.
func newNotifier(c NotifyConfig, log *slog.Logger) (_ notify.Notifier, zone *time.Location, err error) {
	tmpl, err := notify.LoadTemplates(c.TemplatesDir)
	if err != nil {
		return nil, nil, fmt.Errorf("notify.templates_dir: %w", err)
	}
	d := &notify.Dispatcher{Templates: tmpl, Log: log.With("component", "notify")}
	if e := c.Email; e != nil {
		ec := notify.EmailConfig{
			Addr:     fmt.Sprintf("%s:%d", e.Host, e.Port),
			From:     e.From,
			Username: e.Username,
			TLS:      notify.TLSMode(e.StartTLS),
		}
		if e.PasswordFile != "" {
			if ec.Password, err = readSecretFile("notify.email.password_file", e.PasswordFile); err != nil {
				return nil, nil, err
			}
		}
		if d.Mail, err = notify.NewMailer(ec); err != nil {
			return nil, nil, fmt.Errorf("notify.email: %w", err)
		}
	}
	if s := c.SMS; s != nil {
		sc := notify.SMSConfig{BaseURL: s.BaseURL, AccountSID: s.AccountSID, From: s.From, MessagingServiceSID: s.MessagingServiceSID}
		if sc.AuthToken, err = readSecretFile("notify.sms.auth_token_file", s.AuthTokenFile); err != nil {
			return nil, nil, err
		}
		if d.SMS, err = notify.NewSMSClient(sc); err != nil {
			return nil, nil, fmt.Errorf("notify.sms: %w", err)
		}
	}
	if c.TimeZone != "" {
		if zone, err = time.LoadLocation(c.TimeZone); err != nil {
			return nil, nil, fmt.Errorf("notify.time_zone: %w", err)
		}
	}
	if d.Mail == nil && d.SMS == nil {
		// No channel: the bridge then tells nobody, rather than failing
		// every booking's notification step and retrying it for a day.
		log.Warn("no [notify.email] or [notify.sms]: drivers get their PIN only in Fleetio's custom fields")
		return nil, nil, nil
	}
	return d, zone, nil
}

// embeddedTLS is the embedded TLS listener's config from the files named:
// without cert_file the bridge's CA issues the server certificate, and the
// bridge adds its CA to the client CAs either way (sync/bridge).
func embeddedTLS(b *BrokerConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if b.ClientCAFile != "" {
		pool, err := loadPool("broker.client_ca_file", b.ClientCAFile)
		if err != nil {
			return nil, err
		}
		// IfGiven: boxes with a certificate and boxes with a password
		// share the listener; the auth hook then requires one or the other.
		tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

func externalTLS(b *BrokerConfig) (*tls.Config, error) {
	if b.CAFile == "" && b.ClientCertFile == "" {
		return nil, nil // system roots for ssl://, none for tcp://
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.CAFile != "" {
		pool, err := loadPool("broker.ca_file", b.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if b.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.ClientCertFile, b.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker.client_cert_file/client_key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func loadPool(field, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", field, path)
	}
	return pool, nil
}

// readCodeKey reads the 32-byte code key written as 64 hex digits, from a
// file only its owner may read (it decrypts every box's codes).
func readCodeKey(path string) ([]byte, error) {
	b, err := secretfile.Read(path, secretfile.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("cloud.code_key_file: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("cloud.code_key_file %s: want 64 hex digits (32 bytes)", path)
	}
	return k, nil
}

// readSecretFile reads a password file: its first line, without the line
// end. The file must not be readable by group or others (secretfile: the
// check smartboxd makes too). An empty password is an error, not an
// account without one.
func readSecretFile(what, path string) (string, error) {
	b, err := secretfile.Read(path, secretfile.MaxSize)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s, _, _ := strings.Cut(string(b), "\n")
	s = strings.TrimRight(s, "\r")
	if s == "" {
		return "", fmt.Errorf("%s %s: empty", what, path)
	}
	return s, nil
}
