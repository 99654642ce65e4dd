// Package bridge is the Fleetio side of the SmartBox bridge: it turns Fleetio
// vehicle assignments into booking grants on a box, writes the Keycafe
// custom fields back to the assignment and tells the driver.
//
// # Basics
//
// A Store (one bbolt file, mode 0600) keeps the integration's connection
// settings, the key <-> vehicle links, a durable queue of webhook deliveries,
// the bookings made from assignments and the pending Prompt reservations.
//
// Webhook (POST /webhooks/fleetio) bounds the body, verifies Fleetio's
// signature, de-duplicates by delivery id and stores the delivery before it
// answers 2xx: Fleetio wants an answer within about 30 s and retries failures,
// so nothing slow (no Fleetio call, no box push) happens on that path.
//
// A Worker drains the queue. It never trusts a payload: deliveries come late,
// repeated and out of order, so it reads the assignment back from Fleetio's API
// and makes the booking match what it reads. A Fleetio outage or 429 leaves
// the delivery queued with a next-attempt time; nothing is lost.
//
// # Loops
//
// The bridge's own PATCH of the custom fields makes Fleetio send a
// vehicle_assignment_updated delivery. The worker records the updated_at the
// PATCH returned; a read-back that is not newer, or that changes nothing the
// booking depends on (window, driver, vehicle), does nothing.
//
// # PINs
//
// Booking PINs are 6 digits from crypto/rand, never a trivial sequence. The
// cloud (sync/cloud) is what knows every code of a box, encrypted; it refuses a
// code another active or future grant of the box holds (ErrCodeInUse), and the
// worker then draws again. The bridge keeps a PIN, sealed with AES-GCM, only
// until it has been written back to Fleetio and sent to the driver.
//
// # Caveats
//
// The sealing key lives in the store file (like sync/cloud's default code
// key): it keeps PINs out of a casual dump, not from someone holding the file.
// Prompt reservations are recorded and the admin told; creating the booking
// from one is the admin API's job (not here yet).
package bridge
