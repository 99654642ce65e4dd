package bookings

import (
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// BookingState is the life of a booking.
type BookingState string

const (
	BookingActive   BookingState = "active"   // a grant on the box
	BookingEnded    BookingState = "ended"    // grant revoked: assignment ended or deleted
	BookingUnlinked BookingState = "unlinked" // the vehicle has no linked key: recorded, no grant
)

// Booking is what the bridge made of one Fleetio vehicle assignment.
type Booking struct {
	AssignmentID int64        `json:"assignment_id"`
	VehicleID    int64        `json:"vehicle_id"`
	VehicleName  string       `json:"vehicle_name,omitempty"` // for people: messages, the access page
	ContactID    int64        `json:"contact_id"`
	ContactName  string       `json:"contact_name,omitempty"`
	BoxID        string       `json:"box_id,omitempty"`
	KeyID        string       `json:"key_id,omitempty"`
	GrantID      string       `json:"grant_id,omitempty"`
	From         time.Time    `json:"from"`
	Until        time.Time    `json:"until,omitzero"` // zero: open-ended
	State        BookingState `json:"state"`
	// ContactMethod is how the driver is told: "email", "sms" or "" (email when
	// the contact has an address, else sms).
	ContactMethod string `json:"contact,omitempty"`
	// DriverRef ties the booking grant to the driver ("fleetio:<contact>"):
	// a driver code grant with the same ref opens it.
	DriverRef string `json:"driver_ref,omitempty"`
	// DriverCode: the driver opens this booking with their driver code
	// (CodePerDriver, or CodeDriverOwn with a code set); the booking grant's
	// own code is a long one nobody is told. False: a per-assignment PIN.
	DriverCode bool `json:"driver_code,omitempty"`
	// WindowEdited: the admin changed the window (CreateBooking); it stays
	// as long as Fleetio's window, FleetioFrom/FleetioUntil, does not move.
	WindowEdited bool      `json:"window_edited,omitempty"`
	FleetioFrom  time.Time `json:"fleetio_from,omitzero"`
	FleetioUntil time.Time `json:"fleetio_until,omitzero"`
	// AccessLink is the access page's URL (it holds the token).
	AccessLink string `json:"access_link,omitempty"`
	// SealedPIN is the PIN, AES-GCM sealed, kept only until it is written
	// back and the driver told (Pending* false), then wiped.
	SealedPIN []byte `json:"sealed_pin,omitempty"`
	// Steps still to do, so that a retry after a failure redoes only them.
	PendingGrant     bool        `json:"pending_grant,omitempty"`
	PendingWriteBack bool        `json:"pending_write_back,omitempty"`
	PendingNotify    notify.Kind `json:"pending_notify,omitempty"` // the message to send
	// PendingConfirm: the booking was made (or changed, or ended) from a
	// webhook's payload and the read-back that confirms it is owed: the
	// confirm delivery ConfirmID (an internal one, EventConfirm) reads the
	// assignment back and the booking follows what it reads. The
	// write-back and the driver's message wait for that read-back, so
	// several changes of one assignment before it make one PATCH.
	PendingConfirm bool  `json:"pending_confirm,omitempty"`
	ConfirmID      int64 `json:"confirm_delivery,omitempty"`
	// PendingClear: the booking ended from a payload and the assignment's
	// custom fields are still to be cleared (by the confirm).
	PendingClear bool `json:"pending_clear,omitempty"`
	// NotifyCode: the code the driver knows changed (a driver code drawn
	// again), so an update notification carries it.
	NotifyCode bool `json:"notify_code,omitempty"`
	// UpdatedAt is the assignment's updated_at last acted on (after our own
	// PATCH, the one the PATCH returned): an equal or older read-back is stale.
	UpdatedAt time.Time `json:"updated_at"`
	Changed   time.Time `json:"changed"`
	// The live receipt (live.go). GrantRev is the box's records revision
	// that holds the booking's current grant (the one its last PutGrant
	// returned: a changed PIN or window is a new one), GrantAt when it was
	// pushed. LiveAt is when the box was heard holding GrantRev or later
	// (its status), zero while it has not: the grant is on its way.
	// BoxRev is the revision that status reported. AlertedRev is the
	// GrantRev a not_live alert was raised for (one alert per grant).
	GrantRev   uint64    `json:"grant_rev,omitempty"`
	GrantAt    time.Time `json:"grant_at,omitzero"`
	LiveAt     time.Time `json:"live_at,omitzero"`
	BoxRev     uint64    `json:"box_rev,omitempty"`
	AlertedRev uint64    `json:"alerted_rev,omitempty"`
}

// Reservation is a pending Prompt booking: an assignment of a vehicle linked
// in Prompt mode, waiting for the admin to create the booking.
type Reservation struct {
	AssignmentID int64     `json:"assignment_id"`
	VehicleID    int64     `json:"vehicle_id"`
	ContactID    int64     `json:"contact_id"`
	ContactName  string    `json:"contact_name,omitempty"`
	BoxID        string    `json:"box_id"`
	KeyID        string    `json:"key_id"`
	From         time.Time `json:"from"`
	Until        time.Time `json:"until,omitzero"`
	UpdatedAt    time.Time `json:"updated_at"`
	Notified     bool      `json:"notified,omitempty"`
	// ContactMethod is the contact method the admin chose ("email", "sms", "").
	ContactMethod string `json:"contact,omitempty"`
	// Approved: the admin asked for the booking (CreateBooking) with Edit;
	// the worker makes it, even after a crash half-way.
	Approved bool         `json:"approved,omitempty"`
	Edit     *BookingEdit `json:"edit,omitempty"`
}

func (bk Booking) pending() bool {
	return bk.PendingGrant || bk.PendingWriteBack || bk.PendingNotify != "" || bk.PendingConfirm || bk.PendingClear
}

// assignment is the assignment as the booking was last made from it (its
// vehicle, driver, Fleetio's window and updated_at): what finish needs of
// it when the read-back was done by an earlier run of the confirm.
func (bk Booking) assignment() fleetio.VehicleAssignment {
	a := fleetio.VehicleAssignment{ID: bk.AssignmentID, VehicleID: bk.VehicleID, ContactID: bk.ContactID,
		ContactFullName: bk.ContactName, StartedAt: bk.FleetioFrom, UpdatedAt: bk.UpdatedAt}
	if a.StartedAt.IsZero() {
		a.StartedAt = bk.From
	}
	if !bk.FleetioUntil.IsZero() {
		u := bk.FleetioUntil
		a.EndedAt = &u
	}
	return a
}

// BookingEdit is what the admin may change when making the booking of a
// Prompt reservation: the window (nil: Fleetio's) and the contact method.
type BookingEdit struct {
	From          *time.Time `json:"from,omitempty"`
	Until         *time.Time `json:"until,omitempty"`
	ContactMethod string     `json:"contact,omitempty"` // ContactEmail, ContactSMS or "" (email if the driver has an address)
}

// apply returns the window of a booking whose Fleetio window is [from,
// until), and whether the edit changed it.
func (e BookingEdit) apply(from, until time.Time) (time.Time, time.Time, bool) {
	f, u := from, until
	if e.From != nil {
		f = *e.From
	}
	if e.Until != nil {
		u = *e.Until
	}
	return f, u, !f.Equal(from) || !u.Equal(until)
}
