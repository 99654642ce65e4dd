// Command smartbox-bridge is the cloud side of SmartBox sync for a depot
// (sync/README.md): it keeps each box's keys and grants and their revision log
// (sync/cloud, in DATA/cloud.db), answers boxes over MQTT with signed record
// batches, stores the events they send exactly once, and sends signed
// commands. By default it runs its own MQTT broker (sync/broker: per-box ACL,
// persistent sessions, messages kept 30 days); a fleet points it at an
// external broker by URL instead.
//
// # Serve
//
//	smartbox-bridge serve --config /etc/smartbox/smartbox-bridge.toml
//
// serve maps the config to sync/bridge's Options (reading the secret and
// certificate files it names) and runs the service that package is; this
// command holds the config, the wiring and the admin CLI. The data
// directory's files are listed in sync/bridge's doc; one from an older
// release (bridge.db, fleetio.db, auth.db) is renamed on first start.
//
// On first start it makes DATA/signing.key, the Ed25519 key boxes trust
// (PKCS#8 PEM, mode 0600, never logged), and prints its public half as
// kid=base64 for `smartboxctl provision`. The key id is derived from the
// public key ("bridge-" and 8 hex digits of its SHA-256), so a new key gets a
// new id and boxes can hold old and new during a rotation.
//
// The data directory holds the keys and stores: serve makes it 0700, and
// tightens an existing looser one (saying so in the log). Files named in
// the config that hold secrets (broker.password_file,
// notify.email.password_file, notify.sms.auth_token_file,
// cloud.code_key_file, and --secrets-file) must not be readable by group
// or others: serve refuses to start with the file and "chmod 600" in the
// message, the check smartboxd makes (sync/secretfile).
//
// Broker accounts: the cloud's (broker.username, password from
// broker.password_file or a random one kept in DATA/cloud.passwd), and one per
// registered box (user name = box id) whose bcrypt hash lives in DATA/boxes.db.
// Boxes with client certificates (CN = box id, signed by the bridge's CA
// through register-box --record or smartboxctl provision, or by
// broker.client_ca_file) need no password; a bridge-CA certificate works
// only while it is the box's latest.
//
// # Admin commands
//
// bbolt lets one process hold a file, and serve holds cloud.db; so the other
// subcommands talk to the running service over a local HTTP endpoint
// (admin.listen, loopback only, JSON) with the bearer token in
// DATA/admin.token (0600). serve writes the endpoint's address to
// DATA/admin.addr and removes it on stop.
//
// Codes and passwords go in, never out: no answer, table or log line carries
// one. The code is a command-line flag (--code), so it is visible in `ps` and
// shell history on the bridge machine while the command runs; the admin API
// (PUT /v1/boxes/{box}/grants/{grant}) takes it in a body for callers that
// care.
//
// # Endpoints
//
//	GET    /v1/signing-key
//	GET    /v1/boxes                                 id, cloud revision, last status
//	POST   /v1/boxes                                 {id, public_key, password}
//	GET    /v1/boxes/{box}/records                   keys and grants, without codes
//	PUT    /v1/boxes/{box}/keys/{key}                {name, fob_uid, slot}
//	DELETE /v1/boxes/{box}/keys/{key}
//	PUT    /v1/boxes/{box}/grants/{grant}            {kind, code, key_ids, from, until, max_uses, driver_ref}
//	DELETE /v1/boxes/{box}/grants/{grant}
//	POST   /v1/boxes/{box}/grants/{grant}/revoke
//	GET    /v1/boxes/{box}/events?after=N&limit=M
//	POST   /v1/boxes/{box}/commands                  {kind, slot, by, reason, ttl}
//	GET    /v1/boxes/{box}/commands/{id}             the box's answer, once there
//	GET    /v1/provisioning                          broker URL, CA, signing key for a new box
//	POST   /v1/boxes/{box}/certificate               {csr}: the box's client certificate from the bridge's CA
//
//	GET    /v1/bookings                              every grant of every box; Fleetio's marked, with events
//	GET    /v1/fleetio/status                        connected, webhook URL, code mode, counters
//	POST   /v1/fleetio/connect                       {api_key, account_token, webhook_secret, authorization, base_url, code_mode}
//	POST   /v1/fleetio/disconnect                    the bookings revoked and kept
//	PUT    /v1/fleetio/code-mode                     {mode}: per_assignment, per_driver, driver_own
//	GET    /v1/fleetio/vehicles                      Fleetio's vehicles with their links
//	PUT    /v1/fleetio/links/{vehicle}               {box_id, key_id, method}
//	DELETE /v1/fleetio/links/{vehicle}
//	GET    /v1/fleetio/reservations                  pending Prompt reservations
//	POST   /v1/fleetio/reservations/{assignment}/book {from, until, contact}
//	GET    /v1/fleetio/drivers                       drivers with a code (never the code)
//	PUT    /v1/fleetio/drivers/{contact}/code        {code}
//	DELETE /v1/fleetio/drivers/{contact}/code
//	POST   /v1/fleetio/reconcile                     compare with Fleetio now
//
// Errors are {"error": "..."} with 400 (bad input), 401 (token), 404 (unknown
// box or record), 409 (code in use by another grant, named; Fleetio not
// connected) or 502 (Fleetio refused a call).
//
// Without the token, on the same loopback listener: GET /metrics (Prometheus
// text: webhooks by outcome, grants pushed and revoked, boxes by status,
// queue depth, Fleetio API errors, notifications, overdue keys, reconcile
// repairs, cloud drops, Go runtime) and GET /healthz.
//
// # Fleetio
//
// The Fleetio integration (sync/bookings, in DATA/bookings.db) runs inside
// serve. Its public listener (fleetio.public_listen, behind a TLS proxy)
// serves POST /webhooks/fleetio, GET /access/{token} (a booking's page for
// the driver) and GET /healthz. It is the internet's way in, so it bounds
// what a client that has shown nothing can cost (sync/bridge listeners.go): headers
// within 10 s and 16 KiB, a whole request within 20 s, idle connections
// closed after a minute; a webhook without a well-formed signature header
// is refused (401) before its body is read, bodies are at most
// fleetio.max_body (64 KiB by default) and at most 32 are read at once,
// at most fleetio.max_bodies_per_address (2) from one client address, each
// within 5 s (503 with Retry-After beyond that; 408 for a slow body).
// Behind a reverse proxy, name it in fleetio.trusted_proxies so that the
// share is counted by its X-Forwarded-For; a fixed Authorization on the
// webhook (connect's "authorization = ...") keeps forgers from having any
// body read. 400 slow unsigned POSTs of 1 MiB
// each took the bridge from 15 MB to 600-780 MB before, 400 with a forged
// signature to 870 MB; both now leave it under 30 MB
// (BenchmarkSlowUnsignedPOSTsRSS, BenchmarkSlowForgedPOSTsRSS). Set it up
// with:
//
//	smartbox-bridge register-box --id depot-1 --public-key B64 --slots 12 --name "Depot North" --location "12 Fleet Way"
//	smartbox-bridge put-key --box depot-1 --key van-7 --fob 0100073400 --slot 3 --name "Van 7"
//	smartbox-bridge fleetio connect --secrets-file fleetio.secrets    # or on stdin
//	smartbox-bridge fleetio vehicles
//	smartbox-bridge fleetio link 1234 --box depot-1 --key van-7 --method automatic
//
// and point Fleetio's webhook (vehicle assignment events) at the URL connect
// prints. The secrets file (mode 0600, refused otherwise) holds
// "api_key = ...", "account_token = ...", "webhook_secret = ..." and
// optionally "authorization = ..." lines; the secrets never go on the
// command line. A driver's own code (code mode driver_own) is read from
// stdin too: `echo ... | smartbox-bridge fleetio driver-code CONTACT` is
// for scripts; typed, it stays out of shell history.
//
// Automatic vehicles are booked as Fleetio assigns them; Prompt ones wait in
// `fleetio reservations` (the admin is mailed) for `fleetio book ASSIGNMENT
// [--from --until --contact email|sms]`. `bookings --events` shows every
// grant of every box, the integration's marked, with what happened at the
// box. Every fleetio.reconcile_every the bridge compares Fleetio's
// assignments with its bookings and looks for overdue keys; `fleetio
// reconcile` does it now. An overdue key counts as back only on a return
// the slot's sensor confirms (fleetio.return_settle, default 2s; see
// sync/bookings "A fob alone is weak evidence"). The admin is told at once of
// a box's keypad_attack (wrong codes past its threshold) and of a fob
// return the slot did not confirm; both are counted in /metrics.
//
// Messages go by [notify.email] (SMTP) and [notify.sms] (a Twilio-shaped
// gateway), rendered by sync/notify's templates (notify.templates_dir
// overrides them). With neither, nobody is messaged: the PIN is only in
// the assignment's keycafe_access_code field.
package main
