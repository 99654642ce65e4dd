package bookings

import "fmt"

// LinkMode is how a driver learns of a booking for a linked vehicle (the
// admin API and stored links call it "method"; a contact method, email or
// SMS, is notify.Method).
type LinkMode string

const (
	// ModeAutomatic books at once and notifies the driver.
	ModeAutomatic LinkMode = "automatic"
	// ModePrompt records a reservation and tells the account admin, who
	// makes the booking.
	ModePrompt LinkMode = "prompt"
)

// Link ties a Fleetio vehicle to the key of that vehicle in a box.
type Link struct {
	VehicleID int64    `json:"vehicle_id"`
	BoxID     string   `json:"box_id"`
	KeyID     string   `json:"key_id"`
	Mode      LinkMode `json:"method"`
}

// Validate checks a link.
func (l Link) Validate() error {
	switch {
	case l.VehicleID <= 0:
		return fmt.Errorf("%w link: vehicle id %d is not positive", ErrInvalid, l.VehicleID)
	case l.BoxID == "" || l.KeyID == "":
		return fmt.Errorf("%w link of vehicle %d: box and key are needed", ErrInvalid, l.VehicleID)
	case l.Mode != ModeAutomatic && l.Mode != ModePrompt:
		return fmt.Errorf("%w link of vehicle %d: method %q is not %q or %q", ErrInvalid, l.VehicleID, l.Mode, ModeAutomatic, ModePrompt)
	}
	return nil
}

// BoxInfo is what a driver needs to find a box.
type BoxInfo struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Location string `json:"location,omitempty"`
}
