// Package wire is the SmartBox sync protocol's vocabulary: the MQTT topic
// tree, the messages with their fields, Ed25519 signing of what the cloud
// tells a box, and the sealing of codes so that no broker ever carries one in
// clear. The protocol itself (who sends what, when, and what each side does on
// a gap, a duplicate or a bad signature) is written down in sync/README.md.
//
// # Signing
//
// A signed message is an Envelope whose Body holds the exact bytes that were
// signed. The signature covers a domain string, the message kind, the box id
// and the box's store identity (Audience: a hash of the box's X25519 sync
// public key, the key it registered) as well as the body, so a batch signed
// for box A cannot be replayed to box B, a record batch cannot pass as a
// command, and an ack signed for a box's old SD card does not verify on the
// re-flashed card of the same id (ErrWrongAudience). Envelopes are at
// EnvelopeVersion 2 since the audience was added; plain messages stay at
// Version 1 (see EnvelopeVersion for why). Signing the body's bytes
// as sent, rather than a re-encoding, removes the need for a canonical JSON
// form on the verifying side: the box verifies the bytes, then decodes them.
//
// # Code sealing
//
// Grants carry codes. The cloud seals each code to the box's X25519 public
// key (set at provisioning): one ephemeral key pair per batch, a key derived
// with HKDF-SHA256 from the shared secret, the batch's box and revision, and
// AES-256-GCM per code with the grant id as additional data. The box opens
// them with its private key and keeps only an HMAC (see store). A broker, a
// log or a packet capture sees ciphertext.
package wire
