package bridge

import (
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// The admin API's requests and answers. Answers are these types, never the
// stores' own: a storage struct grows fields (a sealed PIN, a settings
// secret) that must not reach a client by being added there. The JSON names
// are the ones the CLI (cmd/smartbox-bridge) decodes.

// PutKeyRequest is PUT /v1/boxes/{box}/keys/{key}.
type PutKeyRequest struct {
	Name   string `json:"name,omitempty"`
	FobUID string `json:"fob_uid"`
	Slot   int    `json:"slot"`
}

// PutGrantRequest is PUT /v1/boxes/{box}/grants/{grant}: the code goes
// in, and never comes out of any answer.
type PutGrantRequest struct {
	Kind      box.GrantKind `json:"kind"`
	Code      string        `json:"code,omitempty"` // "" keeps the grant's code
	KeyIDs    []string      `json:"key_ids"`
	From      time.Time     `json:"from,omitzero"`
	Until     time.Time     `json:"until,omitzero"`
	MaxUses   int           `json:"max_uses,omitempty"`
	DriverRef string        `json:"driver_ref,omitempty"`
}

// CommandRequest is POST /v1/boxes/{box}/commands.
type CommandRequest struct {
	Kind   string `json:"kind"`
	Slot   int    `json:"slot,omitempty"`
	By     string `json:"by"`
	Reason string `json:"reason"`
	TTL    string `json:"ttl,omitempty"` // Go duration; default 10m
}

// RevisionResponse answers a change to a box's records: its new revision.
type RevisionResponse struct {
	Revision uint64 `json:"revision"`
}

// RecordsResponse is GET /v1/boxes/{box}/records.
type RecordsResponse struct {
	Keys   []box.Key   `json:"keys"`
	Grants []box.Grant `json:"grants"` // never with codes: box.Grant has none
}

// CommandResponse answers POST /v1/boxes/{box}/commands.
type CommandResponse struct {
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

// CommandResultResponse is GET /v1/boxes/{box}/commands/{id}.
type CommandResultResponse struct {
	Answered bool                `json:"answered"`
	Result   *wire.CommandResult `json:"result,omitempty"`
}

// ConnectRequest is POST /v1/fleetio/connect: secrets go in, never out.
type ConnectRequest struct {
	APIKey        string            `json:"api_key"`
	AccountToken  string            `json:"account_token"`
	WebhookSecret string            `json:"webhook_secret"`
	Authorization string            `json:"authorization,omitempty"`
	BaseURL       string            `json:"base_url,omitempty"`
	CodeMode      bookings.CodeMode `json:"code_mode,omitempty"`
}

// ConnectResponse answers POST /v1/fleetio/connect.
type ConnectResponse struct {
	User       fleetio.User `json:"user"`
	WebhookURL string       `json:"webhook_url"` // give this to Fleetio
}

// FleetioStatus is GET /v1/fleetio/status: no secret, only whether there
// are settings.
type FleetioStatus struct {
	Connected  bool              `json:"connected"`
	BaseURL    string            `json:"base_url,omitempty"`
	CodeMode   bookings.CodeMode `json:"code_mode"`
	WebhookURL string            `json:"webhook_url"`
	AccessURL  string            `json:"access_url"`
	Links      int               `json:"links"`
	Pending    int               `json:"reservations"`
	Stats      Stats             `json:"stats"`
}

// Stats are the Fleetio integration's counters since the bridge started
// (bookings.Stats), in FleetioStatus.
type Stats struct {
	WebhooksAccepted    uint64 `json:"webhooks_accepted"`
	WebhooksRejected    uint64 `json:"webhooks_rejected"`
	WebhooksBusy        uint64 `json:"webhooks_busy"`
	WebhooksIgnored     uint64 `json:"webhooks_ignored"`
	WebhooksDuplicate   uint64 `json:"webhooks_duplicate"`
	GrantsPushed        uint64 `json:"grants_pushed"`
	GrantsRevoked       uint64 `json:"grants_revoked"`
	FleetioErrors       uint64 `json:"fleetio_errors"`
	NotificationsSent   uint64 `json:"notifications_sent"`
	NotificationsFailed uint64 `json:"notifications_failed"`
	Overdue             uint64 `json:"overdue"`
	Reconciled          uint64 `json:"reconciled"`
	EchoesSkipped       uint64 `json:"echoes_skipped"`
	KeypadAttacks       uint64 `json:"keypad_attacks"`
	KeypadClosures      uint64 `json:"keypad_closures"`
	ReturnsUnconfirmed  uint64 `json:"returns_unconfirmed"`
	NotLiveAlerts       uint64 `json:"not_live_alerts"`
	QueueDepth          int    `json:"queue_depth"`
	BodiesInFlight      int    `json:"bodies_in_flight"`
}

// statsOf is a type conversion: a counter added to bookings.Stats stops
// the build until it is added here too.
func statsOf(s bookings.Stats) Stats { return Stats(s) }

// CodeModeRequest is PUT /v1/fleetio/code-mode, and its answer.
type CodeModeRequest struct {
	Mode bookings.CodeMode `json:"mode"`
}

// LinkRequest is PUT /v1/fleetio/links/{vehicle}.
type LinkRequest struct {
	BoxID  string            `json:"box_id"`
	KeyID  string            `json:"key_id"`
	Method bookings.LinkMode `json:"method"`
}

// BookRequest is POST /v1/fleetio/reservations/{assignment}/book.
type BookRequest struct {
	From  *time.Time `json:"from,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	// ContactMethod is how the driver is told: "email", "sms" or "" (email
	// if the driver has an address); bookings checks it.
	ContactMethod string `json:"contact,omitempty"`
}

// DriverCodeRequest is PUT /v1/fleetio/drivers/{contact}/code.
type DriverCodeRequest struct {
	Code string `json:"code"`
}

// BookingRow is one grant of a box, or one Fleetio booking without a grant
// (a vehicle not linked, or ended and its grant gone).
type BookingRow struct {
	BoxID     string        `json:"box_id,omitempty"`
	GrantID   string        `json:"grant_id,omitempty"`
	Kind      box.GrantKind `json:"kind,omitempty"`
	KeyIDs    []string      `json:"key_ids,omitempty"`
	From      time.Time     `json:"from,omitzero"`
	Until     time.Time     `json:"until,omitzero"`
	Revoked   bool          `json:"revoked,omitempty"`
	MaxUses   int           `json:"max_uses,omitempty"`
	Uses      int           `json:"uses,omitempty"`
	DriverRef string        `json:"driver_ref,omitempty"`
	Source    string        `json:"source,omitempty"`
	// Fleetio: the grant is the integration's (a booking or a driver code).
	Fleetio bool `json:"fleetio"`
	// Booking is the Fleetio booking behind the grant, if any.
	Booking *Booking       `json:"booking,omitempty"`
	Events  []BookingEvent `json:"events,omitempty"`
	// BoxEvents are the box's events naming a grant the bridge did not
	// make (the latest grantEventWindow of the box's log).
	BoxEvents []box.Event `json:"box_events,omitempty"`
}

// Assignment is what a booking and a Prompt reservation share: one Fleetio
// assignment of a driver (contact) to a vehicle whose key is in a box.
type Assignment struct {
	AssignmentID  int64     `json:"assignment_id"`
	VehicleID     int64     `json:"vehicle_id"`
	ContactID     int64     `json:"contact_id"`
	ContactName   string    `json:"contact_name,omitempty"`
	BoxID         string    `json:"box_id,omitempty"`
	KeyID         string    `json:"key_id,omitempty"`
	From          time.Time `json:"from"`
	Until         time.Time `json:"until,omitzero"` // zero: open-ended
	ContactMethod string    `json:"contact,omitempty"`
	// UpdatedAt is Fleetio's updated_at of the assignment last acted on.
	UpdatedAt time.Time `json:"updated_at"`
}

// Booking is a Fleetio booking as the admin sees it: bookings.Booking
// without its sealed PIN.
type Booking struct {
	Assignment
	VehicleName  string                `json:"vehicle_name,omitempty"`
	GrantID      string                `json:"grant_id,omitempty"`
	State        bookings.BookingState `json:"state"`
	DriverRef    string                `json:"driver_ref,omitempty"`
	DriverCode   bool                  `json:"driver_code,omitempty"`
	WindowEdited bool                  `json:"window_edited,omitempty"`
	FleetioFrom  time.Time             `json:"fleetio_from,omitzero"`
	FleetioUntil time.Time             `json:"fleetio_until,omitzero"`
	// AccessLink is the driver's page (it holds the token, not the PIN):
	// the admin passes it on when a driver lost the message.
	AccessLink string `json:"access_link,omitempty"`
	// The steps of the booking still to do.
	PendingGrant     bool      `json:"pending_grant,omitempty"`
	PendingWriteBack bool      `json:"pending_write_back,omitempty"`
	PendingNotify    string    `json:"pending_notify,omitempty"`
	Changed          time.Time `json:"changed"`
	// The live receipt: LiveAt is when the box was heard holding the
	// booking's grant (zero: not yet, the grant on its way); GrantRevision
	// is the box's records revision that holds the grant, pushed at GrantAt;
	// BoxRevision the revision the box last said it holds while the
	// grant waited.
	LiveAt        time.Time `json:"live_at,omitzero"`
	GrantRevision uint64    `json:"grant_revision,omitempty"`
	GrantAt       time.Time `json:"grant_at,omitzero"`
	BoxRevision   uint64    `json:"box_revision,omitempty"`
}

func bookingOf(b bookings.Booking) Booking {
	return Booking{
		Assignment: Assignment{AssignmentID: b.AssignmentID, VehicleID: b.VehicleID, ContactID: b.ContactID,
			ContactName: b.ContactName, BoxID: b.BoxID, KeyID: b.KeyID, From: b.From, Until: b.Until,
			ContactMethod: b.ContactMethod, UpdatedAt: b.UpdatedAt},
		VehicleName: b.VehicleName, GrantID: b.GrantID, State: b.State, DriverRef: b.DriverRef, DriverCode: b.DriverCode,
		WindowEdited: b.WindowEdited, FleetioFrom: b.FleetioFrom, FleetioUntil: b.FleetioUntil, AccessLink: b.AccessLink,
		PendingGrant: b.PendingGrant, PendingWriteBack: b.PendingWriteBack, PendingNotify: string(b.PendingNotify), Changed: b.Changed,
		LiveAt: b.LiveAt, GrantRevision: b.GrantRev, GrantAt: b.GrantAt, BoxRevision: b.BoxRev,
	}
}

// listOf converts each element of in: the answers' lists. It is never nil,
// so that a list without omitempty is [] in JSON, not null.
func listOf[T, A any](in []T, answer func(T) A) []A {
	out := make([]A, 0, len(in))
	for _, v := range in {
		out = append(out, answer(v))
	}
	return out
}

// Reservation is a pending Prompt reservation (GET /v1/fleetio/reservations).
type Reservation struct {
	Assignment
	Notified bool `json:"notified,omitempty"` // the admin was told
	// Approved: the admin asked for the booking, with Edit.
	Approved bool         `json:"approved,omitempty"`
	Edit     *BookRequest `json:"edit,omitempty"`
}

func reservationOf(r bookings.Reservation) Reservation {
	out := Reservation{
		Assignment: Assignment{AssignmentID: r.AssignmentID, VehicleID: r.VehicleID, ContactID: r.ContactID,
			ContactName: r.ContactName, BoxID: r.BoxID, KeyID: r.KeyID, From: r.From, Until: r.Until,
			ContactMethod: r.ContactMethod, UpdatedAt: r.UpdatedAt},
		Notified: r.Notified, Approved: r.Approved,
	}
	if e := r.Edit; e != nil {
		out.Edit = &BookRequest{From: e.From, Until: e.Until, ContactMethod: e.ContactMethod}
	}
	return out
}

// Link is a vehicle's link to a box's key (PUT /v1/fleetio/links/{vehicle}).
type Link struct {
	VehicleID int64             `json:"vehicle_id"`
	BoxID     string            `json:"box_id"`
	KeyID     string            `json:"key_id"`
	Method    bookings.LinkMode `json:"method"`
}

// VehicleLink is one of Fleetio's vehicles with its link (GET
// /v1/fleetio/vehicles).
type VehicleLink struct {
	Vehicle fleetio.Vehicle `json:"vehicle"`
	Link    *Link           `json:"link"`
}

func linkOf(l bookings.Link) Link {
	return Link{VehicleID: l.VehicleID, BoxID: l.BoxID, KeyID: l.KeyID, Method: l.Mode}
}

func vehicleLinkOf(v bookings.VehicleLink) VehicleLink {
	vl := VehicleLink{Vehicle: v.Vehicle}
	if v.Link != nil {
		l := linkOf(*v.Link)
		vl.Link = &l
	}
	return vl
}

// DisconnectReport answers POST /v1/fleetio/disconnect.
type DisconnectReport struct {
	Revoked             []Booking `json:"revoked"`
	Kept                []Booking `json:"kept"`
	DeliveriesDropped   int       `json:"deliveries_dropped"`
	ReservationsDropped int       `json:"reservations_dropped"`
	FieldsNotCleared    []int64   `json:"fields_not_cleared,omitempty"`
}

func disconnectReportOf(r bookings.DisconnectReport) DisconnectReport {
	return DisconnectReport{Revoked: listOf(r.Revoked, bookingOf), Kept: listOf(r.Kept, bookingOf), DeliveriesDropped: r.DeliveriesDropped,
		ReservationsDropped: r.ReservationsDropped, FieldsNotCleared: r.FieldsNotCleared}
}

// BookingEvent is a box event tied to a booking, or the bridge's own
// key_overdue (bookings.BookingEvent), in BookingRow.
type BookingEvent struct {
	AssignmentID int64 `json:"assignment_id"`
	// The box's event: BoxID "" is the bridge's own.
	BoxID string        `json:"box_id,omitempty"`
	Seq   uint64        `json:"seq,omitempty"`
	Time  time.Time     `json:"time"`
	Type  box.EventType `json:"type"`
	// What it is about, and why.
	Slot           int         `json:"slot,omitempty"`
	KeyID          string      `json:"key_id,omitempty"`
	GrantID        string      `json:"grant_id,omitempty"`
	Reason         box.Reason  `json:"reason,omitempty"`
	Purpose        box.Purpose `json:"purpose,omitempty"`
	Failures       int         `json:"failures,omitempty"`
	ClockUntrusted bool        `json:"clock_untrusted,omitempty"`
	Detail         string      `json:"detail,omitempty"`
	// A return: what let the key in, how long the sensor saw it seated,
	// and whether the bridge takes it as proof the key is back.
	ReturnBy    box.ReturnBy `json:"return_by,omitempty"`
	SeatedMS    int64        `json:"seated_ms,omitempty"`
	Unconfirmed bool         `json:"unconfirmed,omitempty"`
	Count       int          `json:"count,omitempty"` // a keypad_attack's wrong codes
	Via         string       `json:"via,omitempty"`   // how the event was tied to the booking
}

// bookingEventOf is a plain conversion, as statsOf: a field added to the
// stored event breaks the build here until the answer has it too.
func bookingEventOf(e bookings.BookingEvent) BookingEvent { return BookingEvent(e) }

// DriverCodeInfo is one driver with a code, and the boxes it is on (GET
// /v1/fleetio/drivers): never the code.
type DriverCodeInfo struct {
	ContactID int64    `json:"contact_id"`
	Own       bool     `json:"own"` // set by the admin; false: drawn (per_driver)
	Boxes     []string `json:"boxes,omitempty"`
}

func driverCodeOf(d bookings.DriverCodeInfo) DriverCodeInfo {
	return DriverCodeInfo{ContactID: d.ContactID, Own: d.Own, Boxes: d.Boxes}
}

// ReconcileReport answers POST /v1/fleetio/reconcile.
type ReconcileReport struct {
	Vehicles    int `json:"vehicles"`    // the linked vehicles, whose assignments were listed
	Assignments int `json:"assignments"` // their assignments, current and future
	Checked     int `json:"checked"`     // bookings not in those lists, asked for one by one
	// Repairs are the bookings made to match Fleetio; Why is one of
	// bookings' Repair* reasons.
	Repairs []Repair `json:"repairs,omitempty"`
}

// Repair is one booking a reconcile round repaired.
type Repair struct {
	AssignmentID int64  `json:"assignment_id"`
	VehicleID    int64  `json:"vehicle_id"`
	Why          string `json:"why"`
}

func reconcileReportOf(r bookings.ReconcileReport) ReconcileReport {
	return ReconcileReport{Vehicles: r.Vehicles, Assignments: r.Assignments, Checked: r.Checked,
		Repairs: listOf(r.Repairs, func(rp bookings.Repair) Repair {
			return Repair{AssignmentID: rp.AssignmentID, VehicleID: rp.VehicleID, Why: rp.Why}
		})}
}
