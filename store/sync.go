package store

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/smartbox-oss/smartbox/box"
)

// What sync (sync/link) keeps in the store, all in the "sync" bucket:
//
//	x25519         the box's X25519 private key (32 bytes): the cloud seals
//	               grant codes to its public half (see sync/wire)
//	provision      Provision as JSON: the cloud's signing keys
//	stage/         a snapshot being received: "to" and "chunks" (uint64
//	               big-endian) and one entry per chunk (chunk number as
//	               uint32 big-endian) holding its records with code HMACs
//	commands/      command id -> its result (empty while it runs)
//	command_order/ uint64 big-endian -> command id, oldest first, so the
//	               oldest ids can be forgotten
//
// The bucket is not part of the schema check in Open: files made before it
// existed get it, and the key, on first use (createSync is idempotent), so
// no migration is needed.
var (
	bucketSync         = []byte("sync")
	bucketStage        = []byte("stage")
	bucketCommands     = []byte("commands")
	bucketCommandOrder = []byte("command_order")

	syncX25519    = []byte("x25519")
	syncProvision = []byte("provision")
	stageTo       = []byte("to")
	stageChunks   = []byte("chunks")
)

// MaxCommandIDs is how many applied command ids the store remembers for
// de-duplication. Commands expire within minutes, so a thousand covers any
// redelivery a broker can make while a command is still valid.
const MaxCommandIDs = 1000

// MaxSnapshotChunks bounds the parts of one snapshot (a snapshot of
// 100,000 grants takes about a hundred 1 MiB chunks).
const MaxSnapshotChunks = 10000

// ErrNotProvisioned is returned by Provision before SetProvision.
var ErrNotProvisioned = errors.New("box is not provisioned for sync")

// Provision is what a box learns about its cloud when it is provisioned.
type Provision struct {
	// CloudKeys are the cloud's Ed25519 public keys by key id ("" is the
	// default key). More than one lets the cloud rotate keys.
	CloudKeys map[string]ed25519.PublicKey `json:"cloud_keys"`
	// BrokerURL is the broker the box was provisioned for (informational;
	// the daemon's config decides).
	BrokerURL string `json:"broker_url,omitempty"`
	// At is when the box was provisioned.
	At time.Time `json:"at,omitzero"`
}

// Validate checks that p has at least one well-formed key.
func (p Provision) Validate() error {
	if len(p.CloudKeys) == 0 {
		return errors.New("provision: no cloud signing key")
	}
	for kid, k := range p.CloudKeys {
		if kid != "" && !box.ValidID(kid) {
			return fmt.Errorf("provision: key id %q: want 1-128 letters, digits or ._:@-", kid)
		}
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("provision: cloud key %q is %d bytes, want %d", kid, len(k), ed25519.PublicKeySize)
		}
	}
	return nil
}

// createSync makes the sync bucket and the box's X25519 key if they are
// missing. It runs when a file is created and lazily for older files.
func createSync(tx *bolt.Tx) (*bolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists(bucketSync)
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", bucketSync, err)
	}
	if b.Get(syncX25519) == nil {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("making the box sync key: %w", err)
		}
		if err := b.Put(syncX25519, k.Bytes()); err != nil {
			return nil, err
		}
	}
	for _, name := range [][]byte{bucketStage, bucketCommands, bucketCommandOrder} {
		if _, err := b.CreateBucketIfNotExists(name); err != nil {
			return nil, fmt.Errorf("creating bucket %s/%s: %w", bucketSync, name, err)
		}
	}
	return b, nil
}

// SyncKey returns the box's X25519 private key, which opens the codes the
// cloud seals to the box. It is made with the file (or on first use for a
// file made before sync existed).
func (s *Store) SyncKey() (*ecdh.PrivateKey, error) {
	var raw []byte
	err := s.view("sync key", func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSync); b != nil {
			raw = bytes.Clone(b.Get(syncX25519))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if raw == nil {
		err = s.update("sync key", func(tx *bolt.Tx) error {
			b, err := createSync(tx)
			if err != nil {
				return err
			}
			raw = bytes.Clone(b.Get(syncX25519))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	k, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("store: sync key %s: %w: %v", s.path, ErrCorrupt, err)
	}
	return k, nil
}

// SyncPublicKey is the public half of SyncKey, for the cloud (provisioning
// sends it there).
func (s *Store) SyncPublicKey() ([]byte, error) {
	k, err := s.SyncKey()
	if err != nil {
		return nil, err
	}
	return k.PublicKey().Bytes(), nil
}

// SetProvision stores what the box knows of its cloud, replacing what it had.
func (s *Store) SetProvision(p Provision) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	v, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: encoding provision: %w", err)
	}
	return s.update("set provision", func(tx *bolt.Tx) error {
		b, err := createSync(tx)
		if err != nil {
			return err
		}
		return b.Put(syncProvision, v)
	})
}

// Provision returns what SetProvision stored, or an error wrapping
// ErrNotProvisioned.
func (s *Store) Provision() (Provision, error) {
	var p Provision
	found := false
	err := s.view("provision", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSync)
		if b == nil {
			return nil
		}
		v := b.Get(syncProvision)
		if v == nil {
			return nil
		}
		found = true
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("%w: provision does not decode: %v", ErrCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return Provision{}, err
	}
	if !found {
		return Provision{}, fmt.Errorf("store %s: %w", s.path, ErrNotProvisioned)
	}
	return p, nil
}

// stagedChunk is one snapshot chunk as staged: its records, with each code
// already replaced by its HMAC, so that no code sits in clear in the file
// even while a snapshot is half received.
type stagedChunk struct {
	Keys   []box.Key     `json:"keys,omitempty"`
	Grants []grantRecord `json:"grants,omitempty"`
}

func chunkKey(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

// StageChunk stages part chunk (1..chunks) of the snapshot that takes the
// records to revision to. Chunks may come in any order and more than once.
// A chunk of another snapshot (another to or chunk count) discards the stage
// first: only the newest snapshot can complete.
//
// When the chunk completes the stage, every chunk is applied as one
// snapshot Apply, together with batch.Events and the clearing of the stage,
// in the transaction that stages the chunk, and complete is true.
// batch.Events of a chunk that does not complete the stage are not kept.
//
// Per-chunk validation errors (and a snapshot older than the store's
// revision, *RevisionMismatchError) leave the stage as it was; an error when
// the whole snapshot is checked (a key in two chunks) discards it.
func (s *Store) StageChunk(to uint64, chunk, chunks int, batch Batch) (complete bool, err error) {
	if to == 0 {
		return false, errors.New("store: stage chunk: snapshot to revision 0")
	}
	if chunks < 1 || chunks > MaxSnapshotChunks || chunk < 1 || chunk > chunks {
		return false, fmt.Errorf("store: stage chunk: chunk %d of %d is not in 1..%d", chunk, chunks, MaxSnapshotChunks)
	}
	// Check the chunk on its own (as a snapshot from nothing, so that the
	// revision check passes) and hash its codes.
	batch.FromRevision, batch.ToRevision, batch.Snapshot = 0, to, true
	checked, hashes, err := s.checkBatch(batch)
	if err != nil {
		return false, fmt.Errorf("store: stage chunk %d of %d (revision %d): %w", chunk, chunks, to, err)
	}
	part := stagedChunk{Keys: checked.Keys, Grants: make([]grantRecord, len(checked.Grants))}
	for i, g := range checked.Grants {
		part.Grants[i] = grantRecord{Grant: g.Grant, CodeHash: hashes[i]}
	}
	enc, err := json.Marshal(part)
	if err != nil {
		return false, fmt.Errorf("store: stage chunk: encoding: %w", err)
	}
	now := s.now()
	var discard error // a snapshot that cannot apply: discard the stage, report this
	err = s.update("stage chunk", func(tx *bolt.Tx) error {
		sb, err := createSync(tx)
		if err != nil {
			return err
		}
		rev, err := getU64(tx, metaRevision)
		if err != nil {
			return err
		}
		if to < rev {
			return &RevisionMismatchError{Have: rev, To: to, Snapshot: true}
		}
		stage := sb.Bucket(bucketStage)
		if stagedU64(stage, stageTo) != to || stagedU64(stage, stageChunks) != uint64(chunks) {
			if stage, err = resetStage(sb); err != nil {
				return err
			}
			if err := stage.Put(stageTo, u64(to)); err != nil {
				return err
			}
			if err := stage.Put(stageChunks, u64(uint64(chunks))); err != nil {
				return err
			}
		}
		if err := stage.Put(chunkKey(chunk), enc); err != nil {
			return err
		}
		for n := 1; n <= chunks; n++ {
			if stage.Get(chunkKey(n)) == nil {
				return nil // more to come
			}
		}
		all, allHashes, err := s.loadStage(stage, to, chunks)
		if err == nil {
			all.Events = batch.Events
			_, err = s.applyChecked(tx, all, allHashes, now)
		}
		if err != nil {
			discard = fmt.Errorf("snapshot to revision %d (%d chunks): %w", to, chunks, err)
			_, rerr := resetStage(sb)
			return rerr
		}
		complete = true
		_, err = resetStage(sb)
		return err
	})
	if err != nil {
		return false, err
	}
	if discard != nil {
		return false, fmt.Errorf("store: stage chunk: %w (stage discarded)", discard)
	}
	return complete, nil
}

// loadStage reads every staged chunk into one snapshot batch and checks
// it as a whole (ids and fobs unique across chunks).
func (s *Store) loadStage(stage *bolt.Bucket, to uint64, chunks int) (Batch, [][]byte, error) {
	all := Batch{ToRevision: to, Snapshot: true}
	var hashes [][]byte
	for n := 1; n <= chunks; n++ {
		var part stagedChunk
		if err := json.Unmarshal(stage.Get(chunkKey(n)), &part); err != nil {
			return Batch{}, nil, fmt.Errorf("%w: staged chunk %d does not decode: %v", ErrCorrupt, n, err)
		}
		all.Keys = append(all.Keys, part.Keys...)
		for _, g := range part.Grants {
			all.Grants = append(all.Grants, box.GrantPut{Grant: g.Grant})
			hashes = append(hashes, g.CodeHash)
		}
	}
	checked, _, err := s.checkBatch(all)
	if err != nil {
		return Batch{}, nil, err
	}
	return checked, hashes, nil
}

// resetStage empties the stage.
func resetStage(sb *bolt.Bucket) (*bolt.Bucket, error) {
	if err := sb.DeleteBucket(bucketStage); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return nil, err
	}
	return sb.CreateBucket(bucketStage)
}

func stagedU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// StagedChunks reports the snapshot being staged: its revision, its chunk
// count and how many chunks are there (all zero when nothing is staged).
func (s *Store) StagedChunks() (to uint64, chunks, have int, err error) {
	err = s.view("staged chunks", func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSync)
		if sb == nil || sb.Bucket(bucketStage) == nil {
			return nil
		}
		stage := sb.Bucket(bucketStage)
		to, chunks = stagedU64(stage, stageTo), int(stagedU64(stage, stageChunks))
		return stage.ForEach(func(k, _ []byte) error {
			if len(k) == 4 {
				have++
			}
			return nil
		})
	})
	return to, chunks, have, err
}

// BeginCommand records that the command id is being run, unless it was
// seen before: then seen is true and result is what FinishCommand stored
// for it (nil if the box stopped before it finished). The store remembers
// the last MaxCommandIDs ids.
//
// Recording before running makes a command run at most once: a box that
// loses power between the two does not run it again on redelivery, which
// for opening a slot is the safe side.
func (s *Store) BeginCommand(id string) (seen bool, result []byte, err error) {
	if !box.ValidID(id) {
		return false, nil, fmt.Errorf("store: begin command: id %q: want 1-128 letters, digits or ._:@-", id)
	}
	err = s.update("begin command", func(tx *bolt.Tx) error {
		sb, err := createSync(tx)
		if err != nil {
			return err
		}
		cmds, order := sb.Bucket(bucketCommands), sb.Bucket(bucketCommandOrder)
		if v := cmds.Get([]byte(id)); v != nil {
			seen = true
			if len(v) > 0 {
				result = bytes.Clone(v)
			}
			return nil
		}
		if err := cmds.Put([]byte(id), []byte{}); err != nil {
			return err
		}
		n, err := order.NextSequence()
		if err != nil {
			return err
		}
		if err := order.Put(u64(n), []byte(id)); err != nil {
			return err
		}
		// Forget the oldest beyond the bound. Ids go in with consecutive
		// numbers and leave oldest first, so the numbers held are n-count+1..n.
		c := order.Cursor()
		var old [][]byte
		for k, v := c.First(); k != nil && n-seqOf(k)+1 > MaxCommandIDs; k, v = c.Next() {
			if err := cmds.Delete(v); err != nil {
				return err
			}
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := order.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return seen, result, err
}

// FinishCommand stores the result of a command begun with BeginCommand, to
// answer a redelivery with it.
func (s *Store) FinishCommand(id string, result []byte) error {
	if len(result) == 0 {
		return errors.New("store: finish command: empty result")
	}
	return s.update("finish command", func(tx *bolt.Tx) error {
		sb, err := createSync(tx)
		if err != nil {
			return err
		}
		cmds := sb.Bucket(bucketCommands)
		if cmds.Get([]byte(id)) == nil {
			return nil // forgotten already: nothing to answer a redelivery with
		}
		return cmds.Put([]byte(id), result)
	})
}
