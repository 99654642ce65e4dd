// Package fleetiotest is a fake Fleetio account for tests and the demo: the API
// endpoints the SmartBox bridge uses, with the shapes of
// /work/shared/fleetio-facts.md (types from sync/fleetio), in-memory records
// seeded through Go methods, and signed webhook deliveries that behave like
// Fleetio's: asynchronous, sometimes repeated, late or out of order, and
// retried on failure.
//
// # Basics
//
//	f := fleetiotest.New(fleetiotest.Options{APIKey: "k", AccountToken: "t",
//		WebhookURL: receiver.URL, WebhookSecret: "s",
//		RetryIntervals: []time.Duration{10 * time.Millisecond}})
//	defer f.Close()
//	base, err := f.Start() // http://127.0.0.1:port; the API is base+"/api"
//	v, _ := f.AddVehicle(fleetio.Vehicle{Name: "Van 7"})
//	c, _ := f.AddContact(fleetio.Contact{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
//	a, _ := f.CreateAssignment(fleetio.VehicleAssignment{VehicleID: v.ID, ContactID: c.ID, StartedAt: now})
//	err = f.Flush(ctx)   // the vehicle_assignment_created delivery is in
//	a, _ = f.Assignment(a.ID) // custom fields the bridge wrote back
//
// Server is also an http.Handler, for an httptest.Server of your own.
// ControlHandler is the /_fake/ control API that stands in for a fleet
// manager's clicks when the fake runs as a process (cmd/fake-fleetio).
//
// # API
//
// GET /api/v1/users/me, /api/v1/vehicles[/:id], /api/v1/vehicles/:id/vehicle_assignments,
// /api/v2/contacts[/:id], /api/v1/vehicle_assignments and PATCH
// /api/v1/vehicle_assignments/:id with {"custom_fields": {...}} (merged;
// null clears a field). Every request needs "Authorization: Token <key>"
// (the older `Token token="<key>"` is accepted) and "Account-Token": a
// missing or unknown credential is 401, a key used with another account or
// a read-only key's PATCH is 403. Errors are {"error": "..."}; a 422 is
// {"errors": {"custom_fields": ["..."]}}.
//
// Lists are cursor pages {start_cursor, next_cursor (null on the last
// page), per_page (2..100, default 50), estimated_remaining_count,
// filtered_by, sorted_by, records}. The next page is asked for with
// start_cursor (Fleetio's docs) or next_cursor (Fleetio's own connector).
// Cursors are keyset positions, so records created or deleted between pages
// shift nothing. Filters are filter[field][eq|like|lt|lte|gt|gte], compared
// by the field's type (timestamps as times, with any offset or a bare
// date); sorts are sort[field]=asc|desc, ties broken by id; the default
// order is id ascending (Fleetio's default is not documented: a client must
// not rely on it). An unknown filter or sort field, a bad per_page or a
// foreign cursor is 400 naming the parameter, so that a client's mistake
// shows here rather than as silently unfiltered data in production.
//
// current and future are computed from Options.Clock at each read:
// current while started_at <= now < ended_at, future before started_at.
// Times are in the account's time zone (Options.TimeZone, default -05:00),
// to the millisecond. Every change bumps updated_at strictly, even under a
// frozen test clock, so that a filter[updated_at][gte] sync cannot miss one.
//
// Failures on demand: FailNext(n, status) for the next n requests (429s
// carry Retry-After, SetRetryAfter, and Fleetio's error body), RateLimit(n)
// for n requests per minute of the fake's clock. Requests() logs what was
// asked, with X-Api-Version.
// Options.Latency delays every API request (a real Fleetio answers in
// about 100-300 ms); concurrent requests wait side by side.
//
// # Webhooks
//
// CreateAssignment, UpdateAssignment, DeleteAssignment and an API PATCH each
// queue a delivery: POST to Options.WebhookURL with Content-Type
// application/json, body {id, event, timestamp (account offset,
// milliseconds), triggered_by, payload (the assignment as the API shows it)},
// X-Fleetio-Webhook-Signature = Sign(secret, body), and the optional fixed
// Authorization header. A PATCH through the API triggers a delivery too
// (triggered_by the key's user): a bridge sees its own writes come back and
// must not loop on them.
//
// One worker sends deliveries in order. A non-2xx answer or no answer within
// WebhookTimeout schedules a retry after the next of RetryIntervals (default
// Fleetio's reported schedule; tests pass milliseconds) and the queue moves
// on, so a retried delivery lands after later ones, as with Fleetio. When
// the intervals run out the delivery is given up. DuplicateDeliveries sends
// each delivery twice (same id, same bytes), SetDeliveryDelay holds each for
// a while, PauseDeliveries and ResumeDeliveries(Reversed or Shuffled)
// reorder them. Deliveries() is the log of every delivery and attempt;
// Flush(ctx) waits until nothing is pending.
// Changed() is closed at the next change of the records or of the
// delivery log, for a watcher such as the simulator's page.
//
// # Caveats
//
// Fleetio merges rapid updates into one delivery; the fake sends one per
// change. Retries and delays run on real time, not Options.Clock. Only the
// assignment events are delivered (no vehicle_* or contact_* webhooks).
package fleetiotest
