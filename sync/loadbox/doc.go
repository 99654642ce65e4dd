// Package loadbox is a lightweight SmartBox box for load tests: it speaks
// the real wire protocol (sync/wire) over paho like sync/link, but keeps
// its records and its outbox in memory instead of bbolt, so one process
// can run a thousand of them against a bridge.
//
// # Basics
//
// A Box connects with CleanSession=false and client id = box id, publishes
// a retained status (its last will the same with online false),
// subscribes to records and events/ack, and asks for the records after its
// revision on every connect. A record batch is verified with the bridge's
// signing key for the box's own X25519 key (wire.Verifier), its codes
// opened (wire.CodeOpener) and applied as sync/link applies it: a delta
// only on the revision it starts from, a snapshot's chunks together, a
// duplicate (to <= revision) ignored, a gap answered with a new request.
// Keys and grants are checked with box's own validation (Key.Normalized,
// GrantPut.Validate).
//
// Events go from an in-memory outbox with seqs from 1, one EventBatch in
// flight (at most DrainBatch events, as sync/link sends them), resent with
// no verified EventAck after sync/link's wait (AckTimeout, doubling for
// each batch in a row without an ack, up to MaxAckWait); an ack deletes the
// prefix it names.
//
// A Fleet starts a bridge (sync/bridge.Start, embedded broker, in-process),
// registers N boxes through the admin API with a client certificate each
// from the bridge's CA (as smartboxctl provision does: no bcrypt login per
// connect), and connects them, at most ConnectParallel at once.
// RestartBridge closes the service and starts it again on the same ports
// and data, as cmd/internal/depot's RestartBroker does.
//
// # Caveats
//
// No keypad, no use counts, no code-uniqueness check at the box: the cloud
// refuses a clashing code before it signs one, and load tests need only
// the sync. Nothing is durable: a Box that stops forgets everything.
package loadbox
