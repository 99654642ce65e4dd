package fleetio

import (
	"encoding/json"
	"time"
)

// Custom field keys of the Keycafe integration. Fleetio derives a custom
// field's key from its label (lower case, spaces as "_"); the fields are
// created by hand in Fleetio's UI, as Text fields.
const (
	FieldAccessInstructions = "keycafe_access_instructions"
	FieldAccessLink         = "keycafe_access_link"
	FieldAccessCode         = "keycafe_access_code"
)

// Webhook event names the bridge subscribes to. Fleetio documents the
// underscore pattern (contact_created, vehicle_updated); the assignment names
// are inferred from it, so a handler should not refuse other names.
const (
	EventAssignmentCreated = "vehicle_assignment_created"
	EventAssignmentUpdated = "vehicle_assignment_updated"
	EventAssignmentDeleted = "vehicle_assignment_deleted"
)

// SignatureHeader carries the lower-case hex HMAC-SHA256 of a webhook's raw
// body, keyed with the webhook's secret.
const SignatureHeader = "X-Fleetio-Webhook-Signature"

// VehicleAssignment is a Fleetio vehicle assignment (GET
// /api/v1/vehicle_assignments): a contact (driver) has a vehicle from
// StartedAt until EndedAt (nil: open-ended).
type VehicleAssignment struct {
	ID        int64      `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	VehicleID int64      `json:"vehicle_id"`
	ContactID int64      `json:"contact_id"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Current   bool       `json:"current"`
	Future    bool       `json:"future"`
	// CustomFields is Fleetio's flat custom-field object: string values,
	// null for a field never set.
	CustomFields    map[string]any     `json:"custom_fields"`
	ContactFullName string             `json:"contact_full_name"`
	Contact         *AssignmentContact `json:"contact,omitempty"`
	Vehicle         *AssignmentVehicle `json:"vehicle,omitempty"`
}

// AssignmentContact is the contact summary nested in a VehicleAssignment.
type AssignmentContact struct {
	ID      int64  `json:"id"`
	Email   string `json:"email"`
	Name    string `json:"name"`
	GroupID int64  `json:"group_id,omitempty"`
}

// AssignmentVehicle is the vehicle summary nested in a VehicleAssignment.
type AssignmentVehicle struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	LicensePlate string `json:"license_plate"`
	VIN          string `json:"vin"`
	Year         int    `json:"year,omitempty"`
	Make         string `json:"make"`
	Model        string `json:"model"`
}

// Vehicle is a Fleetio vehicle (GET /api/v1/vehicles/:id). Only the fields
// the bridge uses are named; Fleetio sends many more.
type Vehicle struct {
	ID                int64          `json:"id"`
	Name              string         `json:"name"`
	LicensePlate      string         `json:"license_plate"`
	VIN               string         `json:"vin"`
	Year              int            `json:"year,omitempty"`
	Make              string         `json:"make"`
	Model             string         `json:"model"`
	GroupID           int64          `json:"group_id,omitempty"`
	VehicleStatusName string         `json:"vehicle_status_name,omitempty"`
	CustomFields      map[string]any `json:"custom_fields,omitempty"`
	CreatedAt         time.Time      `json:"created_at"`
	UpdatedAt         time.Time      `json:"updated_at"`
}

// Contact is a Fleetio contact (GET /api/v2/contacts/:id): a driver. The
// phone fields' names are not confirmed by Fleetio's public material, so every
// plausible one is accepted; Phone picks the first set.
type Contact struct {
	ID                int64          `json:"id"`
	Name              string         `json:"name"`
	FirstName         string         `json:"first_name"`
	LastName          string         `json:"last_name"`
	Email             string         `json:"email"`
	EmployeeNumber    string         `json:"employee_number"`
	GroupID           int64          `json:"group_id,omitempty"`
	CustomFields      map[string]any `json:"custom_fields,omitempty"`
	MobilePhoneNumber string         `json:"mobile_phone_number,omitempty"`
	HomePhoneNumber   string         `json:"home_phone_number,omitempty"`
	WorkPhoneNumber   string         `json:"work_phone_number,omitempty"`
	PhoneNumber       string         `json:"phone_number,omitempty"`
	CreatedAt         time.Time      `json:"created_at"`
	UpdatedAt         time.Time      `json:"updated_at"`
}

// Phone is the contact's best phone number for a text message: mobile first,
// then the generic, work and home numbers; "" when none is set.
func (c Contact) Phone() string {
	for _, p := range []string{c.MobilePhoneNumber, c.PhoneNumber, c.WorkPhoneNumber, c.HomePhoneNumber} {
		if p != "" {
			return p
		}
	}
	return ""
}

// User is the API key's user (GET /api/v1/users/me).
type User struct {
	ID        int64  `json:"id"`
	Email     string `json:"email"`
	Name      string `json:"name,omitempty"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	Username  string `json:"username,omitempty"`
}

// CursorPage is one page of a cursor-paginated Fleetio list. NextCursor ""
// (absent or null) means the last page. FilteredBy and SortedBy are kept raw:
// their element shape is not documented.
type CursorPage[T any] struct {
	StartCursor             string          `json:"start_cursor"`
	NextCursor              string          `json:"next_cursor"`
	PerPage                 int             `json:"per_page"`
	EstimatedRemainingCount int             `json:"estimated_remaining_count"`
	FilteredBy              json.RawMessage `json:"filtered_by,omitempty"`
	SortedBy                json.RawMessage `json:"sorted_by,omitempty"`
	Records                 []T             `json:"records"`
}

// Webhook is one Fleetio webhook delivery. Timestamp is in the account's
// time zone, with its offset ("2017-11-03T10:15:38.741-05:00"). ID is the
// delivery id: Fleetio signs no timestamp, so de-duplicating by ID (and
// comparing the record's updated_at) is the receiver's replay protection.
type Webhook struct {
	ID          int64           `json:"id"`
	Event       string          `json:"event"`
	Timestamp   time.Time       `json:"timestamp"`
	TriggeredBy *string         `json:"triggered_by"`
	Payload     json.RawMessage `json:"payload"`
}
