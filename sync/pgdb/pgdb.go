package pgdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Bounds of a pool and of its start.
const (
	// DefaultMaxConns: the bridge's concurrency is its queue workers
	// (bookings.DefaultWorkers), the cloud's message workers and the admin
	// API; 16 connections serve them without holding a server process per
	// goroutine. A PostgreSQL's default max_connections is 100, so five
	// replicas fit.
	DefaultMaxConns = 16
	// ConnectTimeout bounds one attempt to reach the server.
	ConnectTimeout = 10 * time.Second
	// MigrateLockWait bounds the wait for another replica's migrations.
	MigrateLockWait = 2 * time.Minute
	// txAttempts bounds the retries of a transaction aborted by a
	// serialization failure or a deadlock (see InTx).
	txAttempts = 10
)

// Options configure Open. Zero values take the defaults.
type Options struct {
	MaxConns int32
	Logger   *slog.Logger
}

// IsURL reports whether s names a PostgreSQL database (postgres:// or
// postgresql://) rather than a file.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Redact is the URL with its password replaced, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}

// Open connects a pool to the database at rawURL and checks that it
// answers. The URL's own pool_max_conns, if given, wins over Options.
func Open(ctx context.Context, rawURL string, o Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx's parse error can quote the URL, password and all.
		return nil, fmt.Errorf("postgres %s: not a valid connection URL", Redact(rawURL))
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
		if o.MaxConns > 0 {
			cfg.MaxConns = o.MaxConns
		}
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > ConnectTimeout {
		cfg.ConnConfig.ConnectTimeout = ConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", Redact(rawURL), err)
	}
	pctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", Redact(rawURL), err)
	}
	return pool, nil
}

// Migrate applies the migrations in fsys (NNNNN_name.sql files at its root,
// goose's format) that the database does not have yet, recording them in
// the table <store>_schema. It refuses a database that has a migration this
// code does not know (a newer bridge ran on it): running older code on a
// newer schema could lose what the newer code stores.
func Migrate(ctx context.Context, pool *pgxpool.Pool, store string, fsys fs.FS, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	// Each store its own lock: the id is the table name's, as goose makes
	// one from a name.
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockID(store)),
		lock.WithLockTimeout(1, uint64(MigrateLockWait/time.Second)),
		lock.WithUnlockTimeout(1, 30))
	if err != nil {
		return fmt.Errorf("postgres: %s migrations: %w", store, err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(store+"_schema"), goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("postgres: %s migrations: %w", store, err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %s migrations: %w", store, err)
	}
	have, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %s schema version: %w", store, err)
	}
	var known int64
	for _, s := range p.ListSources() {
		known = max(known, s.Version)
	}
	if have > known {
		return fmt.Errorf("postgres: the %s schema is at version %d, this bridge knows up to %d: run the newer bridge", store, have, known)
	}
	for _, r := range res {
		log.Info("postgres: schema migrated", "store", store, "version", r.Source.Version,
			"file", r.Source.Path, "took", r.Duration)
	}
	return nil
}

// lockID is a stable advisory-lock id per store name (FNV-1a, 63 bits).
func lockID(store string) int64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(store); i++ {
		h ^= uint64(store[i])
		h *= 1099511628211
	}
	return int64(h >> 1)
}

// Retryable reports whether err is PostgreSQL aborting a transaction that
// would succeed if run again: a serialization failure (40001) or a
// deadlock (40P01).
func Retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// InTx runs fn in a transaction with the given options and commits it,
// running it again (up to txAttempts times, with a short random pause)
// when PostgreSQL aborted it for a conflict. fn must not have effects
// outside the transaction that a second run would repeat.
func InTx(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 1; attempt <= txAttempts; attempt++ {
		err = pgx.BeginTxFunc(ctx, pool, opts, fn)
		if !Retryable(err) {
			return err
		}
		// 1 to 10 ms, growing: two replicas retrying the same rows
		// do not collide again in step.
		pause := time.Duration(attempt) * time.Millisecond * time.Duration(1+rand.IntN(10)) / 5
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	return fmt.Errorf("postgres: gave up after %d conflicting attempts: %w", txAttempts, err)
}
