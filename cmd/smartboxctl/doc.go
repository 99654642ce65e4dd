// Command smartboxctl is the technician's tool for a SmartBox: it creates a
// box's store, imports keys and grants from a JSON file, shows a box
// (status, keys, grants, events, slots), and releases a slot on a running
// box. It provisions a box's card for sync in one step (provision), or by
// hand: it stores the cloud's signing keys (trust) and prints the box's own
// sync key (identity).
//
// Usage:
//
//	smartboxctl init    --data DIR --box-id ID
//	smartboxctl import  --data DIR [--slots N] FILE.json
//	smartboxctl status  [--socket PATH] [--data DIR] [--json]
//	smartboxctl keys    [--socket PATH] [--data DIR] [--json]
//	smartboxctl grants  [--socket PATH] [--data DIR] [--json]
//	smartboxctl events  [--socket PATH] [--data DIR] [--after SEQ] [--limit N] [--json]
//	smartboxctl slots   [--socket PATH] [--data DIR] [--json]
//	smartboxctl release SLOT --by WHO --reason WHY [--socket PATH]
//	smartboxctl provision --target DIR --box-id ID --bridge URL --token-file F [--profile NAME]
//	                      [--config FILE] [--name N] [--location L] [--broker URL] [--data-dir D]
//	                      [--expect-signing-key KID=BASE64|sha256:HEX] [--force]
//	smartboxctl provision --target DIR --box-id ID --offline --signing-key KID=BASE64 --ca-file F --broker URL [...]
//	smartboxctl provision --target DIR --certificate FILE
//	smartboxctl trust     --data DIR --cloud-key KID=BASE64 [--cloud-key ...] [--broker URL]
//	smartboxctl identity  --data DIR
//	smartboxctl doctor    [--config FILE] [--socket PATH] [--data DIR] [--json]
//	smartboxctl selftest  [--socket PATH] [--config FILE] [--yes] [--json] [--only locks,keys,...]
//
// doctor says what is wrong with a box and what to do, one finding per
// check ("ok", "PROBLEM" with what to do, or "skipped" with why): the
// config, GPIO pins the board lacks (with the board profile the machine
// fits), the reader's port, whether smartboxd answers on its socket, the
// store (missing, damaged, held by a daemon that does not answer), the way
// to the broker (DNS, TCP, TLS, the MQTT login, tried step by step when the
// daemon is not connected), the cloud's signing key (a signed round trip
// through the daemon), the clock and NTP, an outbox that does not drain,
// and a nearly full disk. It exits 1 when it found a problem. It changes
// nothing: the store is opened read-only, and the broker is tried only
// while smartboxd is not connected to it.
//
// provision runs on the technician's laptop with the box's SD card mounted:
// DIR is its data partition (the box's /var/lib/smartbox). From the bridge's
// admin API (GET /v1/provisioning) it takes the signing key, the CA and the
// broker URL; it makes the store (DIR/box.db: identity, code secret, X25519
// sync key, the signing key), a fresh ECDSA P-256 device key (DIR/tls/box.key,
// 0600, never sent), registers the box (POST /v1/boxes: sync key, slots from
// the config, name, location; no MQTT password) and has the bridge's CA sign
// a request for the key (POST /v1/boxes/{box}/certificate: DIR/tls/box.crt,
// CN = box id), with the CA in DIR/tls/ca.crt and DIR/smartboxd.toml rendered
// from the board profile (or --config, checked against the board's pins),
// its [cloud] naming those files relative to itself.
//
// --bridge is https://, or http:// to the bridge's own machine only (the
// admin token goes out, the trust anchors come back); the report prints the
// signing key id and the SHA-256 fingerprints of the signing key and the
// CA, and --expect-signing-key refuses a bridge whose key is not the one
// given. Links on the card (box.db, smartboxd.toml, tls and its files) are
// refused.
//
// Every file is staged in DIR/.smartbox-provision-* and fsynced before the
// bridge is asked to change anything, box.crt last, then renamed into place
// with box.db last: a failure before the bridge changed leaves DIR as it
// was; one after says what the bridge now holds, and running the same
// command again completes the card (the staged store, key and certificate
// are taken from the kept staging directory). A power cut during the
// renames leaves no new box.db (the identity), and running the same
// command again finishes the card the same way. Nothing is deleted: a file
// provision replaces moves to DIR/.smartbox-replaced-<UTC time>/. Another
// box's box.db is refused without --force; so is, by the bridge, a box id it
// has with another key or certificate (a mistyped --box-id would cut that
// box off): --force replaces it there too. For the same box id a run is
// idempotent: the store and device key stay, the box is registered again,
// and the signing key, CA, config and certificate are written only if
// missing, different or (the certificate) invalid for the key or no longer
// the bridge's current one; it says what it did, or "nothing to change".
//
// --offline asks nothing: it writes everything but box.crt and prints on
// stdout the adminapi.ProvisionRecord (registration and certificate request,
// JSON) for `smartbox-bridge register-box --record FILE --cert-out box.crt`;
// `provision --target DIR --certificate box.crt` then installs the
// certificate, checked for the card's key, box id and CA.
//
// trust replaces the set of cloud keys the box trusts with the ones
// given (several during a key rotation); each is an Ed25519 public key in
// standard or URL-safe base64, padded or not, as `smartbox-bridge
// signing-key` prints it. identity prints "box_id:", "sync_public_key:"
// (the box's X25519 key in standard base64, for `smartbox-bridge
// register-box --public-key`) and "cloud_keys:".
//
// The reading commands (status, keys, grants, events, slots) ask the running
// smartboxd on its admin socket (--socket, default boxsocket.DefaultPath,
// /run/smartbox/smartboxd.sock) and show the daemon's view. When nothing
// answers there (no socket file, a stale one, no answer within 3 s) they
// open the store DIR/box.db (--data, default /var/lib/smartbox) read-only,
// under bbolt's shared lock: nothing in the file changes. A running daemon
// holds an exclusive lock, so a daemon whose socket does not answer is
// reported as such ("smartboxd holds DIR/box.db but its socket PATH does not
// answer: ..."), with what to do. status prints the box in words (cloud,
// last sync and ack, the last refused message, outbox, clock and NTP, the
// keypad's lockout); --json prints each command's answer as JSON.
//
// release asks the running daemon to release a slot for a take or a
// return: it holds the locks, so without it nothing is released (use
// smartboxctl selftest for a stopped box's hardware). It is recorded as a
// slot_released_locally event with --by, --reason and the caller's uid.
//
// init, import, trust and identity write the store (identity makes the
// sync key on first use), so they need it to themselves: stop smartboxd
// first (provision writes a card, not a running box). While it runs they report that the store is in use by its pid.
//
// selftest tests the box on site: each slot's lock (released after asking,
// the key taken and put back where a key is present), every key sensor,
// every keypad key (each asked for, each timing out on its own), the fob
// reader, the clock (trusted, NTP), the store (bbolt check, identity), the
// broker connection and a signed round trip to the cloud. With smartboxd
// running it goes through its socket (a maintenance session: the box takes
// no codes meanwhile, and a client that goes quiet for a minute loses the
// session, every lock de-energised); with smartboxd stopped it opens the
// hardware and the store itself (--config). --only runs some groups
// (sensors, locks, keys, reader, clock, store, broker, signing). It prints
// a table (or --json, cmd/internal/selftest.Report) and exits 1 if any row
// failed; a failed row does not stop the test. ^C, a stop, a dropped SSH
// session (SIGHUP) and SIGQUIT end the test with every lock de-energised;
// SIGKILL cannot be caught, and on the stopped-box path a lock it leaves
// energised is de-energised only by smartboxd's next start (and the relays'
// hard maximum on time): prefer the socket path, where smartboxd itself
// ends a session whose client is gone.
//
// Codes are never shown: the store keeps only an HMAC of each code.
//
// Exit status: 0 on success, 1 on a failure, 2 on a usage error.
package main
