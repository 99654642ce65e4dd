package bookings

import "time"

// internalDeliveryBase is where the ids of the deliveries the bridge queues
// itself start (CreateBooking, a driver code change): far above any id
// Fleetio hands out, so the two never collide, and unforgeable from outside
// since a webhook must carry Fleetio's signature.
const internalDeliveryBase = 1 << 62

// DeliveryState is where a webhook delivery is in the queue.
type DeliveryState string

const (
	DeliveryQueued DeliveryState = "queued" // to process (again at NextAttempt)
	DeliveryDone   DeliveryState = "done"
	DeliveryFailed DeliveryState = "failed" // a permanent error; kept for the admin
)

// Delivery is one webhook delivery as received: the raw body is kept so that
// it can be processed (again) after a restart.
type Delivery struct {
	ID          int64         `json:"id"`
	Event       string        `json:"event"`
	Body        []byte        `json:"body"`
	ReceivedAt  time.Time     `json:"received_at"`
	State       DeliveryState `json:"state"`
	Attempts    int           `json:"attempts,omitempty"`
	NextAttempt time.Time     `json:"next_attempt,omitzero"`
	LastError   string        `json:"last_error,omitempty"`
}

// Events of the deliveries the bridge queues itself (see
// Store.AddInternalDelivery): the worker reads the assignment back and acts,
// as for Fleetio's.
const (
	EventCreateBooking     = "smartbox_create_booking"      // the admin approved a Prompt reservation
	EventDriverCodeChanged = "smartbox_driver_code_changed" // a booking's driver code changed
	// EventConfirm: a webhook's payload was acted on (or was too old to
	// be); the read-back that confirms or repairs it, and the write-back
	// and message that follow, are owed (Booking.PendingConfirm).
	EventConfirm = "smartbox_confirm"
)

// internal reports whether d is one of the bridge's own deliveries: they
// carry no payload to act on, only which assignment to read back.
func (d Delivery) internal() bool { return d.ID >= internalDeliveryBase }
