package store

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
)

func TestIdentity(t *testing.T) {
	s, clock := newStore(t)
	id, err := s.Identity()
	require.NoError(t, err)
	require.Equal(t, Identity{BoxID: "box-1", CreatedAt: t0, SchemaVersion: SchemaVersion}, id)
	require.Equal(t, 1, SchemaVersion)

	s = reopen(t, s, clock)
	id2, err := s.Identity()
	require.NoError(t, err)
	require.True(t, id.CreatedAt.Equal(id2.CreatedAt))
	require.Equal(t, id.BoxID, id2.BoxID)

	// Two boxes get different secrets: the same code hashes differently.
	other, _ := newStore(t)
	require.NotEqual(t, s.codeHash("123456"), other.codeHash("123456"))
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		setup   func(path string)
		opts    Options
		wantErr string
		wantIs  error
	}{
		{name: "new file needs a box id", opts: Options{}, wantErr: "Options.BoxID is empty"},
		{name: "invalid box id", opts: Options{BoxID: "box 1"}, wantErr: `box id "box 1"`},
		{name: "directory", setup: func(p string) { require.NoError(t, os.Mkdir(p, 0o755)) }, opts: Options{BoxID: "b"}, wantErr: "is a directory"},
		{name: "another box's file", setup: func(p string) {
			s, err := Open(p, Options{BoxID: "box-a"})
			require.NoError(t, err)
			require.NoError(t, s.Close())
		}, opts: Options{BoxID: "box-b"}, wantIs: ErrWrongBox, wantErr: `the file is box "box-a", this is box "box-b"`},
		{name: "empty box id opens any box", setup: func(p string) {
			s, err := Open(p, Options{BoxID: "box-a"})
			require.NoError(t, err)
			require.NoError(t, s.Close())
		}, opts: Options{}},
		{name: "empty file is created", setup: func(p string) { require.NoError(t, os.WriteFile(p, nil, 0o600)) }, opts: Options{BoxID: "box-a"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
			if tt.setup != nil {
				tt.setup(path)
			}
			s, err := Open(path, tt.opts)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, s.Close())
				_, err := os.Stat(pidPath(path))
				require.ErrorIs(t, err, os.ErrNotExist, "Close removes the pid file")
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			_, err = os.Stat(pidPath(path))
			require.ErrorIs(t, err, os.ErrNotExist, "no pid file left behind")
		})
	}
	_, err := os.Stat(filepath.Join(dir, "0.db"))
	require.ErrorIs(t, err, os.ErrNotExist, "no file made without a box id")
}

func TestOpenInUse(t *testing.T) {
	s, _ := newStore(t)
	timeout := 200 * time.Millisecond
	start := time.Now()
	_, err := Open(s.Path(), Options{BoxID: "box-1", Timeout: timeout})
	require.ErrorIs(t, err, ErrInUse)
	require.ErrorContains(t, err, fmt.Sprintf("in use by pid %d", os.Getpid()))
	require.Less(t, time.Since(start), timeout+time.Second)

	// Without a pid file the message still says something.
	require.NoError(t, os.Remove(pidPath(s.Path())))
	_, err = Open(s.Path(), Options{BoxID: "box-1", Timeout: timeout})
	require.ErrorContains(t, err, "in use by another process")

	// The failed attempts did not disturb the holder.
	_, err = s.Commit(box.Change{Events: []box.Event{{Type: box.EventBoxStarted}}})
	require.NoError(t, err)
}

func TestOpenCorrupt(t *testing.T) {
	// A real store with some pages of records, for truncating and damaging.
	build := func(t *testing.T) string {
		s, _ := newStore(t)
		var gs []box.GrantPut
		for i := range 2000 {
			gs = append(gs, booking(fmt.Sprintf("g-%05d", i), fmt.Sprintf("%08d", i), "k1"))
		}
		mustApply(t, s, Batch{Grants: gs})
		require.NoError(t, s.Close())
		return s.Path()
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	tests := []struct {
		name   string
		damage func(t *testing.T) string
		// readErr: the damage may only show on reading (Open passes, a
		// full read fails); either way the error must wrap ErrCorrupt.
		readErr bool
	}{
		{"random bytes", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "junk.db")
			require.NoError(t, os.WriteFile(p, random(64<<10), 0o600))
			return p
		}, false},
		{"short garbage", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "short.db")
			require.NoError(t, os.WriteFile(p, []byte("hello"), 0o600))
			return p
		}, false},
		{"truncated to half", func(t *testing.T) string {
			p := build(t)
			fi, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(p, fi.Size()/2))
			return p
		}, false},
		{"truncated to one page", func(t *testing.T) string {
			p := build(t)
			require.NoError(t, os.Truncate(p, 4096))
			return p
		}, false},
		{"both meta pages overwritten", func(t *testing.T) string {
			p := build(t)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			_, err = f.WriteAt(random(2*4096), 0)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			return p
		}, false},
		{"all but the meta pages overwritten", func(t *testing.T) string {
			p := build(t)
			fi, err := os.Stat(p)
			require.NoError(t, err)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			_, err = f.WriteAt(random(int(fi.Size())-2*4096), 2*4096)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			return p
		}, false},
		{"record pages overwritten", func(t *testing.T) string {
			// The freelist and meta pages survive, so Open succeeds and the
			// damage shows when the records are read: bbolt panics inside
			// the transaction ("Page expected to be ...").
			p := build(t)
			fi, err := os.Stat(p)
			require.NoError(t, err)
			lo, hi := fi.Size()/5/4096*4096, fi.Size()*2/5
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			_, err = f.WriteAt(random(int(hi-lo)), lo)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			return p
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.damage(t)
			s, err := Open(path, Options{BoxID: "box-1", Timeout: 200 * time.Millisecond})
			if tt.readErr {
				require.NoError(t, err, "this damage should pass Open")
				// Read everything a running box would.
				_, err = s.Grants()
				if err == nil {
					_, err = s.GrantsByCode("00000042")
				}
				if err == nil {
					err = s.Verify()
				}
				_ = s.Close()
			}
			require.Error(t, err)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, path)
			t.Log(err)
		})
	}
}

func TestOpenSchema(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, db *bolt.DB)
		wantIs  error
		wantErr string
	}{
		{"newer schema", func(t *testing.T, db *bolt.DB) {
			require.NoError(t, db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(metaSchema, u64(7))
			}))
		}, ErrSchema, "file has schema version 7, this program knows up to 1"},
		{"missing bucket", func(t *testing.T, db *bolt.DB) {
			require.NoError(t, db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketCodes) }))
		}, ErrCorrupt, `bucket "codes" is missing`},
		{"bad secret", func(t *testing.T, db *bolt.DB) {
			require.NoError(t, db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(metaSecret, []byte("short"))
			}))
		}, ErrCorrupt, "meta secret is 5 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			require.NoError(t, s.Close())
			db, err := bolt.Open(s.Path(), 0o600, nil)
			require.NoError(t, err)
			tt.setup(t, db)
			require.NoError(t, db.Close())

			_, err = Open(s.Path(), Options{BoxID: "box-1"})
			require.ErrorIs(t, err, tt.wantIs)
			require.ErrorContains(t, err, tt.wantErr)
			require.ErrorContains(t, err, s.Path())
		})
	}

	t.Run("foreign bbolt file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "other.db")
		db, err := bolt.Open(path, 0o600, nil)
		require.NoError(t, err)
		require.NoError(t, db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("widgets"))
			return err
		}))
		require.NoError(t, db.Close())
		_, err = Open(path, Options{BoxID: "box-1"})
		require.ErrorIs(t, err, ErrSchema)
		require.ErrorContains(t, err, `not a SmartBox store (no meta bucket; buckets "widgets")`)
	})
}

func TestVerify(t *testing.T) {
	s, _ := newStore(t)
	mustApply(t, s, Batch{Keys: []box.Key{key("k1", 1, fob(1))}, Grants: []box.GrantPut{booking("g-1", "1234", "k1")}})
	require.NoError(t, s.Verify())
}
