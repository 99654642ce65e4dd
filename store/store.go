package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/smartbox-oss/smartbox/box"
)

var _ box.Store = (*Store)(nil)

// DefaultTimeout is how long Open waits for the file lock by default: long
// enough for a restarting daemon to let go, short enough that a technician's
// tool run beside a live daemon answers at once.
const DefaultTimeout = 2 * time.Second

// secretSize is the length of the per-box HMAC secret (the SHA-256 block
// wants at least 32 bytes of key to give its full strength).
const secretSize = 32

// Bucket names (see doc.go).
var (
	bucketMeta    = []byte("meta")
	bucketKeys    = []byte("keys")
	bucketFobs    = []byte("fobs")
	bucketGrants  = []byte("grants")
	bucketCodes   = []byte("codes")
	bucketDrivers = []byte("drivers")
	bucketLockout = []byte("lockout")
	bucketOutbox  = []byte("outbox")

	allBuckets = [][]byte{bucketMeta, bucketKeys, bucketFobs, bucketGrants, bucketCodes, bucketDrivers, bucketLockout, bucketOutbox}
)

// Keys in the meta bucket.
var (
	metaSchema    = []byte("schema")
	metaBoxID     = []byte("box_id")
	metaCreatedAt = []byte("created_at")
	metaSecret    = []byte("secret")
	metaRevision  = []byte("revision")
	metaLastSeq   = []byte("last_seq")
	// metaMergedRefusals counts refusals not stored at the outbox quota
	// (JSON, see outbox.go); absent when there are none.
	metaMergedRefusals = []byte("merged_refusals")

	lockoutState = []byte("state")
)

// Options configures Open.
type Options struct {
	// BoxID names the box. It is written when the file is created (and must
	// then satisfy box.ValidID). When opening an existing file a non-empty
	// BoxID must match the file's, so that a daemon never runs on another
	// box's card; an empty one accepts any (for inspection tools).
	BoxID string
	// Timeout is how long Open waits for the file lock (DefaultTimeout if 0).
	Timeout time.Duration
	// Now is the clock for "active/future" checks (time.Now if nil).
	Now func() time.Time
	// Slots is the box's slot count; Apply refuses keys outside 1..Slots.
	// 0: not checked.
	Slots int
	// Logger gets the store's few log lines (slog.Default if nil).
	Logger *slog.Logger
	// OutboxQuota is how many unacknowledged events the outbox holds before
	// refusal-class events are counted rather than stored
	// (DefaultOutboxQuota if 0 or less).
	OutboxQuota int
	// ReadOnly opens the file for reading only, under bbolt's shared lock:
	// tools inspecting a stopped box (smartboxctl status, events) can run
	// beside each other, never beside a daemon (its exclusive lock makes
	// Open fail with ErrInUse), and never change a byte of the file. Every
	// write is refused with an error wrapping ErrReadOnly; a file that does
	// not exist or needs a migration is refused at Open.
	ReadOnly bool
}

// Identity is who the store belongs to.
type Identity struct {
	BoxID         string
	CreatedAt     time.Time
	SchemaVersion int
}

// Store is a box's durable state in one bbolt file. It is safe for
// concurrent use; bbolt runs one writer at a time.
type Store struct {
	// immutable after Open
	db     *bolt.DB
	path   string
	now    func() time.Time
	slots  int
	quota  int  // outbox quota (Options.OutboxQuota)
	ro     bool // Options.ReadOnly
	log    *slog.Logger
	secret []byte
	id     Identity

	macs sync.Pool // keyed HMAC states: keying costs two SHA-256 blocks per lookup
}

// migration moves a file from version i (its index in migrations) to i+1,
// inside the one transaction that Open runs.
type migration func(tx *bolt.Tx, opts Options) error

// migrations is the place for format changes: append a function that moves
// version len(migrations) to the next one. Version 0 is an empty file.
var migrations = []migration{
	0: createV1,
}

// SchemaVersion is the file format this code writes.
var SchemaVersion = len(migrations)

// Open opens (and creates, when the file does not exist or is empty) the
// store at path. It waits up to opts.Timeout for the file lock and then
// fails with an error wrapping ErrInUse that names the holder's pid.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OutboxQuota <= 0 {
		opts.OutboxQuota = DefaultOutboxQuota
	}
	if opts.BoxID != "" && !box.ValidID(opts.BoxID) {
		return nil, fmt.Errorf("store: open %s: box id %q: want 1-128 letters, digits or ._:@-", path, opts.BoxID)
	}
	// Refuse to create a file we could not give an identity: otherwise a
	// typo in a path would leave an empty bbolt file behind.
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0):
		if opts.ReadOnly {
			return nil, fmt.Errorf("store: open %s read-only: there is no store there (wrong --data directory?)", path)
		}
		if opts.BoxID == "" {
			return nil, fmt.Errorf("store: open %s: the file does not exist and Options.BoxID is empty, so it cannot be created", path)
		}
	case err != nil:
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	case fi.IsDir():
		return nil, fmt.Errorf("store: open %s: is a directory", path)
	}

	db, err := openBolt(path, opts.Timeout, opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, now: opts.Now, slots: opts.Slots, log: opts.Logger, quota: opts.OutboxQuota, ro: opts.ReadOnly}
	if !s.ro {
		// A reader shares the lock: the pid file names the one writer.
		writePID(path)
	}
	if err := s.init(opts); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// openBolt opens the bbolt file, turning bbolt's errors and panics into ours.
func openBolt(path string, timeout time.Duration, readOnly bool) (db *bolt.DB, err error) {
	var file *os.File
	bopts := &bolt.Options{
		Timeout:  timeout,
		ReadOnly: readOnly, // O_RDONLY and a shared flock
		// Keep the file so that it can be closed if bbolt panics half-way
		// through Open on a damaged file (the lock goes with it).
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("store: open %s: %w: bbolt panicked: %v", path, ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, bopts)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("store: open %s: %w by %s (waited %s)", path, ErrInUse, holder(path), timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
		errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrInvalidMapping):
		return nil, fmt.Errorf("store: open %s: %w: %w", path, ErrCorrupt, err)
	case isSystemError(err):
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	default:
		// bbolt reports some damage with plain errors ("file size too
		// small 4096"): whatever is not the system's complaint is the file's.
		return nil, fmt.Errorf("store: open %s: %w: %w", path, ErrCorrupt, err)
	}
}

// isSystemError reports whether err comes from the operating system
// (permissions, missing directory, out of space) rather than the file's
// content.
func isSystemError(err error) bool {
	var pe *fs.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &errno)
}

func pidPath(path string) string { return path + ".pid" }

// writePID records who holds the lock, for the error a second opener gets.
// It is advice for people: failing to write it does not stop the store.
func writePID(path string) {
	_ = os.WriteFile(pidPath(path), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

func holder(path string) string {
	b, err := os.ReadFile(pidPath(path))
	if err != nil {
		return "another process"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "another process"
	}
	return "pid " + strconv.Itoa(pid)
}

// init checks the file's size and schema, runs migrations (creating a new
// file) and loads the identity.
func (s *Store) init(opts Options) error {
	version := 0
	err := s.view("open", func(tx *bolt.Tx) error {
		// A truncated file has pages past its end that bbolt would fault on:
		// catch the plain case before reading anything.
		if st, err := os.Stat(s.path); err == nil && st.Size() < tx.Size() {
			return fmt.Errorf("%w: file is %d bytes but its pages need %d (truncated?)", ErrCorrupt, st.Size(), tx.Size())
		}
		var err error
		version, err = schemaOf(tx)
		return err
	})
	if err != nil {
		return err
	}
	if version > SchemaVersion {
		return fmt.Errorf("store: open %s: %w: file has schema version %d, this program knows up to %d", s.path, ErrSchema, version, SchemaVersion)
	}
	if version < SchemaVersion && s.ro {
		return fmt.Errorf("store: open %s read-only: %w: the file has schema version %d and needs migrating to %d, which writes: start smartboxd on it once", s.path, ErrReadOnly, version, SchemaVersion)
	}
	if version < SchemaVersion {
		err := s.update("open", func(tx *bolt.Tx) error {
			v, err := schemaOf(tx) // again, under the write lock
			if err != nil {
				return err
			}
			for ; v < SchemaVersion; v++ {
				if err := migrations[v](tx, opts); err != nil {
					return fmt.Errorf("migrating schema %d to %d: %w", v, v+1, err)
				}
				if err := tx.Bucket(bucketMeta).Put(metaSchema, u64(uint64(v+1))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if version == 0 {
			s.log.Info("store created", "path", s.path, "box_id", opts.BoxID)
		} else {
			s.log.Info("store migrated", "path", s.path, "from", version, "to", SchemaVersion)
		}
	}
	err = s.view("open", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%w: bucket %q is missing", ErrCorrupt, b)
			}
		}
		secret := meta.Get(metaSecret)
		if len(secret) != secretSize {
			return fmt.Errorf("%w: meta secret is %d bytes, want %d", ErrCorrupt, len(secret), secretSize)
		}
		s.secret = bytes.Clone(secret)
		s.id.BoxID = string(meta.Get(metaBoxID))
		if !box.ValidID(s.id.BoxID) {
			return fmt.Errorf("%w: meta box id %q is not valid", ErrCorrupt, s.id.BoxID)
		}
		if err := s.id.CreatedAt.UnmarshalText(meta.Get(metaCreatedAt)); err != nil {
			return fmt.Errorf("%w: meta created_at: %v", ErrCorrupt, err)
		}
		s.id.SchemaVersion = SchemaVersion
		for _, k := range [][]byte{metaRevision, metaLastSeq} {
			if v := meta.Get(k); len(v) != 8 {
				return fmt.Errorf("%w: meta %s is %d bytes, want 8", ErrCorrupt, k, len(v))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if opts.BoxID != "" && opts.BoxID != s.id.BoxID {
		return fmt.Errorf("store: open %s: %w: the file is box %q, this is box %q", s.path, ErrWrongBox, s.id.BoxID, opts.BoxID)
	}
	return nil
}

// schemaOf reads the schema version; 0 is a file without any bucket.
func schemaOf(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		var names []string
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, strconv.Quote(string(name)))
			return nil
		})
		if len(names) > 0 {
			return 0, fmt.Errorf("%w: not a SmartBox store (no meta bucket; buckets %s)", ErrSchema, strings.Join(names, ", "))
		}
		return 0, nil
	}
	v := meta.Get(metaSchema)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: meta schema is %d bytes, want 8", ErrCorrupt, len(v))
	}
	n := binary.BigEndian.Uint64(v)
	if n > 1<<20 {
		return 0, fmt.Errorf("%w: schema version %d is not plausible", ErrCorrupt, n)
	}
	return int(n), nil
}

// createV1 lays out a new file: the buckets and the identity.
func createV1(tx *bolt.Tx, opts Options) error {
	if opts.BoxID == "" {
		return errors.New("Options.BoxID is empty: a new store needs the box id")
	}
	for _, b := range allBuckets {
		if _, err := tx.CreateBucket(b); err != nil {
			return fmt.Errorf("creating bucket %s: %w", b, err)
		}
	}
	secret := make([]byte, secretSize)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("making the box secret: %w", err)
	}
	created, err := opts.Now().UTC().MarshalText()
	if err != nil {
		return fmt.Errorf("creation time: %w", err)
	}
	meta := tx.Bucket(bucketMeta)
	for _, kv := range []struct{ k, v []byte }{
		{metaBoxID, []byte(opts.BoxID)},
		{metaCreatedAt, created},
		{metaSecret, secret},
		{metaRevision, u64(0)},
		{metaLastSeq, u64(0)},
	} {
		if err := meta.Put(kv.k, kv.v); err != nil {
			return err
		}
	}
	// The sync identity (see sync.go) is made with the file; files made
	// before it existed get it on first use.
	_, err = createSync(tx)
	return err
}

// Close releases the file. The pid file goes first, while the lock is still
// held, so that it never names a process that no longer has the file.
func (s *Store) Close() error {
	if !s.ro {
		_ = os.Remove(pidPath(s.path))
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// ReadOnly reports whether the store was opened with Options.ReadOnly.
func (s *Store) ReadOnly() bool { return s.ro }

// Path is the file's path.
func (s *Store) Path() string { return s.path }

// Identity says which box the store belongs to.
func (s *Store) Identity() (Identity, error) { return s.id, nil }

// Verify runs bbolt's consistency check over the whole file (page
// references, freelist). It reads every page: for tools, not for each start.
func (s *Store) Verify() error {
	var errs []error
	err := s.view("verify", func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("store: verify %s: %w: %w", s.path, ErrCorrupt, errors.Join(errs...))
	}
	return nil
}

// view runs fn in a read transaction, turning a bbolt panic or a memory
// fault on a damaged file into an error wrapping ErrCorrupt.
func (s *Store) view(op string, fn func(tx *bolt.Tx) error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = s.panicked(op, r)
		}
	}()
	return s.wrap(op, s.db.View(fn))
}

// update runs fn in a write transaction; an error or panic rolls it all
// back (bbolt's Update rolls back on both).
func (s *Store) update(op string, fn func(tx *bolt.Tx) error) (err error) {
	if s.ro {
		// Before bbolt, whose own refusal does not say which file or why.
		return fmt.Errorf("store: %s %s: %w: it was opened read-only (for inspection); stop smartboxd and use a tool that writes", op, s.path, ErrReadOnly)
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = s.panicked(op, r)
		}
	}()
	return s.wrap(op, s.db.Update(fn))
}

// wrap names the operation, and the file too when it is damaged.
func (s *Store) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case op == "open" || errors.Is(err, ErrCorrupt):
		return fmt.Errorf("store: %s %s: %w", op, s.path, err)
	default:
		return fmt.Errorf("store: %s: %w", op, err)
	}
}

func (s *Store) panicked(op string, r any) error {
	s.log.Error("store: panic in transaction, file may be damaged", "path", s.path, "op", op, "panic", r, "stack", string(debug.Stack()))
	return fmt.Errorf("store: %s %s: %w: %v", op, s.path, ErrCorrupt, r)
}

// codeHash is the index key of a code: HMAC-SHA256 under the box secret.
func (s *Store) codeHash(code string) []byte {
	m, _ := s.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, s.secret)
	}
	m.Reset()
	m.Write([]byte(code))
	sum := m.Sum(make([]byte, 0, sha256.Size))
	s.macs.Put(m)
	return sum
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// getU64 reads a big-endian counter from meta.
func getU64(tx *bolt.Tx, key []byte) (uint64, error) {
	v := tx.Bucket(bucketMeta).Get(key)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: meta %s is %d bytes, want 8", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
