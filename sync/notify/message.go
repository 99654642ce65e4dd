package notify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Kind says what happened, and so which template renders a message.
type Kind string

// The kinds the bridge sends. Each has an email and an SMS template.
const (
	KindBookingCreated    Kind = "booking_created"
	KindBookingUpdated    Kind = "booking_updated"
	KindBookingCancelled  Kind = "booking_cancelled"
	KindPromptReservation Kind = "prompt_reservation"
	KindKeyOverdue        Kind = "key_overdue"
	// KindKeypadAttack tells the admin that wrong codes at a box passed the
	// box's alert threshold: someone may be guessing codes.
	KindKeypadAttack Kind = "keypad_attack"
	// KindKeypadClosed tells the admin that wrong codes spent a box's guess
	// budget: its keypad checks no code, a driver's included, until the
	// time it names, unless the admin reopens it (restore-keypad) first.
	KindKeypadClosed Kind = "keypad_closed"
	// KindReturnUnconfirmed tells the admin that a key was returned by fob
	// but the slot's key sensor did not confirm it seated: the booking's
	// key is still counted out (and overdue once its window ends).
	KindReturnUnconfirmed Kind = "return_unconfirmed"
	// KindNotLive tells the admin that a booking starts soon and its box
	// has not applied its grant: the driver's code would not open it (the
	// box is offline, or refusing the cloud's batches).
	KindNotLive Kind = "not_live"
)

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{KindBookingCreated, KindBookingUpdated, KindBookingCancelled, KindPromptReservation, KindKeyOverdue,
	KindKeypadAttack, KindKeypadClosed, KindReturnUnconfirmed, KindNotLive}

func (k Kind) valid() bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

// Method is how a message reaches its recipient: the contact method chosen
// for the booking (Keycafe's "email or SMS").
type Method string

// The contact methods.
const (
	MethodEmail Method = "email"
	MethodSMS   Method = "sms"
)

// Methods lists every method.
var Methods = []Method{MethodEmail, MethodSMS}

func (m Method) valid() bool { return m == MethodEmail || m == MethodSMS }

// Recipient is a driver or an account admin as Fleetio or the admin knows them.
type Recipient struct {
	Name  string
	Email string // RFC 5322 address, for MethodEmail
	Phone string // E.164 (+15551234567), for MethodSMS
}

// Keys of Message.Data that the default templates use. Times are time.Time
// and shown in the zone DataTimeZone names (an IANA name such as
// "America/Chicago"; the box's local time is what a driver reads on site).
const (
	DataBox          = "box"          // box name or id
	DataBoxID        = "box_id"       // keypad_closed: the box's id, for the command that reopens it
	DataLocation     = "location"     // where the box is (address, depot)
	DataKey          = "key"          // key name
	DataVehicle      = "vehicle"      // vehicle name from Fleetio
	DataStart        = "start"        // time.Time: booking window start
	DataEnd          = "end"          // time.Time: booking window end (exclusive)
	DataTimeZone     = "time_zone"    // IANA zone name for start and end
	DataPIN          = "pin"          // booking PIN: secret, never logged
	DataAccessLink   = "access_link"  // the booking's page: secret, never logged
	DataInstructions = "instructions" // how to use the box
	DataAdminLink    = "admin_link"   // prompt_reservation: where the admin creates the booking
	DataDriver       = "driver"       // prompt_reservation: the assigned driver's name
	DataAt           = "at"           // keypad_attack, keypad_closed, return_unconfirmed: when it happened at the box
	DataUntil        = "until"        // keypad_closed: when the keypad checks codes again by itself
	DataCount        = "count"        // keypad_attack: wrong codes the alert stands for; keypad_closed: the budget spent
	DataReason       = "reason"       // return_unconfirmed: why the return is not proof the key is back
	DataBoxStatus    = "box_status"   // not_live: the box's last status ("online, at revision 7", "never connected")
	DataRevision     = "revision"     // not_live: the box's records revision that holds the grant
	DataRecipient    = "recipient"    // set by the package: the Recipient (templates: .recipient.Name)
)

// secretKeys are Data keys whose values never reach a log line.
var secretKeys = map[string]bool{DataPIN: true, DataAccessLink: true}

// Message is one notification to one person.
type Message struct {
	To   Recipient
	Kind Kind
	// Method picks email or SMS. Empty means: email when To.Email is set,
	// else SMS when To.Phone is set.
	Method Method
	// Data fills the template: see the Data* keys. A template may read a key
	// as .name (missing is an error at send time) or with index (optional).
	Data map[string]any
}

// Notifier sends a message. Implementations return an error that names what
// failed and never contains the message's PIN or access link.
type Notifier interface {
	Notify(ctx context.Context, m Message) error
}

// ResolveMethod returns the method m will be sent by, or an error when the
// recipient has no address for it.
func (m Message) ResolveMethod() (Method, error) {
	method := m.Method
	if method == "" {
		switch {
		case m.To.Email != "":
			method = MethodEmail
		case m.To.Phone != "":
			method = MethodSMS
		default:
			return "", fmt.Errorf("notify: %s for %q: recipient has neither email nor phone", m.Kind, m.To.Name)
		}
	}
	switch method {
	case MethodEmail:
		if m.To.Email == "" {
			return "", fmt.Errorf("notify: %s for %q by email: recipient has no email address", m.Kind, m.To.Name)
		}
	case MethodSMS:
		if m.To.Phone == "" {
			return "", fmt.Errorf("notify: %s for %q by sms: recipient has no phone number", m.Kind, m.To.Name)
		}
	default:
		return "", fmt.Errorf("notify: %s for %q: unknown method %q (want email or sms)", m.Kind, m.To.Name, method)
	}
	return method, nil
}

// LogValue keeps secrets out of logs: it shows the kind, the method, the
// recipient's name and masked addresses, and the names of the data keys,
// never their values (the PIN and the access link open a key locker).
func (m Message) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kind", string(m.Kind)),
		slog.String("method", string(m.Method)),
		slog.String("to", m.To.Name),
		slog.String("email", maskEmail(m.To.Email)),
		slog.String("phone", maskPhone(m.To.Phone)),
	)
}

// maskEmail keeps the first letter and the domain: enough to tell two
// recipients apart in a log, not enough to harvest addresses.
func maskEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if s == "" || at < 1 {
		return strings.Repeat("*", min(len(s), 3))
	}
	return s[:1] + "***" + s[at:]
}

// maskPhone keeps the last two digits.
func maskPhone(s string) string {
	if len(s) <= 2 {
		return strings.Repeat("*", len(s))
	}
	return "***" + s[len(s)-2:]
}
