// Package link is the box side of SmartBox sync: it keeps the box's records
// equal to what the cloud says over MQTT, sends the outbox's events until the
// cloud acknowledges them, and runs the cloud's signed commands. The protocol
// is written down in sync/README.md; the messages are in sync/wire.
//
// # Basics
//
// One paho client (MQTT 3.1.1, client id = box id, CleanSession=false so the
// broker queues QoS 1 messages while the box is away, auto reconnect) and one
// worker goroutine. paho's handlers only put messages on an in-memory queue
// and return: a handler that blocks stalls paho's whole input and ends in
// "pingresp not received". The worker does every store read and write, so
// the link's state needs no locks.
//
// On connect the box publishes its status (retained; its last will is the
// same message with online false), subscribes to records, events/ack and
// command, asks for the records after the revision it holds, and starts
// draining the outbox.
//
// Records: a batch verifies against the cloud keys set at provisioning
// (store.Provision), its sealed codes open with the box's X25519 key
// (store.SyncKey), and it applies in one bbolt transaction with a
// records_applied event: a delta only on the revision it starts from, a
// snapshot's chunks staged in the store and applied together when all are
// there. A duplicate (to <= revision) is ignored; a gap asks again.
//
// Every sync request is answered: with records, or, when the box is
// current, with the cloud's current answer (an empty delta at its
// revision, sync/wire). A request with no verified batch within AckTimeout
// (the cloud replica that took it killed first, or the cloud down) is sent
// again, each further unanswered request waiting twice as long, up to
// MaxAckWait: the ack wait's rule, so a box whose cloud is down asks every
// five minutes at most. Any verified batch but a gap is an answer and
// resets the wait (a gap resets it too, but asks again); a delta lost
// after one that applied is sent by the cloud when it reads the status the
// box publishes after applying. A snapshot missing chunks asks again after
// AckTimeout of silence, then backs off as any unanswered request.
//
// Events: one EventBatch in flight. The outbox keeps events until a signed
// EventAck says the cloud stored them, because a QoS 1 PUBACK only says the
// broker has them; no ack within AckTimeout and the batch goes again, each
// further batch without an ack waiting twice as long up to MaxAckWait (a
// cloud that holds the box back over its byte budget is not sent the same
// batch every few seconds). The cloud de-duplicates by sequence number, so
// resending is always safe.
//
// Everything the cloud signs is addressed to the box's store (its X25519
// sync public key, see wire.Audience): an ack, batch or command signed for
// another store of the same box id (an old SD card's, replayed) is refused
// like a bad signature, and deletes, applies and runs nothing.
//
// Options.Changed is called on the worker after each thing it handled from
// the broker (connected, connection lost, records, an ack, a command): a
// bare "look again" for a watcher of the box's state (smartboxd's socket).
//
// # Caveats
//
// Anything refused (a bad or missing signature, another box's message, a
// code that does not open, a batch the store refuses, malformed JSON) applies
// nothing and leaves a sync_refused event in the outbox. Those events and
// the sync requests a refusal triggers are rate limited, so a flood of
// forged messages cannot fill the outbox or make the box hammer the cloud;
// the keypad keeps working throughout, since PIN checks never touch the link.
//
// paho's message store is the default memory store: durability lives in
// bbolt. paho's FileStore does not fsync and panics on I/O errors.
package link
