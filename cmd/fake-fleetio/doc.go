// Command fake-fleetio runs the fake Fleetio account of sync/fleetio/fleetiotest
// as a server, for the demo and for trying the bridge by hand.
//
//	fake-fleetio --listen 127.0.0.1:8090 --api-key k --account-token t \
//		--webhook-url http://127.0.0.1:8490/webhooks/fleetio --webhook-secret s --seed
//
// It prints its base URL on stdout (the API is under base+"/api", the
// equivalent of https://secure.fleetio.com/api). --seed adds three vehicles
// (ids 1-3: Van 7, Truck 12, Car 3), two contacts (ids 4-5: Ada Lovelace
// with email and mobile, Grace Hopper with email) and the three Keycafe
// custom fields; ids are one sequence over every record, so the first
// assignment is 6. Because the fake has no UI, a small control API stands in
// for a fleet manager's clicks (fleetiotest's Server.ControlHandler), behind
// the same Authorization: Token header as the API (no Account-Token needed):
//
//	POST   /_fake/vehicle_assignments      {"vehicle_id", "contact_id", "started_at", "ended_at"}
//	PATCH  /_fake/vehicle_assignments/{id} {"contact_id", "started_at", "ended_at"} (those given)
//	DELETE /_fake/vehicle_assignments/{id}
//	PUT    /_fake/webhook                  {"url"}: where webhooks go from now on ("" records only)
//	GET    /_fake/deliveries               the webhook delivery log
//
// Each change queues its vehicle_assignment_* webhook, as in Fleetio.
//
// Two subcommands play the fleet manager without curl (make demo uses them):
//
//	fake-fleetio assign --url BASE --api-key K --account-token T --vehicle 1 --contact 4 [--hours 8] [--wait 30s]
//	fake-fleetio unassign --url BASE --api-key K ASSIGNMENT
//
// assign waits until the bridge has written the Keycafe fields back and
// prints them as Fleetio's assignment page shows them (--wait 0 for a Prompt
// vehicle, whose fields wait for the admin).
//
// Without a command the arguments are the fake's flags (`fake-fleetio serve`
// is the same). As with smartboxctl and smartbox-bridge (cmd/internal/cli),
// -h prints the usage and exits 0, a mistake on the command line exits 2,
// a failure 1.
//
// # The whole flow by hand
//
// With smartbox-bridge running on its demo config (public listener
// 127.0.0.1:8490, admin on 127.0.0.1:8480) and a box registered with a key:
//
//	fake-fleetio --listen 127.0.0.1:8090 --api-key demo-key --account-token demo-acct \
//		--webhook-url http://127.0.0.1:8490/webhooks/fleetio --webhook-secret demo-secret --seed &
//
//	# connect the bridge (secrets from a 0600 file, never argv)
//	umask 077; printf 'api_key = demo-key\naccount_token = demo-acct\nwebhook_secret = demo-secret\n' > fleetio.secrets
//	smartbox-bridge fleetio connect --data bridge-data --secrets-file fleetio.secrets --base-url http://127.0.0.1:8090/api
//	smartbox-bridge fleetio link 1 --data bridge-data --box box-1 --key van-7 --method automatic
//
//	# the fleet manager assigns Van 7 to Ada for the next 8 hours
//	curl -s -H 'Authorization: Token demo-key' -X POST http://127.0.0.1:8090/_fake/vehicle_assignments \
//		-d "{\"vehicle_id\":1,\"contact_id\":4,\"started_at\":\"$(date -u +%FT%TZ)\",\"ended_at\":\"$(date -u -d +8hours +%FT%TZ)\"}"
//
//	# the booking: grant on the box, PIN and access link written back
//	smartbox-bridge bookings --data bridge-data --events
//	curl -s -H 'Authorization: Token demo-key' -H 'Account-Token: demo-acct' \
//		http://127.0.0.1:8090/api/v1/vehicle_assignments | jq '.records[].custom_fields'
//
//	# change the window, then end it early by deleting the assignment
//	curl -s -H 'Authorization: Token demo-key' -X PATCH http://127.0.0.1:8090/_fake/vehicle_assignments/6 \
//		-d "{\"ended_at\":\"$(date -u -d +2hours +%FT%TZ)\"}"
//	curl -s -H 'Authorization: Token demo-key' -X DELETE http://127.0.0.1:8090/_fake/vehicle_assignments/6
//
//	# webhooks sent, with their attempts; a bridge started later can be pointed at
//	curl -s -H 'Authorization: Token demo-key' http://127.0.0.1:8090/_fake/deliveries | jq '.[] | {id, event, delivered}'
//	curl -s -H 'Authorization: Token demo-key' -X PUT http://127.0.0.1:8090/_fake/webhook \
//		-d '{"url":"http://127.0.0.1:8490/webhooks/fleetio"}'
package main
