package bookings

import "fmt"

// Method is how a driver learns of a booking for a linked vehicle.
type Method string

const (
	// MethodAutomatic books at once and notifies the driver.
	MethodAutomatic Method = "automatic"
	// MethodPrompt records a reservation and tells the account admin, who
	// makes the booking.
	MethodPrompt Method = "prompt"
)

// Link ties a Fleetio vehicle to the key of that vehicle in a box.
type Link struct {
	VehicleID int64  `json:"vehicle_id"`
	BoxID     string `json:"box_id"`
	KeyID     string `json:"key_id"`
	Method    Method `json:"method"`
}

// Validate checks a link.
func (l Link) Validate() error {
	switch {
	case l.VehicleID <= 0:
		return fmt.Errorf("%w link: vehicle id %d is not positive", ErrInvalid, l.VehicleID)
	case l.BoxID == "" || l.KeyID == "":
		return fmt.Errorf("%w link of vehicle %d: box and key are needed", ErrInvalid, l.VehicleID)
	case l.Method != MethodAutomatic && l.Method != MethodPrompt:
		return fmt.Errorf("%w link of vehicle %d: method %q is not %q or %q", ErrInvalid, l.VehicleID, l.Method, MethodAutomatic, MethodPrompt)
	}
	return nil
}

// BoxInfo is what a driver needs to find a box.
type BoxInfo struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Location string `json:"location,omitempty"`
}
