// Command smartbox-bridge is the cloud side of SmartBox sync for a depot
// (sync/README.md): it keeps each box's keys and grants and their revision log
// (sync/cloud, in DATA/bridge.db), answers boxes over MQTT with signed record
// batches, stores the events they send exactly once, and sends signed
// commands. By default it runs its own MQTT broker (sync/broker: per-box ACL,
// persistent sessions, messages kept 30 days); a fleet points it at an
// external broker by URL instead.
//
// # Serve
//
//	smartbox-bridge serve --config /etc/smartbox/smartbox-bridge.toml
//
// On first start it makes DATA/signing.key, the Ed25519 key boxes trust
// (PKCS#8 PEM, mode 0600, never logged), and prints its public half as
// kid=base64 for `smartboxctl provision`. The key id is derived from the
// public key ("bridge-" and 8 hex digits of its SHA-256), so a new key gets a
// new id and boxes can hold old and new during a rotation.
//
// Broker accounts: the cloud's (broker.username, password from
// broker.password_file or a random one kept in DATA/cloud.passwd), and one per
// registered box (user name = box id) whose bcrypt hash lives in DATA/auth.db.
// Boxes with client certificates (CN = box id, signed by
// broker.client_ca_file) need no password.
//
// # Admin commands
//
// bbolt lets one process hold a file, and serve holds bridge.db; so the other
// subcommands talk to the running service over a local HTTP endpoint
// (admin.listen, loopback only, JSON) with the bearer token in
// DATA/admin.token (0600). serve writes the endpoint's address to
// DATA/admin.addr and removes it on stop. The later admin HTTP API grows from
// this endpoint.
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
//
// Errors are {"error": "..."} with 400 (bad input), 401 (token), 404 (unknown
// box or record) or 409 (code in use by another grant, named).
package main
