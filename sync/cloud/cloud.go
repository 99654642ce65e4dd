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

	"github.com/jackc/pgx/v5/pgxpool"

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
	Path string // bbolt file of the cloud store
	// Postgres, when set, holds the store on that database (the cloud_
	// tables, migrated by Open) and Path is ignored. The pool is the
	// caller's: Close does not close it. Any number of Clouds may share one
	// database (see store_pg.go).
	Postgres *pgxpool.Pool
	Signer   wire.Signer // Ed25519 key the boxes trust
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
	// ShareGroup, when set, makes Serve a member of that MQTT shared
	// subscription group: it subscribes to the box topics as
	// $share/<ShareGroup>/<filter>, so that each box message reaches one
	// of the replicas serving with the same group on one broker and one
	// database (Postgres), with a clean session (see serve.go). Each
	// replica must then connect with a client id of its own (SetClientID
	// in Serve's client options; Serve refuses DefaultClientID). "" keeps
	// plain subscriptions and a persistent session: one cloud process.
	// A group name is at most 64 bytes and has no '/', '+', '#' or space.
	ShareGroup string
	Now        func() time.Time
	Logger     *slog.Logger
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
	// Messages counts the box messages this Cloud's Serve took from the
	// broker (every leaf, dropped ones too): with Options.ShareGroup, each
	// replica's share.
	Messages uint64
	// CatchUps counts the answers Serve sent unasked to a box that stayed
	// behind the store (share.go).
	CatchUps uint64
}

type counters struct {
	wrongBox, malformed, unknownBox, eventsThrottled, syncThrottled,
	queueFull, duplicateEvents, eventsPastGap,
	eventsOversize, eventsOverBudget, eventsExpired, messages, catchUps atomic.Uint64
}

// Cloud is the cloud side of sync: the per-box records, their log, the
// events the boxes sent, and (with Serve) the MQTT client answering boxes.
type Cloud struct {
	// immutable after Open
	st       store
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

	statusHooks []func(boxID string, st wire.Status, at time.Time) // OnStatus
}

// Store-wide meta names (bbolt's top-level "meta" bucket, PostgreSQL's
// cloud_meta).
const (
	metaSchema       = "schema"
	metaCodeKey      = "code_key"       // only when Options.CodeKey was nil
	metaCodeKeyCheck = "code_key_check" // HMAC(key, "check"): detects a wrong key at Open
)

const schemaVersion = 1

// Open opens (or creates) the cloud store: on opts.Postgres when set, else
// in the bbolt file at opts.Path.
func Open(opts Options) (*Cloud, error) {
	if opts.Path == "" && opts.Postgres == nil {
		return nil, errors.New("cloud: open: Options.Path is empty and Options.Postgres is nil")
	}
	where := opts.Path
	if opts.Postgres != nil {
		where = "postgres"
	}
	if len(opts.Signer.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("cloud: open %s: Options.Signer.Key is %d bytes, want an Ed25519 private key of %d",
			where, len(opts.Signer.Key), ed25519.PrivateKeySize)
	}
	if opts.CodeKey != nil && len(opts.CodeKey) != 32 {
		return nil, fmt.Errorf("cloud: open %s: Options.CodeKey is %d bytes, want 32", where, len(opts.CodeKey))
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
	if err := checkShareGroup(opts.ShareGroup); err != nil {
		return nil, fmt.Errorf("cloud: open %s: %w", where, err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("component", "cloud")
	var st store
	var err error
	if opts.Postgres != nil {
		st, err = openPostgres(opts.Postgres, log)
	} else {
		st, err = openBolt(opts.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("cloud: open %s: %w", where, err)
	}
	c := &Cloud{st: st, opts: opts, log: log, subscribed: make(chan struct{}),
		events: map[string]*bucket{}, syncs: map[string]*bucket{},
		eventBytes: map[string]*bucket{}, secWindows: map[string]*securityWindow{}}
	key, err := openCodeKey(st, opts.CodeKey)
	if err == nil {
		c.codeAEAD, c.codeMAC, err = codeCiphers(key)
	}
	if err != nil {
		st.close()
		return nil, fmt.Errorf("cloud: open %s: %w", st.where(), err)
	}
	return c, nil
}

// openCodeKey checks the store's schema and returns the code key: the one
// given, checked against the store's check value, or (given none) the one
// kept in the store, made on first Open. Every value is set only if absent
// and read back, so that two replicas opening a new database at once agree
// on one key.
func openCodeKey(st store, given []byte) (key []byte, err error) {
	err = st.meta(func(m metaTx) error {
		v, err := m.putIfAbsent(metaSchema, u64(schemaVersion))
		if err != nil {
			return err
		}
		if len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion {
			return fmt.Errorf("schema version %x, this code reads %d", v, schemaVersion)
		}
		key = given
		if key == nil {
			stored, err := m.get(metaCodeKey)
			if err != nil {
				return err
			}
			if stored == nil {
				check, err := m.get(metaCodeKeyCheck)
				if err != nil {
					return err
				}
				if check != nil {
					return fmt.Errorf("%w: it was made with Options.CodeKey, none given", ErrCodeKey)
				}
				fresh := make([]byte, 32)
				if _, err := rand.Read(fresh); err != nil {
					return err
				}
				if stored, err = m.putIfAbsent(metaCodeKey, fresh); err != nil {
					return err
				}
			}
			if len(stored) != 32 {
				return fmt.Errorf("the stored code key is %d bytes, want 32 (store damaged)", len(stored))
			}
			key = stored
		}
		check := keyCheck(key)
		stored, err := m.putIfAbsent(metaCodeKeyCheck, check)
		if err != nil {
			return err
		}
		if !hmac.Equal(stored, check) {
			return ErrCodeKey
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return key, nil
}

// Close closes the store. Stop Serve (cancel its context) first.
func (c *Cloud) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.closeErr
	}
	c.closed = true
	c.closeErr = c.st.close()
	return c.closeErr
}

// Stats returns the counters of dropped and refused input.
func (c *Cloud) Stats() Stats {
	s := &c.stats
	return Stats{WrongBox: s.wrongBox.Load(), Malformed: s.malformed.Load(), UnknownBox: s.unknownBox.Load(),
		EventsThrottled: s.eventsThrottled.Load(), SyncThrottled: s.syncThrottled.Load(),
		QueueFull: s.queueFull.Load(), DuplicateEvents: s.duplicateEvents.Load(), EventsPastGap: s.eventsPastGap.Load(),
		EventsOversize: s.eventsOversize.Load(), EventsOverBudget: s.eventsOverBudget.Load(),
		EventsExpired: s.eventsExpired.Load(), Messages: s.messages.Load(), CatchUps: s.catchUps.Load()}
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

func (c *Cloud) view(what, boxID string, fn func(boxTx) error) error {
	if err := c.st.view(boxID, fn); err != nil {
		return fmt.Errorf("cloud: %s: %w", what, err)
	}
	return nil
}

func (c *Cloud) update(what, boxID string, fn func(boxTx) error) error {
	if err := c.st.update(boxID, fn); err != nil {
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
	err := c.st.register(id, func(bt boxTx) error {
		m := bt.meta()
		if len(m.Pub) > 0 && !bytes.Equal(m.Pub, boxPublicKey) {
			if !rekey {
				return ErrOtherKey
			}
			// A new key is a new box store (re-flashed, replaced): its
			// outbox starts again at seq 1. Its events are stored after
			// the old ones instead of being taken for duplicates.
			m.SeqBase, m.SeqBasePending = m.HighSeq, true
			c.log.Warn("box registered with a new key: its event numbering starts again after the events stored so far",
				"box", id, "events_before", m.HighSeq)
		}
		m.Pub = bytes.Clone(boxPublicKey)
		return bt.setMeta(m)
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
	err = c.view("box key", boxID, func(bt boxTx) error {
		pub = bytes.Clone(bt.meta().Pub)
		return nil
	})
	return pub, err
}

// Boxes lists the registered box ids.
func (c *Cloud) Boxes() ([]string, error) {
	ids, err := c.st.boxes()
	if err != nil {
		return nil, fmt.Errorf("cloud: boxes: %w", err)
	}
	return ids, nil
}
