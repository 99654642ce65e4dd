// Command fake-fleetio runs the fake Fleetio account of sync/fleetio/fake
// as a server, for the demo and for trying the bridge by hand.
//
//	fake-fleetio --listen 127.0.0.1:8090 --api-key k --account-token t \
//		--webhook-url http://127.0.0.1:8080/webhooks/fleetio --webhook-secret s --seed
//
// It prints its base URL on stdout (the API is under base+"/api", the
// equivalent of https://secure.fleetio.com/api). --seed adds a few vehicles
// and contacts. Because the fake has no UI, a small control API stands in
// for a fleet manager's clicks, behind the same Authorization: Token header
// as the API (no Account-Token needed):
//
//	POST   /_fake/vehicle_assignments      {"vehicle_id", "contact_id", "started_at", "ended_at"}
//	PATCH  /_fake/vehicle_assignments/{id} {"contact_id", "started_at", "ended_at"} (those given)
//	DELETE /_fake/vehicle_assignments/{id}
//	GET    /_fake/deliveries               the webhook delivery log
//
// Each change queues its vehicle_assignment_* webhook, as in Fleetio.
package main
