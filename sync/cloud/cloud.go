package cloud

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Defaults for Options left zero.
const (
	DefaultLogLimit     = 10_000
	DefaultChunkRecords = 2_000
	// MaxRecordSize bounds one key or grant as sent (JSON, with its sealed
	// code), so that any record fits a chunk of a snapshot with room to
	// spare. A grant naming about 400 keys is near it; real ones name one.
	MaxRecordSize = 64 << 10
	// openTimeout is how long Open waits for bbolt's file lock before
	// saying another process has the store.
	openTimeout = 5 * time.Second
)

// Rate is a token bucket: PerSecond tokens a second, at most Burst saved.
type Rate struct {
	PerSecond float64
	Burst     int
}

// DefaultEventRate lets a box drain a deep outbox (500 events a batch, one
// batch in flight) at full speed while stopping a box gone mad from filling
// the cloud's disk or starving the other boxes.
var DefaultEventRate = Rate{PerSecond: 50, Burst: 200}

// DefaultSyncRate bounds the sync requests answered per box: a snapshot of
// a big box is the costliest thing the cloud makes, and a box that asks
// for one in a loop must not keep the cloud busy. A box sends one on
// connect, after a gap and every 15 minutes, far below this.
var DefaultSyncRate = Rate{PerSecond: 1, Burst: 10}

// Options configure Open.
type Options struct {
	Path   string      // bbolt file of the cloud store
	Signer wire.Signer // Ed25519 key the boxes trust
	// CodeKey (32 bytes) encrypts codes at rest. Nil: a random key is made
	// on first Open and kept in the store file (see the package Caveats).
	// Once a store is made, it opens only with the same key.
	CodeKey      []byte
	LogLimit     int  // revisions kept per box for deltas; older -> snapshot
	ChunkRecords int  // records per snapshot chunk or delta message
	EventRate    Rate // event batches per box; excess dropped unacked
	// EventBytes is each box's budget of stored event bytes
	// (DefaultEventBytes); events past it are not stored nor acked.
	EventBytes Rate
	// EventRetention is how long events are kept (DefaultEventRetention).
	EventRetention time.Duration
	SyncRate       Rate // sync requests answered per box (Serve); excess dropped
	Now            func() time.Time
	Logger         *slog.Logger
}

// Errors, each wrapped with what and which. A code that another grant of
// the box holds is refused with box.ErrCodeInUse, as the box refuses it.
var (
	ErrUnknownBox = errors.New("unknown box")
	ErrNotFound   = errors.New("no such record")
	ErrThrottled  = errors.New("rate limit exceeded")
	ErrNoCode     = errors.New("grant has no code")
	ErrCodeKey    = errors.New("code key does not match this store")
	ErrInUse      = errors.New("store file in use by another process")
	// ErrOtherKey: RegisterBoxOnce found the box registered with another
	// public key (another card, or a mistyped box id).
	ErrOtherKey = errors.New("box is registered with another public key")
)

// Stats counts what the cloud dropped or refused, for metrics and tests.
type Stats struct {
	WrongBox        uint64 // a body naming a box other than its topic's (security event)
	Malformed       uint64 // undecodable JSON, unknown version, topic outside the tree
	UnknownBox      uint64 // a message from a box that was never registered
	EventsThrottled uint64 // event batches dropped by EventRate, or with no event within EventBytes
	SyncThrottled   uint64 // sync requests dropped by SyncRate
	QueueFull       uint64 // messages dropped because the workers were behind
	DuplicateEvents uint64 // events already stored, acked again
	EventsPastGap   uint64 // events not stored because one before them is missing
	// EventsOversize counts events stored cut short (Detail over
	// MaxEventDetail) or as an event_dropped placeholder (over
	// MaxEventSize): acked, so the box moves on.
	EventsOversize uint64
	// EventsOverBudget counts events not stored (nor acked) because their
	// box was over its EventBytes budget; the box sends them again later.
	EventsOverBudget uint64
	// EventsExpired counts events deleted after EventRetention.
	EventsExpired uint64
}

type counters struct {
	wrongBox, malformed, unknownBox, eventsThrottled, syncThrottled,
	queueFull, duplicateEvents, eventsPastGap,
	eventsOversize, eventsOverBudget, eventsExpired atomic.Uint64
}

// Cloud is the cloud side of sync: the per-box records, their log, the
// events the boxes sent, and (with Serve) the MQTT client answering boxes.
type Cloud struct {
	// immutable after Open
	db       *bolt.DB
	opts     Options
	log      *slog.Logger
	codeAEAD cipher.AEAD // codes at rest
	codeMAC  []byte      // HMAC key of the code index

	// mutable
	stats  counters
	mu     sync.Mutex
	events map[string]*bucket // per-box event rate
	// per-box stored event bytes (EventBytes)
	eventBytes map[string]*bucket
	secWindows map[string]*securityWindow // per-box security log lines
	syncs      map[string]*bucket         // per-box sync request rate
	hooks      []func(boxID string, evs []box.Event)
	serving    *server // non-nil while Serve runs
	// subscribed closes at the broker's first SUBACK for the box topics.
	subscribed     chan struct{}
	subscribedOnce sync.Once
	closed         bool
	closeErr       error
}

// Bucket names. Top level: meta (schema, code key check) and boxes, which
// has one nested bucket per box id holding the buckets below.
var (
	bucketMeta  = []byte("meta")
	bucketBoxes = []byte("boxes")

	bMeta     = []byte("meta")     // pub, rev, logstart, highseq, status
	bKeys     = []byte("keys")     // key id -> box.Key JSON
	bFobs     = []byte("fobs")     // fob uid -> key id
	bGrants   = []byte("grants")   // grant id -> storedGrant JSON
	bCodes    = []byte("codes")    // code MAC (32) ++ grant id -> empty
	bLog      = []byte("log")      // revision (u64 BE) -> logEntry JSON
	bEvents   = []byte("events")   // seq (u64 BE) -> box.Event JSON
	bCommands = []byte("commands") // command id -> commandRecord JSON
	// bDays indexes events by the day the cloud received them, for the
	// retention sweep: day (u64 BE, days since 1970 UTC) -> the highest
	// seq stored that day. Made on first use in stores made before it.
	bDays = []byte("days")

	metaSchema       = []byte("schema")
	metaCodeKey      = []byte("code_key")       // only when Options.CodeKey was nil
	metaCodeKeyCheck = []byte("code_key_check") // HMAC(key, "check"): detects a wrong key at Open

	kPub      = []byte("pub")
	kRev      = []byte("rev")
	kLogStart = []byte("logstart") // deltas can be made from any have in [logstart, rev]
	kHighSeq  = []byte("highseq")  // highest event seq stored with none missing before it
	// kSeqBase is added to a box's own seq to make the stored one: 0 until
	// the box is registered again with a new key (a re-flashed card whose
	// outbox restarts at 1), then the highest seq stored before.
	kSeqBase = []byte("seqbase")
	// kSeqBasePending marks a kSeqBase not yet confirmed by the box's first
	// batch: a batch starting at seq 1 confirms it (a fresh outbox); one
	// starting later means the box kept its outbox and its numbering, and
	// the base goes back to 0, so such a box is never stuck at a gap.
	kSeqBasePending = []byte("seqbase-pending")
	kStatus         = []byte("status")
)

const schemaVersion = 1

// Open opens (or creates) the cloud store at opts.Path.
func Open(opts Options) (*Cloud, error) {
	if opts.Path == "" {
		return nil, errors.New("cloud: open: Options.Path is empty")
	}
	if len(opts.Signer.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("cloud: open %s: Options.Signer.Key is %d bytes, want an Ed25519 private key of %d",
			opts.Path, len(opts.Signer.Key), ed25519.PrivateKeySize)
	}
	if opts.CodeKey != nil && len(opts.CodeKey) != 32 {
		return nil, fmt.Errorf("cloud: open %s: Options.CodeKey is %d bytes, want 32", opts.Path, len(opts.CodeKey))
	}
	if opts.LogLimit <= 0 {
		opts.LogLimit = DefaultLogLimit
	}
	if opts.ChunkRecords <= 0 {
		opts.ChunkRecords = DefaultChunkRecords
	}
	if opts.EventRate.PerSecond <= 0 || opts.EventRate.Burst <= 0 {
		opts.EventRate = DefaultEventRate
	}
	if opts.EventBytes.PerSecond <= 0 || opts.EventBytes.Burst <= 0 {
		opts.EventBytes = DefaultEventBytes
	}
	if opts.EventRetention <= 0 {
		opts.EventRetention = DefaultEventRetention
	}
	if opts.SyncRate.PerSecond <= 0 || opts.SyncRate.Burst <= 0 {
		opts.SyncRate = DefaultSyncRate
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("cloud: open %s: %w (waited %s for its lock)", opts.Path, ErrInUse, openTimeout)
		}
		return nil, fmt.Errorf("cloud: open %s: %w", opts.Path, err)
	}
	c := &Cloud{db: db, opts: opts, log: opts.Logger.With("component", "cloud"), subscribed: make(chan struct{}),
		events: map[string]*bucket{}, syncs: map[string]*bucket{},
		eventBytes: map[string]*bucket{}, secWindows: map[string]*securityWindow{}}
	var key []byte
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketBoxes); err != nil {
			return err
		}
		if v := meta.Get(metaSchema); v == nil {
			if err := meta.Put(metaSchema, u64(schemaVersion)); err != nil {
				return err
			}
		} else if len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion {
			return fmt.Errorf("schema version %x, this code reads %d", v, schemaVersion)
		}
		key = opts.CodeKey
		if key == nil {
			if stored := meta.Get(metaCodeKey); stored != nil {
				key = append([]byte(nil), stored...)
			} else if meta.Get(metaCodeKeyCheck) != nil {
				return fmt.Errorf("%w: it was made with Options.CodeKey, none given", ErrCodeKey)
			} else {
				key = make([]byte, 32)
				if _, err := rand.Read(key); err != nil {
					return err
				}
				if err := meta.Put(metaCodeKey, key); err != nil {
					return err
				}
			}
		}
		check := keyCheck(key)
		if stored := meta.Get(metaCodeKeyCheck); stored == nil {
			return meta.Put(metaCodeKeyCheck, check)
		} else if !hmac.Equal(stored, check) {
			return ErrCodeKey
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cloud: open %s: %w", opts.Path, err)
	}
	if c.codeAEAD, c.codeMAC, err = codeCiphers(key); err != nil {
		db.Close()
		return nil, fmt.Errorf("cloud: open %s: code key: %w", opts.Path, err)
	}
	return c, nil
}

// Close closes the store. Stop Serve (cancel its context) first.
func (c *Cloud) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.closeErr
	}
	c.closed = true
	c.closeErr = c.db.Close()
	return c.closeErr
}

// Stats returns the counters of dropped and refused input.
func (c *Cloud) Stats() Stats {
	s := &c.stats
	return Stats{WrongBox: s.wrongBox.Load(), Malformed: s.malformed.Load(), UnknownBox: s.unknownBox.Load(),
		EventsThrottled: s.eventsThrottled.Load(), SyncThrottled: s.syncThrottled.Load(),
		QueueFull: s.queueFull.Load(), DuplicateEvents: s.duplicateEvents.Load(), EventsPastGap: s.eventsPastGap.Load(),
		EventsOversize: s.eventsOversize.Load(), EventsOverBudget: s.eventsOverBudget.Load(),
		EventsExpired: s.eventsExpired.Load()}
}

func keyCheck(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("smartbox cloud code key check"))
	return m.Sum(nil)
}

// codeCiphers derives the at-rest cipher and the index MAC key from the
// code key, so that neither use weakens the other.
func codeCiphers(key []byte) (cipher.AEAD, []byte, error) {
	enc, err := hkdf.Key(sha256.New, key, nil, "smartbox cloud code at rest", 32)
	if err != nil {
		return nil, nil, err
	}
	mac, err := hkdf.Key(sha256.New, key, nil, "smartbox cloud code index", 32)
	if err != nil {
		return nil, nil, err
	}
	blk, err := aes.NewCipher(enc)
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, nil, err
	}
	return aead, mac, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// boxTx is one box's buckets inside a transaction.
type boxTx struct {
	id                                             string
	b                                              *bolt.Bucket // the box's own
	meta, keys, fobs, grants, codes, log, ev, cmds *bolt.Bucket
	days                                           *bolt.Bucket // nil in a store made before it (see daysBucket)
}

func openBox(tx *bolt.Tx, id string) (*boxTx, error) {
	b := tx.Bucket(bucketBoxes).Bucket([]byte(id))
	if b == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownBox, id)
	}
	bt := &boxTx{id: id, b: b, days: b.Bucket(bDays), meta: b.Bucket(bMeta), keys: b.Bucket(bKeys), fobs: b.Bucket(bFobs),
		grants: b.Bucket(bGrants), codes: b.Bucket(bCodes), log: b.Bucket(bLog), ev: b.Bucket(bEvents),
		cmds: b.Bucket(bCommands)}
	if bt.meta == nil || bt.keys == nil || bt.fobs == nil || bt.grants == nil || bt.codes == nil ||
		bt.log == nil || bt.ev == nil || bt.cmds == nil {
		return nil, fmt.Errorf("box %q: store damaged: a bucket is missing", id)
	}
	return bt, nil
}

func (c *Cloud) view(what, boxID string, fn func(*boxTx) error) error {
	err := c.db.View(func(tx *bolt.Tx) error {
		bt, err := openBox(tx, boxID)
		if err != nil {
			return err
		}
		return fn(bt)
	})
	if err != nil {
		return fmt.Errorf("cloud: %s: %w", what, err)
	}
	return nil
}

func (c *Cloud) update(what, boxID string, fn func(*boxTx) error) error {
	err := c.db.Update(func(tx *bolt.Tx) error {
		bt, err := openBox(tx, boxID)
		if err != nil {
			return err
		}
		return fn(bt)
	})
	if err != nil {
		return fmt.Errorf("cloud: %s: %w", what, err)
	}
	return nil
}

// RegisterBox adds a box, or changes the X25519 public key its codes are
// sealed to (a re-provisioned box). Records, log and events are kept.
func (c *Cloud) RegisterBox(id string, boxPublicKey []byte) error {
	return c.registerBox(id, boxPublicKey, true)
}

// RegisterBoxOnce is RegisterBox that refuses, with ErrOtherKey, to change
// the key of a box already registered with another one: re-keying cuts the
// box that holds the old key off its codes, so a wrong box id must not do
// it silently. The same key again is a no-op, as with RegisterBox.
func (c *Cloud) RegisterBoxOnce(id string, boxPublicKey []byte) error {
	return c.registerBox(id, boxPublicKey, false)
}

func (c *Cloud) registerBox(id string, boxPublicKey []byte, rekey bool) error {
	if !box.ValidID(id) {
		return fmt.Errorf("cloud: register box %q: %w: not a box id", id, box.ErrInvalidRecord)
	}
	// Refuse a key the sealer could not use now rather than at the first
	// batch: NewCodeSealer parses it the same way.
	if _, err := wire.NewCodeSealer(boxPublicKey, id, 1); err != nil {
		return fmt.Errorf("cloud: register box %q: X25519 public key: %w", id, err)
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketBoxes).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bMeta, bKeys, bFobs, bGrants, bCodes, bLog, bEvents, bCommands, bDays} {
			if _, err := b.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := b.Bucket(bMeta)
		if old := meta.Get(kPub); old != nil && !bytes.Equal(old, boxPublicKey) {
			if !rekey {
				return ErrOtherKey
			}
			// A new key is a new box store (re-flashed, replaced): its
			// outbox starts again at seq 1. Its events are stored after
			// the old ones instead of being taken for duplicates.
			high := getU64(meta, kHighSeq)
			if err := meta.Put(kSeqBase, u64(high)); err != nil {
				return err
			}
			if err := meta.Put(kSeqBasePending, []byte{1}); err != nil {
				return err
			}
			c.log.Warn("box registered with a new key: its event numbering starts again after the events stored so far",
				"box", id, "events_before", high)
		}
		return meta.Put(kPub, append([]byte(nil), boxPublicKey...))
	})
	if err != nil {
		return fmt.Errorf("cloud: register box %q: %w", id, err)
	}
	return nil
}

// boxKey is the X25519 public key the box was last registered with: what
// everything signed for the box is addressed to (wire.Audience), so that a
// message made for an old SD card does not verify on the new one.
func (c *Cloud) boxKey(boxID string) (pub []byte, err error) {
	err = c.view("box key", boxID, func(bt *boxTx) error {
		pub = bytes.Clone(bt.meta.Get(kPub))
		return nil
	})
	return pub, err
}

// Boxes lists the registered box ids.
func (c *Cloud) Boxes() ([]string, error) {
	var ids []string
	err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBoxes).ForEachBucket(func(k []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cloud: boxes: %w", err)
	}
	return ids, nil
}
