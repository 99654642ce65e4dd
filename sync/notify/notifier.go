package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Dispatcher is the Notifier the bridge uses: it renders a message with the
// deployer's templates and sends it by the recipient's contact method.
// Either sender may be nil when the deployment has no such channel; a
// message for it then fails with a clear error.
type Dispatcher struct {
	Templates *Templates
	Mail      *Mailer
	SMS       *SMSClient
	Log       *slog.Logger // default slog.Default()
}

var _ Notifier = (*Dispatcher)(nil)

// ErrNoChannel is returned for a message whose method has no sender configured.
var ErrNoChannel = errors.New("notify: no sender configured for this method")

// Notify renders and sends m. Logs carry the kind, method and a masked
// recipient, never the PIN or the access link.
func (d *Dispatcher) Notify(ctx context.Context, m Message) error {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	if !m.Kind.valid() {
		return fmt.Errorf("notify: unknown message kind %q", m.Kind)
	}
	method, err := m.ResolveMethod()
	if err != nil {
		return err
	}
	m.Method = method
	if d.Templates == nil {
		return errors.New("notify: dispatcher has no templates")
	}
	r, err := d.Templates.Render(m.Kind, method, m.To, m.Data)
	if err != nil {
		return fmt.Errorf("notify: %s to %q: %w", m.Kind, m.To.Name, err)
	}
	switch method {
	case MethodEmail:
		if d.Mail == nil {
			return fmt.Errorf("%w: email (%s to %q)", ErrNoChannel, m.Kind, m.To.Name)
		}
		if err := d.Mail.Send(ctx, m.To, r.Subject, r.Body); err != nil {
			log.Warn("notification failed", "message", m, "err", err)
			return err
		}
		log.Info("notification sent", "message", m)
	case MethodSMS:
		if d.SMS == nil {
			return fmt.Errorf("%w: sms (%s to %q)", ErrNoChannel, m.Kind, m.To.Name)
		}
		res, err := d.SMS.Send(ctx, m.To.Phone, r.Body)
		if err != nil {
			log.Warn("notification failed", "message", m, "err", err)
			return err
		}
		log.Info("notification sent", "message", m, "sid", res.SID, "status", res.Status)
	}
	return nil
}
