package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

// helperEnv makes the test binary act as a child process (see helpers in
// crash_test.go) instead of running the tests.
const (
	helperEnv     = "SMARTBOX_STORE_TEST_HELPER"
	helperPathEnv = "SMARTBOX_STORE_TEST_PATH"
)

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h, os.Getenv(helperPathEnv)))
	}
	// The store's few log lines would drown the test output.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	code := m.Run()
	cleanupBenchFixture()
	os.Exit(code)
}

var t0 = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// newStore opens a fresh store in t.TempDir, closed at cleanup.
func newStore(t testing.TB) (*Store, *testClock) {
	t.Helper()
	clock := &testClock{now: t0}
	s, err := Open(filepath.Join(t.TempDir(), "box.db"), Options{BoxID: "box-1", Now: clock.Now, Slots: 12, Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, clock
}

// reopen closes s and opens its file again.
func reopen(t testing.TB, s *Store, clock *testClock) *Store {
	t.Helper()
	require.NoError(t, s.Close())
	return openPath(t, s.Path(), clock)
}

// openPath opens the store at path, closed at cleanup.
func openPath(t testing.TB, path string, clock *testClock) *Store {
	t.Helper()
	s, err := Open(path, Options{BoxID: "box-1", Now: clock.Now, Slots: 12, Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func key(id string, slot int, fob string) box.Key {
	return box.Key{ID: id, Name: "Key " + id, Slot: slot, FobUID: fob}
}

func fob(n int) string { return fmt.Sprintf("%010X", n) }

func booking(id, code string, keyIDs ...string) box.GrantPut {
	return box.GrantPut{Grant: box.Grant{ID: id, Kind: box.KindBooking, KeyIDs: keyIDs, Source: "test"}, Code: code}
}

func driverCode(id, ref, code string) box.GrantPut {
	return box.GrantPut{Grant: box.Grant{ID: id, Kind: box.KindDriverCode, DriverRef: ref, Source: "test"}, Code: code}
}

// mustApply applies a batch at the store's current revision.
func mustApply(t testing.TB, s *Store, b Batch) []box.Event {
	t.Helper()
	rev, err := s.Revision()
	require.NoError(t, err)
	b.FromRevision, b.ToRevision = rev, rev+1
	ev, err := s.Apply(b)
	require.NoError(t, err)
	return ev
}

func grantIDs(gs []box.Grant) []string {
	ids := make([]string, 0, len(gs))
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	return ids
}
