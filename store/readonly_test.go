package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

// TestReadOnly: a read-only store reads what a writer left, refuses every
// write with ErrReadOnly, shares the file with other readers, is refused
// while a writer holds it, and leaves the file's bytes as they were.
func TestReadOnly(t *testing.T) {
	w, clock := newStore(t)
	mustApply(t, w, Batch{Keys: []box.Key{key("k1", 1, fob(1))}, Grants: []box.GrantPut{booking("g-1", "123456", "k1")}})
	path := w.Path()

	// While the writer holds it: a reader waits its Timeout and is told who.
	_, err := Open(path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	require.ErrorIs(t, err, ErrInUse)
	require.ErrorContains(t, err, "pid ")
	require.NoError(t, w.Close())

	before, err := os.ReadFile(path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)

	ro, err := Open(path, Options{ReadOnly: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ro.Close() })
	require.True(t, ro.ReadOnly())
	// A second reader at the same time: the lock is shared.
	ro2, err := Open(path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, ro2.Close())

	gs, err := ro.Grants()
	require.NoError(t, err)
	require.Len(t, gs, 1)
	got, err := ro.GrantsByCode("123456")
	require.NoError(t, err)
	require.Equal(t, []string{"g-1"}, grantIDs(got))
	id, err := ro.Identity()
	require.NoError(t, err)
	require.Equal(t, "box-1", id.BoxID)

	writes := map[string]func() error{
		"apply": func() error { _, err := ro.Apply(Batch{FromRevision: 1, ToRevision: 2}); return err },
		"ack":   func() error { _, err := ro.AckEvents(1); return err },
		"commit": func() error {
			_, err := ro.Commit(box.Change{Events: []box.Event{{Type: box.EventBoxStarted, Time: clock.Now()}}})
			return err
		},
		"clock floor": func() error { _, err := ro.RaiseClockFloor(t0); return err },
	}
	for name, write := range writes {
		err := write()
		require.ErrorIs(t, err, ErrReadOnly, name)
		require.ErrorContains(t, err, path, name)
	}
	// A writer cannot open it while a reader holds it.
	_, err = Open(path, Options{BoxID: "box-1", Timeout: 100 * time.Millisecond})
	require.ErrorIs(t, err, ErrInUse)
	require.NoError(t, ro.Close())

	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.Equal(before, after), "a read-only store changed its file")
	fi2, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fi.ModTime(), fi2.ModTime())

	// No file: refused, and nothing made.
	missing := filepath.Join(t.TempDir(), "none.db")
	_, err = Open(missing, Options{ReadOnly: true, BoxID: "box-1"})
	require.ErrorContains(t, err, "no store there")
	_, err = os.Stat(missing)
	require.ErrorIs(t, err, os.ErrNotExist)
}
