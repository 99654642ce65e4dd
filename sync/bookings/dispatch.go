package bookings

import (
	"context"
	"time"

	"github.com/smartbox-oss/smartbox/sync/notify"
)

// Dispatch is the Notifier that sends through sync/notify: it maps the
// bridge's flat data ("from", "until", "link", ...) onto notify's template
// keys and passes the booking's contact method on. The service and the
// end-to-end tests use it, so what a driver receives is tested once.
type Dispatch struct {
	D *notify.Dispatcher
	// Zone shows booking times in that zone; nil keeps the text the bridge
	// gives (the offset Fleetio sent, which is the account's).
	Zone *time.Location
	// AdminLink, when set, says where the admin makes the booking of a
	// Prompt reservation (given the assignment id); the template has a
	// fallback without it.
	AdminLink func(assignmentID string) string
}

var _ Notifier = Dispatch{}

// openEnded stands in for the end of a booking without one: the templates
// say "until {{when .end}}".
const openEnded = "further notice"

// Notify renders and sends one message.
func (n Dispatch) Notify(ctx context.Context, to Recipient, kind string, data map[string]string) error {
	m := notify.Message{
		To:     notify.Recipient{Name: to.Name, Email: to.Email, Phone: to.Phone},
		Kind:   notify.Kind(kind),
		Method: notify.Method(to.Method),
		Data:   make(map[string]any, len(data)+2),
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
		case "at":
			m.Data[notify.DataAt] = n.when(v)
		case "link":
			if v != "" {
				m.Data[notify.DataAccessLink] = v
			}
		case "assignment":
			if n.AdminLink != nil {
				m.Data[notify.DataAdminLink] = n.AdminLink(v)
			}
			m.Data[k] = v
		default:
			m.Data[k] = v
		}
	}
	if _, ok := m.Data[notify.DataEnd]; !ok {
		m.Data[notify.DataEnd] = openEnded
	}
	// The templates read .time_zone; "" with the bridge's text times shows
	// them as given.
	m.Data[notify.DataTimeZone] = ""
	if n.Zone != nil {
		m.Data[notify.DataTimeZone] = n.Zone.String()
	}
	return n.D.Notify(ctx, m)
}

// when turns the bridge's text of a time into a time.Time when a zone is
// set (notify's "when" then shows it there); otherwise, and for text it does
// not know, the text passes through as it is.
func (n Dispatch) when(v string) any {
	if n.Zone == nil {
		return v
	}
	for _, layout := range []string{timeLayout, time.RFC3339Nano} {
		if t, err := time.Parse(layout, v); err == nil {
			return t
		}
	}
	return v
}
