package notify_test

import (
	"context"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/sync/notify"
)

// How the bridge wires the package: templates loaded (and checked) at
// start-up, one sender per channel, one Message per person told.
func Example() {
	tm, err := notify.LoadTemplates("") // or the deployer's directory
	if err != nil {
		panic(err)
	}
	start := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	msg := notify.Message{
		To:     notify.Recipient{Name: "Alex Driver", Phone: "+15555550100"},
		Kind:   notify.KindBookingCreated,
		Method: notify.MethodSMS,
		Data: map[string]any{
			notify.DataBox: "Depot North 1", notify.DataKey: "Van 12 key", notify.DataVehicle: "Van 12",
			notify.DataStart: start, notify.DataEnd: start.Add(8 * time.Hour), notify.DataTimeZone: "America/Chicago",
			notify.DataPIN: "482913", notify.DataInstructions: "Type the PIN, then #.",
		},
	}
	r, err := tm.Render(msg.Kind, msg.Method, msg.To, msg.Data)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Body)

	// With senders configured, the Dispatcher renders and sends in one go:
	d := &notify.Dispatcher{Templates: tm} // Mail: notify.NewMailer(...), SMS: notify.NewSMSClient(...)
	fmt.Println(d.Notify(context.Background(), msg))
	// Output:
	// Van 12: key "Van 12 key" in SmartBox Depot North 1. PIN 482913, Mon 2 Mar 2026 09:00 CST to Mon 2 Mar 2026 17:00 CST. Type the PIN then #.
	// notify: no sender configured for this method: sms (booking_created to "Alex Driver")
}
