package bridge

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartbox-oss/smartbox/sync/pgdb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations are the bridge's own tables (bridge_*): the box accounts and
// the secrets. sync/cloud and sync/bookings keep theirs.
func migrations() fs.FS {
	f, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embed pattern above names the directory
	}
	return f
}

// pgQueryTimeout bounds one accounts query: a broker login waits on it, and
// a database that does not answer in that time refuses the login.
const pgQueryTimeout = 5 * time.Second

// pgAccounts is the accounts' PostgreSQL engine (table bridge_box_accounts).
type pgAccounts struct {
	pool *pgxpool.Pool
}

func newPGAccounts(pool *pgxpool.Pool) *boxAccounts { return &boxAccounts{e: &pgAccounts{pool: pool}} }

func (a *pgAccounts) close() error { return nil } // the pool is the service's

func (a *pgAccounts) exec(sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgQueryTimeout)
	defer cancel()
	_, err := a.pool.Exec(ctx, sql, args...)
	return err
}

// column reads one column of a box's row; ok false when the row or the
// value is missing.
func column[T any](a *pgAccounts, col, id string) (v T, ok bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgQueryTimeout)
	defer cancel()
	var p *T
	err = a.pool.QueryRow(ctx, "SELECT "+col+" FROM bridge_box_accounts WHERE box_id = $1", id).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && p == nil) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	return *p, true, nil
}

func (a *pgAccounts) putPassword(id, hash string) error {
	return a.exec(`INSERT INTO bridge_box_accounts (box_id, password_hash) VALUES ($1, $2)
		ON CONFLICT (box_id) DO UPDATE SET password_hash = EXCLUDED.password_hash`, id, hash)
}

func (a *pgAccounts) password(id string) (string, bool, error) {
	return column[string](a, "password_hash", id)
}

func (a *pgAccounts) putSlots(id string, n int) error {
	return a.exec(`INSERT INTO bridge_box_accounts (box_id, slots) VALUES ($1, $2)
		ON CONFLICT (box_id) DO UPDATE SET slots = EXCLUDED.slots`, id, n)
}

func (a *pgAccounts) slots(id string) (int, bool, error) {
	n, ok, err := column[int32](a, "slots", id)
	return int(n), ok, err
}

func (a *pgAccounts) cert(id string) ([]byte, bool, error) {
	// jsonb comes back as text: the record is its JSON.
	s, ok, err := column[string](a, "cert::text", id)
	return []byte(s), ok, err
}

func (a *pgAccounts) swapCert(id string, decide func(old []byte) ([]byte, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgQueryTimeout)
	defer cancel()
	return pgdb.InTx(ctx, a.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// The row is made first so that FOR UPDATE has a row to lock:
		// two replicas issuing certificates to one box take turns.
		if _, err := tx.Exec(ctx, `INSERT INTO bridge_box_accounts (box_id) VALUES ($1) ON CONFLICT DO NOTHING`, id); err != nil {
			return err
		}
		var old *string
		if err := tx.QueryRow(ctx, `SELECT cert::text FROM bridge_box_accounts WHERE box_id = $1 FOR UPDATE`, id).Scan(&old); err != nil {
			return err
		}
		var prev []byte
		if old != nil {
			prev = []byte(*old)
		}
		v, err := decide(prev)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE bridge_box_accounts SET cert = $2::jsonb, password_hash = NULL WHERE box_id = $1`, id, string(v))
		return err
	})
}

// insertRows adds moved accounts (MoveToPostgres) in the transaction tx.
func insertAccountRows(ctx context.Context, tx pgx.Tx, rows []accountRow) error {
	for _, r := range rows {
		var cert *string
		if r.cert != nil {
			c := string(r.cert)
			cert = &c
		}
		if _, err := tx.Exec(ctx, `INSERT INTO bridge_box_accounts (box_id, password_hash, slots, cert) VALUES ($1, $2, $3, $4::jsonb)`,
			r.id, r.passwordHash, r.slots, cert); err != nil {
			return fmt.Errorf("box %s: %w", r.id, err)
		}
	}
	return nil
}
