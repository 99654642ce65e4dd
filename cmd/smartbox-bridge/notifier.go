package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/smartbox-oss/smartbox/sync/notify"
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
