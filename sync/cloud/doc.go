// Package cloud is the cloud side of SmartBox sync (see sync/README.md): it
// owns each box's replicated records (keys and grants) and their revision
// log, answers a box's "I have revision N" with signed deltas or a chunked
// snapshot (a box already at N gets a signed current answer, so it can tell
// an answered request from one lost with a killed replica), stores the events boxes send exactly once, and keeps their
// statuses and the results of remote commands. The bridge embeds it.
//
// # Basics
//
// The store has two engines behind one seam (store.go): the rules
// (validation, codes, revisions, deltas and snapshots, event numbering,
// budgets, retention) are written once against a per-box transaction, and
// an engine only stores and finds.
//
// bbolt (Options.Path, the default) keeps everything in one file, for one
// process. A top-level bucket "meta" holds the schema version and a check
// value of the code key; "boxes" holds one bucket per box id with:
//
//	meta      X25519 public key, revision, log start, highest event seq,
//	          last status
//	keys      key id -> box.Key
//	fobs      fob UID -> key id (one fob, one key: the box refuses more)
//	grants    grant id -> box.Grant, its code encrypted, the code's MAC
//	codes     code MAC ++ grant id -> empty (code uniqueness per box)
//	log       revision -> the key and grant ids that revision touched
//	events    seq -> box.Event
//	days      day received (cloud clock) -> highest seq stored that day
//	commands  command id -> the command and, once answered, its result
//
// PostgreSQL (Options.Postgres) keeps the same records in cloud_ tables
// (migrations/, applied by Open): cloud_meta, cloud_boxes (one row per box
// with its meta), cloud_keys, cloud_fobs, cloud_grants, cloud_codes,
// cloud_log, cloud_events (primary key box and seq), cloud_event_days and
// cloud_commands. Any number of Clouds (replicas) may share a database:
// every update of a box locks the box's row first, so its revisions are
// bumped one after the other in the database; an event batch that two
// replicas get at once is stored once and acked by both; the code key made
// by the first Open is the one every other Open takes. CopyToPostgres moves
// a bbolt store into an empty database.
//
// Every change (PutKey, PutGrant, PutBatch, ...) is one transaction that
// bumps the box's revision by one and logs the ids it touched; a change
// that changes nothing makes no revision. The log keeps the last LogLimit
// revisions. A delta is made from the log and the current records: a record
// the range touched is sent as it is now, or as a delete if it is gone. A
// box whose revision is older than the log, or 0, gets a snapshot.
//
// Whatever the cloud signs, the box must be able to apply, or the box would
// be stuck at its revision asking for the same batch forever. So the cloud
// refuses up front what the box's store refuses: invalid ids, a fob on two
// keys, a code that is not 4-16 digits, a new grant without a code, a
// driver_ref over 256 bytes. It also refuses a grant naming a key the box
// does not have, and a code another active or future grant of the box has
// (the error names both grants, never the code).
//
// Events are keyed by (box, seq). A batch stores only the run that follows
// the highest stored seq without a gap, and the signed ack says how far
// that run goes: duplicates, replays and reordered batches store nothing
// twice, and a gap stores nothing past it until the box resends.
//
// What a box's events may take is bounded: one event by MaxEventDetail and
// MaxEventSize (cut, or an EventDropped placeholder, and acked: the box must
// move on, or it would resend the event forever), a box's stored bytes by
// Options.EventBytes (DefaultEventBytes, a token bucket: what does not fit
// is neither stored nor acked, and the box sends it again later), its
// batches by Options.EventRate, and their age by Options.EventRetention
// (DefaultEventRetention, by the day the cloud received them, never the
// box's clock). Stats counts each; a box over the size or byte bounds gets
// one security log line per SecurityLogWindow with the counts, not one per
// event.
//
// # Replicas
//
// Serve with Options.ShareGroup joins an MQTT shared subscription group
// ($share/<group>/smartbox/v1/+/<leaf>, mosquitto 2, EMQX, HiveMQ, VerneMQ
// and the embedded broker): each box message goes to one replica, and
// every replica pushes to any box what it committed (records after Put*,
// commands). Each replica needs its own client id; a member's session is
// clean, so a dead replica takes no share of the messages (share.go says
// why, and what the protocol repairs). Every Serve also catches up a box
// whose status says it is online behind the store's revision at two scans
// in a row (catchUpEvery, 2 s): a revision committed by a replica that died
// before pushing it, or a sync request lost with one, reaches the box in
// seconds, not at its 15-minute periodic request; per box the catch-ups
// back off to one per 10 minutes per replica.
//
// What a replica keeps in memory is its own: the per-box EventRate,
// EventBytes and SyncRate buckets and the security log windows. With
// shared subscriptions a box's messages spread over the replicas, so a
// box's budgets are per replica: with N replicas a box may get up to N
// times each rate, and N security log lines per window. The stored bytes
// and events stay bounded by what a box sends (each event is stored once).
// The statuses are kept in the store, so every replica sees the last one
// stored; two statuses of one box handled by two replicas at once may be
// stored in either order (a will and the online status of a quick
// reconnect), which the box's next status (at most 5 minutes) mends.
//
// Everything the cloud signs for a box is addressed to the X25519 key the
// box was last registered with (wire.Audience), so what was signed for an
// old SD card does not verify on the re-flashed one.
//
// # Codes
//
// The cloud must keep codes to send them again in snapshots. They are
// stored encrypted with AES-256-GCM (bound to box and grant id) under a key
// derived from Options.CodeKey, and indexed by an HMAC for the uniqueness
// check. On the wire each batch seals them to the box's X25519 key
// (wire.NewCodeSealer). No error and no log line carries a code.
//
// # Caveats
//
// Without Options.CodeKey the code key is made at random and kept in the
// store (file or database) beside the encrypted codes: that keeps codes
// out of a casual dump or a backup grep, not from someone holding the whole
// store. A deployment that cares passes the key from elsewhere (a secret
// store).
//
// A re-flashed SD card under the same box id has a new store, so a new
// X25519 key and an outbox that restarts at seq 1. Registering the box again
// with the new key (which a re-flashed box needs anyway to open its codes)
// makes the cloud number its events on after the ones stored before, instead
// of taking them for duplicates; the box's first batch confirms it (it starts
// at seq 1) or undoes it (a box that kept its outbox keeps its numbering).
// Events and the ack carry the cloud's and the box's numbering respectively.
// A box re-flashed but not registered again cannot open new codes, and it
// refuses every ack, batch and command (they are signed for its old key):
// its events are taken as duplicates here but stay in its outbox until it
// is registered, and then go. register-box is part of re-flashing.
//
// A Have ahead of the cloud's revision means the cloud went back in time
// (restored from a backup). The cloud then moves its revision past the
// box's and answers with a snapshot, which the box takes.
package cloud
