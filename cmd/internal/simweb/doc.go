// Package simweb is the simulator's web page and its JSON and Server-Sent
// Events API, over a running installation (the Depot: the lead's
// cmd/internal/depot). The page is plain HTML, CSS and JavaScript embedded
// in the binary (static/), with no build step; it draws everything from one
// State object that /api/stream sends at once and again after each change,
// so there is no polling and a reconnecting page is whole again at once.
//
// # Routes
//
//	GET    /                                   the page (static/index.html, app.js, style.css)
//	GET    /api/state?box=ID                   State as JSON ("" or absent: the first box)
//	GET    /api/stream?box=ID                  text/event-stream of State (coalesced, StreamEvery)
//	POST   /api/boxes/{id}/keypad              {"keys": "123456#"}
//	POST   /api/boxes/{id}/slots/{n}/take      {}
//	POST   /api/boxes/{id}/slots/{n}/put-back  {}
//	PUT    /api/boxes/{id}/slots/{n}/fault     {"jammed"?: bool, "sensor_dead"?: bool}
//	POST   /api/boxes/{id}/reader              {"fob": UID} | {"garbage": true} | {"raw": base64}
//	PUT    /api/boxes/{id}/clock               {"at": RFC3339} | {"offset": "-2h"} | {"reset": true}
//	PUT    /api/boxes/{id}/network             {"cut": bool, "mode"?: "reset" | "blackhole"}
//	PUT    /api/boxes/{id}/power               {"on": bool}
//	POST   /api/boxes/{id}/forged-grant        {}
//	POST   /api/boxes/{id}/selftest            {}  (answers depot.SelftestRun: the report, exit_code, said)
//	POST   /api/broker/restart                 {}
//	POST   /api/fleetio/assignments            {"vehicle_id", "contact_id", "started_at"?, "ended_at"?}
//	PATCH  /api/fleetio/assignments/{id}       {"contact_id"?, "started_at"?, "ended_at"? (null: open)}
//	POST   /api/fleetio/assignments/{id}/end   {}
//	DELETE /api/fleetio/assignments/{id}
//	POST   /api/reservations/{assignment}/book {"from"?, "until"?, "contact"?}
//
// A clock offset is from the real time, not from the box's clock: "+2h"
// twice is still two hours ahead.
//
// An action answers 200 {"ok": true}, or the assignment it created or
// changed. An error is {"error": "..."}: 400 for a malformed request (with
// the reason), 404 for an unknown box, assignment or vehicle, 409 when the
// box is not running, the box socket's own status for what the box refused
// (a latched slot), 500 for the simulator failing.
//
// # Who may call
//
// The page has no login and drives the whole installation, so requests are
// checked before any route: a Host that is not 127.0.0.1, localhost or
// [::1] is refused (403; DNS rebinding) unless Options.AnyHost; a
// cross-origin write (Sec-Fetch-Site or Origin, http.CrossOriginProtection)
// is refused (403); a write with a body that is not application/json is
// refused (415), since a plain HTML form can post text/plain across sites.
//
// State carries the newest MaxInboxShown messages, MaxAssignmentsShown
// assignments and MaxBookingsShown bookings, with the count of older ones
// left out in omitted.
//
// # Caveats
//
// The page trusts nobody's strings: driver names and mail bodies come from
// outside, so app.js builds the DOM with textContent only. The stream holds
// a connection per open tab; MaxStreams bounds them.
package simweb
