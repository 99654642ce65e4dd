package bridge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/secretfile"
)

// MoveReport says what MoveToPostgres moved.
type MoveReport struct {
	Secrets  int // the signing key, the CA, the admin token
	Accounts int // boxes with a password, a slot count or a certificate
	Cloud    cloud.CopyCounts
	Bookings bookings.CopyCounts
}

// secretMoving marks a database that MoveToPostgres is filling: no replica
// starts on it (loadSecretsPG) until the move has finished, since a start
// would find the stores half copied, or make a signing key of its own.
const secretMoving = "move_in_progress"

// MoveToPostgres moves a depot's data directory (its bbolt stores and its
// secret files) into an empty PostgreSQL database, for `smartbox-bridge
// migrate`: serve with [store] url then runs on it, as many replicas as
// wanted, and every box still trusts the signing key and the CA it was
// provisioned with. The bridge must be stopped (a running one holds the
// bbolt files, and the open fails). A database that already holds a
// bridge's data is refused before anything is written; the move is one
// transaction, so a failure leaves the database as it was. The files are
// left in place: going back is the old config.
func MoveToPostgres(ctx context.Context, dataDir, url string, log *slog.Logger) (rep MoveReport, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := migrateDataDir(dataDir, log); err != nil {
		return rep, err
	}
	keyPath := filepath.Join(dataDir, FileSigningKey)
	if _, err := os.Stat(keyPath); err != nil {
		return rep, fmt.Errorf("%s: %w: nothing to move (is data_dir right?)", keyPath, err)
	}
	pool, err := pgdb.Open(ctx, url, pgdb.Options{})
	if err != nil {
		return rep, err
	}
	defer pool.Close()
	if err := pgdb.Migrate(ctx, pool, "bridge", migrations(), log); err != nil {
		return rep, err
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM bridge_secrets) + (SELECT count(*) FROM bridge_box_accounts)`).Scan(&n); err != nil {
		return rep, fmt.Errorf("postgres: %w", err)
	}
	if n > 0 {
		return rep, fmt.Errorf("postgres %s already holds a bridge's data: move into an empty database", pgdb.Redact(url))
	}

	sec, err := readSecretFiles(dataDir)
	if err != nil {
		return rep, err
	}
	accounts, err := openBoxAccounts(filepath.Join(dataDir, FileBoxesDB))
	if err != nil {
		return rep, err
	}
	defer accounts.Close()
	rows, err := accounts.e.(*boltAccounts).rows()
	if err != nil {
		return rep, fmt.Errorf("read %s: %w", FileBoxesDB, err)
	}

	// Each store copies in a transaction of its own; the marker keeps
	// replicas off the database until the last one, with the secrets,
	// has committed. A move that fails between leaves the marker, and the
	// error says to start again on an empty database.
	if _, err := pool.Exec(ctx, `INSERT INTO bridge_secrets (name, value) VALUES ($1, $2)`,
		secretMoving, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return rep, fmt.Errorf("postgres: %w", err)
	}
	partly := func(what string, err error) error {
		return fmt.Errorf("move %s: %w (the database now holds part of the depot: drop it, make an empty one and run the move again)", what, err)
	}
	if rep.Cloud, err = cloud.CopyToPostgres(ctx, filepath.Join(dataDir, FileCloudDB), pool, log); err != nil {
		return rep, partly(FileCloudDB, err)
	}
	if rep.Bookings, err = bookings.CopyToPostgres(ctx, filepath.Join(dataDir, FileBookingsDB), pool, log); err != nil {
		return rep, partly(FileBookingsDB, err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range sec {
			if _, err := tx.Exec(ctx, `INSERT INTO bridge_secrets (name, value) VALUES ($1, $2)`, s.name, s.value); err != nil {
				return fmt.Errorf("secret %s: %w", s.name, err)
			}
		}
		if err := insertAccountRows(ctx, tx, rows); err != nil {
			return fmt.Errorf("box accounts: %w", err)
		}
		_, err := tx.Exec(ctx, `DELETE FROM bridge_secrets WHERE name = $1`, secretMoving)
		return err
	})
	if err != nil {
		return rep, partly("secrets and "+FileBoxesDB, err)
	}
	rep.Secrets, rep.Accounts = len(sec), len(rows)
	log.Info("moved into postgres", "url", pgdb.Redact(url), "secrets", rep.Secrets, "box_accounts", rep.Accounts,
		"boxes", rep.Cloud.Boxes, "grants", rep.Cloud.Grants, "events", rep.Cloud.Events)
	return rep, nil
}

type namedSecret struct {
	name  string
	value []byte
}

// readSecretFiles reads the depot's secret files as loadSecretsPG stores
// them, checking each parses: a broken key must not be moved into the
// database that every replica will then refuse.
func readSecretFiles(dir string) ([]namedSecret, error) {
	keyPEM, err := secretfile.Read(filepath.Join(dir, FileSigningKey), secretfile.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if _, err := ParseSigningKey(keyPEM); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", filepath.Join(dir, FileSigningKey), err)
	}
	out := []namedSecret{{secretSigningKey, keyPEM}}
	// A depot from before the CA has neither file: the first replica's
	// start makes one, as the depot's next start would have.
	caKey, kerr := secretfile.Read(filepath.Join(dir, FileCAKey), maxCAFile)
	caCert, cerr := readBounded(filepath.Join(dir, FileCACert), maxCAFile)
	switch {
	case errors.Is(kerr, fs.ErrNotExist) && errors.Is(cerr, fs.ErrNotExist):
	case kerr != nil || cerr != nil:
		return nil, fmt.Errorf("bridge CA: %w", errors.Join(kerr, cerr))
	default:
		if _, err := parseCA(caKey, caCert); err != nil {
			return nil, fmt.Errorf("bridge CA: %w", err)
		}
		out = append(out, namedSecret{secretCA, append(append([]byte(nil), caKey...), caCert...)})
	}
	tok, err := secretfile.Read(filepath.Join(dir, FileAdminToken), secretfile.MaxSize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	if t := strings.TrimSpace(string(tok)); t != "" {
		out = append(out, namedSecret{secretAdminToken, []byte(t)})
	}
	return out, nil
}
