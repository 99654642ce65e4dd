package bookings

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// The package's tests run on the engine SMARTBOX_TEST_STORE names
// (pgtest.Engine): bbolt by default, postgres for the same suite on
// PostgreSQL.

func TestMain(m *testing.M) { pgtest.Main(m) }

// OpenTestStore opens an empty store on the test run's engine: a bbolt
// file in a temp dir, or a new PostgreSQL database. reopen closes the store
// and opens the same file or database again, as a restarted bridge does.
// (Exported for the package's external tests.)
func OpenTestStore(t testing.TB) (s *Store, reopen func() *Store) {
	t.Helper()
	var open func() *Store
	if pgtest.Engine() == pgtest.Postgres {
		url := pgtest.New(t)
		open = func() *Store {
			s := OpenTestPostgresStore(t, url)
			testURLs.Store(s, url)
			return s
		}
	} else {
		path := filepath.Join(t.TempDir(), "bookings.db")
		open = func() *Store {
			s, err := OpenStore(path)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
	s = open()
	return s, func() *Store {
		require.NoError(t, s.Close())
		s = open()
		return s
	}
}

// testURLs: the database URL of each store OpenTestStore opened on
// PostgreSQL, for OpenTestPostgresStoreLike.
var testURLs sync.Map

// OpenTestPostgresStoreLike opens a second store (another replica) on the
// database of s, which OpenTestStore opened on PostgreSQL.
func OpenTestPostgresStoreLike(t testing.TB, s *Store) *Store {
	t.Helper()
	url, ok := testURLs.Load(s)
	require.True(t, ok, "not a PostgreSQL store of OpenTestStore")
	return OpenTestPostgresStore(t, url.(string))
}

// OpenTestPostgresStore opens a store on the database at url, on a pool of
// its own (a replica), both closed when the test ends.
func OpenTestPostgresStore(t testing.TB, url string) *Store {
	t.Helper()
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, url, pgdb.Options{})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	// Migrated first without a word, so that OpenPostgresStore finds
	// nothing to do and logs nothing (slog.Default) into test output.
	require.NoError(t, migratePostgres(ctx, pool, slog.New(slog.DiscardHandler)))
	s, err := OpenPostgresStore(ctx, pool)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// OpenTestCloud opens the cloud store of a test on the run's engine: the
// bbolt file o.Path names, or (on PostgreSQL) a new database of its own, as
// a bridge on PostgreSQL keeps the cloud's tables beside the bookings'.
func OpenTestCloud(t testing.TB, o cloud.Options) *cloud.Cloud {
	t.Helper()
	if pgtest.Engine() == pgtest.Postgres {
		pool, err := pgdb.Open(context.Background(), pgtest.New(t), pgdb.Options{})
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		o.Postgres = pool
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := cloud.Open(o)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// PostgresURLOf is the database URL of s, which OpenTestStore opened on
// PostgreSQL (for a test's own pools: a shared budget, say).
func PostgresURLOf(t testing.TB, s *Store) string {
	t.Helper()
	url, ok := testURLs.Load(s)
	require.True(t, ok, "not a PostgreSQL store of OpenTestStore")
	return url.(string)
}
