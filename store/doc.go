// Package store keeps a SmartBox's durable state in one bbolt file: the
// replicated records (keys and grants), the event outbox, the wrong-code
// lockout and the box's identity. It implements box.Store.
//
// # Basics
//
// Every state change and the events that record it are written in one bbolt
// read-write transaction, so after a crash or a power cut the file holds
// either all of a change or none of it. bbolt fsyncs (fdatasync) on every
// commit; the store never sets NoSync, because a box that loses a use count
// or an outbox event after a power cut would break its promise to the cloud.
//
// The file holds these buckets:
//
//	meta     schema version (uint64 big-endian), box id, creation time,
//	         a 32-byte random per-box secret made with crypto/rand when the
//	         file is created, record revision and the last event sequence
//	         number (both uint64 big-endian), "merged_refusals" (JSON,
//	         only while the outbox quota has counted refusals; see below),
//	         "clock_floor" (RFC 3339: the latest time the daemon vouched
//	         for with a trusted clock, RaiseClockFloor; it only rises)
//	keys     key id -> box.Key as JSON
//	fobs     fob UID (normalised with box.NormalizeFobUID) -> key id
//	grants   grant id -> box.Grant as JSON plus "code_hash", the HMAC of its
//	         code; never the code itself
//	codes    HMAC-SHA256(secret, code) ++ grant id -> empty
//	drivers  driver ref ++ 0x00 ++ grant id -> empty
//	lockout  "state" -> box.Lockout as JSON
//	outbox   event seq (uint64 big-endian) -> box.Event as JSON
//	sync     the box's X25519 key for sealed codes, the cloud's signing keys
//	         (Provision), a snapshot being staged chunk by chunk (codes as
//	         HMACs there too) and the ids of recent cloud commands; see
//	         sync.go. Made with the file, or on first use for older files.
//
// A code lookup computes the code's HMAC and seeks to it in codes: every
// entry with that 32-byte prefix names one grant. It is an index seek, never
// a scan of the grants. The grant record keeps the code's HMAC so that the
// index entry can be removed when the code changes or the grant goes.
//
// Event sequence numbers are gap-free and increasing. The last one given out
// lives in meta, not in the outbox, so that it survives AckEvents emptying
// the outbox and a restart after that.
//
// # Outbox quota
//
// An offline box keeps every event until the cloud acknowledges it, and
// refusals (a refused code, an unknown fob, ...) are as many as someone at
// the keypad cares to make. So the outbox has a quota (Options.OutboxQuota,
// DefaultOutboxQuota = 50,000 events, about 34 MB, seven weeks of a busy
// box offline). While it holds that many unacknowledged events or more:
//
//   - a refusal-class event (box.EventType.Refusal: code_refused,
//     fob_unknown, return_refused, key_absent, code_accepted, sync_refused,
//     refusals_merged) is not written; it is counted, per type with the
//     first and last time, in meta "merged_refusals", in the same
//     transaction as the rest of its change (a lockout, a use count);
//   - every other event (key_taken, key_returned, slot_released,
//     slot_relocked, lockout, keypad_attack, hardware_fault, box_started,
//     box_stopped, records_applied, ...) is written whatever the depth: they
//     record keys and slots and are bounded by physical actions, and losing
//     one would break the box's promise to the cloud;
//   - the first AckEvents or commit that finds room writes one
//     refusals_merged whose Count is how many were counted (a merged event
//     counts as its own Count) and whose Detail names the types, counts and
//     the time span, before that commit's own events.
//
// Written events are never renumbered or deleted to make room (they may be
// in flight to the cloud, which stores only a run without gaps), so the
// sequence stays gap-free; what the quota gives up is the detail of each
// refusal beyond it (which code, which fob), never a key's movement.
//
// Replicated records change only through Apply, with a revision check: a
// batch from revision r applies only to a store at revision r (a snapshot
// replaces everything and applies to any revision not newer than its own).
// Grants keep their local use counts across Apply: the box counts uses, not
// the cloud.
//
// # Caveats
//
// Codes are never written in clear, but the per-box secret sits in the same
// file as the HMACs. That defeats reading codes off a copied SD card at a
// glance and precomputed tables across boxes, not an offline search of all
// 10^6 six-digit PINs by someone who holds the card: keeping the secret out
// of the file (a secure element, a TPM) is the way to get that.
//
// bbolt takes an exclusive flock on the file: only one process (and only one
// Store in a process) can have it open. Open waits Options.Timeout for the
// lock and then fails with ErrInUse; the holder's pid is read from the
// sidecar file "<path>.pid" that Open writes after it gets the lock.
//
// bbolt can panic, or fault on a read past the end of a truncated file, when
// the file is damaged. Every transaction the store runs recovers such a panic
// (with runtime/debug.SetPanicOnFault on) and returns an error wrapping
// ErrCorrupt that names the file. A panic inside bbolt's own Open leaks that
// attempt's memory map; the file descriptor is closed.
//
// Byte slices read in a transaction point into the memory map and are valid
// only inside it: the store decodes or copies them before returning.
//
// The file format has a schema version. Open runs the migrations from the
// file's version to the one this code writes, in one transaction, and refuses
// a file written by newer code (ErrSchema) rather than guess at its layout.
package store
