// Package bridge is the running bridge service: what `smartbox-bridge serve`
// runs, as a library, so that the simulator, the chaos run and tests start a
// whole bridge in-process. It ties together the cloud store (sync/cloud),
// the box accounts, the embedded MQTT broker (sync/broker) or an external
// one, the Fleetio integration (sync/bookings), the admin API and the
// public listener, and serves /metrics.
//
// # Basics
//
// Start(ctx, Options) opens the data directory, listens, and serves until
// ctx is done, Close is called, or a part fails (Done closes; Close says
// what failed). Options are plain values: the caller (cmd/smartbox-bridge)
// reads config and secret files and passes what they hold. A listen
// address left "" is "127.0.0.1:0", so a test gets free ports and asks the
// Service where it listens (AdminURL, PublicURL, BrokerURL). Ready closes
// once the cloud is subscribed to the boxes' topics: a box started after it
// is answered from its first message.
//
// The library prints nothing: the signing key's public line, which serve
// prints for `smartboxctl provision`, is SigningKeyLine.
//
// On bbolt (the default, one process) the data directory (made 0700)
// holds, by role:
//
//	cloud.db      sync/cloud: every box's keys, grants, revision log, events
//	bookings.db   sync/bookings: Fleetio settings (0600), links, webhook queue, bookings
//	boxes.db      box accounts: MQTT password hashes (bcrypt), slot counts,
//	              each box's current certificate serial and expiry
//	broker/       the embedded broker's sessions and retained messages
//	signing.key   the Ed25519 key boxes trust (PKCS#8 PEM, 0600)
//	ca.key        the bridge CA's ECDSA P-256 key (PKCS#8 PEM, 0600)
//	ca.crt        the bridge CA's certificate (PEM): boxes trust it for the
//	              broker, and it signs their client certificates
//	admin.token   the admin API's bearer token (0600)
//	admin.addr    where the admin API listens, while the service runs
//	cloud.passwd  the cloud's embedded-broker password when none is given (0600)
//
// # On PostgreSQL, as replicas
//
// With Options.Store.URL (the config's [store] url) every store is in one
// PostgreSQL database instead of the files above: the cloud's (cloud_*
// tables, sync/cloud), the integration's (bookings_*, sync/bookings), the
// box accounts and the secrets (bridge_*: the signing key, the CA and the
// admin token, made by the first replica to start and read by the others),
// each with its own migrations, applied at start under an advisory lock.
// Any number of replicas (`smartbox-bridge serve` processes, each with a
// data directory of its own for admin.addr and admin.token) may run on it:
// a box's revisions are serialised by its row in the database, event
// ingest is idempotent by (box, seq), and the periodic work (reconcile,
// expiry, overdue keys) runs once per round across replicas (rounds_pg.go:
// the first replica to ask in the round's window of the database's clock
// takes it). A data directory that holds a depot's signing key is refused
// on a database without one (the depot's boxes trust that key):
// MoveToPostgres (`smartbox-bridge migrate`) moves a depot into an empty
// database, and a marker keeps replicas off it until the move is done.
// /readyz on the public listener says whether a replica may take traffic
// (subscribed at the broker, its database answering, not stopping); each
// replica serves its own /metrics (replica_info names it).
//
// # Certificates
//
// The bridge's CA (ca.go) is made on first start and kept: boxes trust it,
// so a data directory with only one of ca.key and ca.crt is refused with
// both named, never given a new CA (unless ca.making says the first start
// was cut while writing them: nobody can have the CA yet, and it is made
// again). It issues the embedded broker's TLS
// certificate at each start when Options.Broker.TLS brings none (for
// Broker.TLSNames), and is always among that listener's client CAs. GET
// /v1/provisioning hands out its certificate with the broker URL and the
// signing key; POST /v1/boxes/{box}/certificate signs a registered box's
// CSR (CN = box id, client authentication only, 5 years). The broker lets
// a bridge-CA certificate in only with the serial last issued for its box,
// so re-provisioning a box shuts out the certificate on its old card;
// certificates of an operator's own client CA are not checked this way. A
// box with a bridge-CA certificate no longer logs in with a password
// (issuing clears it, and the broker refuses one). Because a new key or
// certificate cuts the old card off, POST /v1/boxes with another sync key
// than the box's, and a certificate for another key while the box has a
// current one, are 409 Conflict unless the request says replace (a
// mistyped box id must not take over a box).
//
// The admin API (admin.go, admin_fleetio.go, admin_provision.go) answers
// with its own types (api.go, and the provisioning ones, with the client,
// in sync/bridge/adminapi), never the stores' structs: codes, sealed PINs and Fleetio's
// secrets go in and never come out.
//
// # Caveats
//
// Older releases named the stores bridge.db (the cloud's), fleetio.db (the
// integration's) and auth.db (the box accounts). Start renames them before
// opening anything; a directory with both an old and a new name for one
// store is refused with both named, as only the admin knows which holds
// the data.
//
// bbolt lets one process hold a file: a second service on the same data
// directory fails to start (within a couple of seconds) rather than wait.
//
// Close waits up to 5 s for requests in flight (a webhook being stored),
// then for the integration's workers to stop between deliveries.
package bridge
