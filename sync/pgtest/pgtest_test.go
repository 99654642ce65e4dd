package pgtest_test

import (
	"context"
	"embed"
	"io/fs"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

//go:embed testdata/migrations/*.sql
var migrations embed.FS

// The cluster starts, each test gets its own empty database, and the
// migrations apply once even when several "replicas" start together.
func TestNewDatabaseAndMigrate(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	fsys, err := fsSub()
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := pgdb.Open(ctx, url, pgdb.Options{MaxConns: 2})
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			errs[i] = pgdb.Migrate(ctx, pool, "demo", fsys, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	pool, err := pgdb.Open(ctx, url, pgdb.Options{})
	require.NoError(t, err)
	defer pool.Close()
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM demo_rows").Scan(&n))
	require.Equal(t, 1, n, "the second migration's insert ran once")
	var applied int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM demo_schema WHERE version_id > 0").Scan(&applied))
	require.Equal(t, 2, applied)

	// Another test's database is another database.
	other := pgtest.New(t)
	require.NotEqual(t, url, other)
	pool2, err := pgdb.Open(ctx, other, pgdb.Options{})
	require.NoError(t, err)
	defer pool2.Close()
	var exists bool
	require.NoError(t, pool2.QueryRow(ctx, "SELECT to_regclass('demo_rows') IS NOT NULL").Scan(&exists))
	require.False(t, exists)
}

// A database migrated by newer code is refused, not written to.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.New(t), pgdb.Options{})
	require.NoError(t, err)
	defer pool.Close()
	fsys, err := fsSub()
	require.NoError(t, err)
	require.NoError(t, pgdb.Migrate(ctx, pool, "demo", fsys, nil))
	_, err = pool.Exec(ctx, "INSERT INTO demo_schema (version_id, is_applied) VALUES (9, true)")
	require.NoError(t, err)
	err = pgdb.Migrate(ctx, pool, "demo", fsys, nil)
	require.ErrorContains(t, err, "at version 9, this bridge knows up to 2")
}

func TestOpenBadURL(t *testing.T) {
	_, err := pgdb.Open(context.Background(), "postgres://u:secret@127.0.0.1:1/x?connect_timeout=1", pgdb.Options{})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
	_, err = pgdb.Open(context.Background(), "postgres://u:secret@[bad/x", pgdb.Options{})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
}

func fsSub() (fs.FS, error) { return fs.Sub(migrations, "testdata/migrations") }
