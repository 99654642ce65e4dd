package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// notifier adapts sync/notify's Dispatcher to bridge.Notifier: the bridge
// hands over flat strings under its own names ("from", "until", "link"), the
// templates want notify's Data keys.
type notifier struct {
	d *notify.Dispatcher
	// zone shows booking times in that zone; nil keeps the text the bridge
	// gave (the offset Fleetio sent, which is the account's).
	zone *time.Location
}

var _ bridge.Notifier = notifier{}

// bridgeTimeLayout is how sync/bridge writes times into notification data
// (fmtTime there): parsed back here only to show them in notify.time_zone.
const bridgeTimeLayout = "Mon 2 Jan 2006 15:04 (-07:00)"

// openEnded stands in for the end of a booking without one: the templates
// say "until {{when .end}}".
const openEnded = "further notice"

func (n notifier) Notify(ctx context.Context, to bridge.Recipient, kind string, data map[string]string) error {
	m := notify.Message{
		To:   notify.Recipient{Name: to.Name, Email: to.Email, Phone: to.Phone},
		Kind: notify.Kind(kind),
		Data: make(map[string]any, len(data)+2),
	}
	for k, v := range data {
		switch k {
		case "from":
			m.Data[notify.DataStart] = n.when(v)
		case "until":
			if v == "" {
				m.Data[notify.DataEnd] = openEnded
			} else {
				m.Data[notify.DataEnd] = n.when(v)
			}
		case "link":
			if v != "" {
				m.Data[notify.DataAccessLink] = v
			}
		case "assignment":
			// There is no admin web page yet: the admin link is the command
			// that makes the booking.
			if id, err := strconv.ParseInt(v, 10, 64); err == nil {
				m.Data[notify.DataAdminLink] = fmt.Sprintf("smartbox-bridge fleetio book %d", id)
			}
			m.Data[k] = v
		default:
			m.Data[k] = v
		}
	}
	// Gaps between what sync/bridge sends and what the default templates
	// require (reported to its owner): without these a driver's message
	// fails to render and the delivery is retried for a day.
	if _, ok := m.Data[notify.DataVehicle]; !ok {
		// Driver notifications carry no vehicle name; keys are named for
		// their vehicle.
		m.Data[notify.DataVehicle] = data["key"]
	}
	if _, ok := m.Data[notify.DataPIN]; !ok && m.Kind == notify.KindBookingUpdated {
		// The bridge forgets a PIN once it is sent and a new window keeps it.
		m.Data[notify.DataPIN] = "unchanged"
	}
	if _, ok := m.Data[notify.DataInstructions]; !ok && (m.Kind == notify.KindBookingCreated || m.Kind == notify.KindBookingUpdated) {
		m.Data[notify.DataInstructions] = "Type the PIN on the keypad, then #."
	}
	if _, ok := m.Data[notify.DataEnd]; !ok {
		m.Data[notify.DataEnd] = openEnded
	}
	// The templates read .time_zone; "" with the bridge's text times shows
	// them as given.
	m.Data[notify.DataTimeZone] = ""
	if n.zone != nil {
		m.Data[notify.DataTimeZone] = n.zone.String()
	}
	return n.d.Notify(ctx, m)
}

// when turns the bridge's text of a time into a time.Time when a zone is
// configured (notify's "when" then shows it there); otherwise, and for text
// it does not know, the text passes through as it is.
func (n notifier) when(v string) any {
	if n.zone == nil {
		return v
	}
	for _, layout := range []string{bridgeTimeLayout, time.RFC3339Nano} {
		if t, err := time.Parse(layout, v); err == nil {
			return t
		}
	}
	return v
}

// newNotifier builds the Dispatcher from [notify]: templates (checked now,
// so a broken one stops the start rather than a driver's PIN), the SMTP
// mailer and the SMS client, each only when configured. Secrets come from
// files only.
func newNotifier(c NotifyConfig, log *slog.Logger) (bridge.Notifier, error) {
	tmpl, err := notify.LoadTemplates(c.TemplatesDir)
	if err != nil {
		return nil, fmt.Errorf("notify.templates_dir: %w", err)
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
				return nil, err
			}
		}
		if d.Mail, err = notify.NewMailer(ec); err != nil {
			return nil, fmt.Errorf("notify.email: %w", err)
		}
	}
	if s := c.SMS; s != nil {
		sc := notify.SMSConfig{BaseURL: s.BaseURL, AccountSID: s.AccountSID, From: s.From, MessagingServiceSID: s.MessagingServiceSID}
		if sc.AuthToken, err = readSecretFile("notify.sms.auth_token_file", s.AuthTokenFile); err != nil {
			return nil, err
		}
		if d.SMS, err = notify.NewSMSClient(sc); err != nil {
			return nil, fmt.Errorf("notify.sms: %w", err)
		}
	}
	n := notifier{d: d}
	if c.TimeZone != "" {
		if n.zone, err = time.LoadLocation(c.TimeZone); err != nil {
			return nil, fmt.Errorf("notify.time_zone: %w", err)
		}
	}
	if d.Mail == nil && d.SMS == nil {
		// No channel: the bridge then tells nobody, rather than failing
		// every booking's notification step and retrying it for a day.
		log.Warn("no [notify.email] or [notify.sms]: drivers get their PIN only in Fleetio's custom fields")
		return nil, nil
	}
	return n, nil
}
