package cloud

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/smartbox-oss/smartbox/sync/pgdb"
)

// ErrNotEmpty: CopyToPostgres found cloud records in the database already.
var ErrNotEmpty = errors.New("the PostgreSQL cloud store is not empty")

// CopyCounts is what CopyToPostgres copied, row by row.
type CopyCounts struct {
	Meta       int // store-wide values: schema, code key (if made by the store), its check
	Boxes      int
	Keys       int
	Fobs       int
	Grants     int
	Codes      int // code index entries
	LogEntries int
	Events     int
	EventDays  int // received-day index entries
	Commands   int
}

// CopyToPostgres copies the bbolt cloud store at boltPath (everything:
// the code key and its check, every box with its meta and status, keys,
// fobs, grants with their encrypted codes and their index, the revision
// log, events, the received-day index and commands) into pool's database,
// whose cloud_ tables it migrates first and which must hold no cloud
// records yet (ErrNotEmpty otherwise). Documents are copied byte for byte,
// so the PostgreSQL store answers boxes exactly as the file did: same
// revisions, same log, same event numbering, and codes that open with the
// same code key (the file's own, or Options.CodeKey again).
//
// It is one transaction: on any error nothing is copied. The file is
// opened read-only and must not be in use (stop the bridge first:
// ErrInUse after openTimeout otherwise); it is left as it was.
func CopyToPostgres(ctx context.Context, boltPath string, pool *pgxpool.Pool, log *slog.Logger) (CopyCounts, error) {
	var n CopyCounts
	if log == nil {
		log = slog.Default()
	}
	fail := func(err error) (CopyCounts, error) {
		return CopyCounts{}, fmt.Errorf("cloud: copy %s to postgres: %w", boltPath, err)
	}
	db, err := bolt.Open(boltPath, 0o600, &bolt.Options{ReadOnly: true, Timeout: openTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			err = fmt.Errorf("%w (waited %s for its lock: stop the bridge first)", ErrInUse, openTimeout)
		}
		return fail(err)
	}
	defer db.Close()
	if err := pgdb.Migrate(ctx, pool, pgStoreName, migrations(), log); err != nil {
		return fail(err)
	}
	err = db.View(func(btx *bolt.Tx) error {
		top, boxes := btx.Bucket(bucketMeta), btx.Bucket(bucketBoxes)
		if top == nil || boxes == nil {
			return errors.New("not a cloud store (no meta or boxes bucket)")
		}
		return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			n = CopyCounts{}
			// Replicas that start meanwhile wait (their Open writes
			// cloud_meta) and then take the copied code key.
			if _, err := tx.Exec(ctx, `LOCK TABLE cloud_meta, cloud_boxes IN EXCLUSIVE MODE`); err != nil {
				return err
			}
			var used bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM cloud_meta) OR EXISTS (SELECT 1 FROM cloud_boxes)`).
				Scan(&used); err != nil {
				return err
			}
			if used {
				return fmt.Errorf("%w: copy into an empty database (the cloud was opened on it, or copied before)", ErrNotEmpty)
			}
			if err := top.ForEach(func(k, v []byte) error {
				n.Meta++
				_, err := tx.Exec(ctx, `INSERT INTO cloud_meta (name, value) VALUES ($1, $2)`, string(k), v)
				return err
			}); err != nil {
				return fmt.Errorf("meta: %w", err)
			}
			return boxes.ForEachBucket(func(id []byte) error {
				if err := copyBox(ctx, tx, btx, string(id), &n); err != nil {
					return fmt.Errorf("box %q: %w", id, err)
				}
				return nil
			})
		})
	})
	if err != nil {
		return fail(err)
	}
	log.Info("cloud store copied to postgres", "from", boltPath, "boxes", n.Boxes, "keys", n.Keys,
		"grants", n.Grants, "log_entries", n.LogEntries, "events", n.Events, "commands", n.Commands)
	return n, nil
}

// copyBox copies one box: its row, then each bucket with COPY.
func copyBox(ctx context.Context, tx pgx.Tx, btx *bolt.Tx, id string, n *CopyCounts) error {
	bt, err := openBoltBox(btx, id)
	if err != nil {
		return err
	}
	m := bt.meta()
	pub := m.Pub
	if pub == nil {
		pub = []byte{}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO cloud_boxes (id, pub, rev, logstart, highseq, seqbase, seqbase_pending, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		id, pub, m.Rev, m.LogStart, m.HighSeq, m.SeqBase, m.SeqBasePending, jsonOrNull(m.Status)); err != nil {
		return err
	}
	n.Boxes++
	byID := func(k, v []byte) ([]any, error) { return []any{id, string(k), string(v)}, nil }
	bySeq := func(k, v []byte) ([]any, error) {
		if len(k) != 8 {
			return nil, fmt.Errorf("a key of %d bytes, want 8 (store damaged)", len(k))
		}
		return []any{id, binary.BigEndian.Uint64(k), string(v)}, nil
	}
	for _, c := range []struct {
		table string
		cols  []string
		b     *bolt.Bucket
		row   func(k, v []byte) ([]any, error)
		count *int
	}{
		{"cloud_keys", []string{"box_id", "id", "doc"}, bt.keys, byID, &n.Keys},
		{"cloud_fobs", []string{"box_id", "fob", "key_id"}, bt.fobs, byID, &n.Fobs},
		{"cloud_grants", []string{"box_id", "id", "doc"}, bt.grants, byID, &n.Grants},
		{"cloud_codes", []string{"box_id", "code_mac", "grant_id"}, bt.codes, func(k, _ []byte) ([]any, error) {
			if len(k) <= sha256.Size {
				return nil, fmt.Errorf("a code index key of %d bytes, want a MAC and a grant id (store damaged)", len(k))
			}
			return []any{id, bytes.Clone(k[:sha256.Size]), string(k[sha256.Size:])}, nil
		}, &n.Codes},
		{"cloud_log", []string{"box_id", "rev", "doc"}, bt.log, bySeq, &n.LogEntries},
		{"cloud_events", []string{"box_id", "seq", "doc"}, bt.ev, bySeq, &n.Events},
		{"cloud_event_days", []string{"box_id", "day", "seq"}, bt.days, func(k, v []byte) ([]any, error) {
			if len(k) != 8 || len(v) != 8 {
				return nil, fmt.Errorf("a day entry of %d and %d bytes, want 8 and 8 (store damaged)", len(k), len(v))
			}
			return []any{id, binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(v)}, nil
		}, &n.EventDays},
		{"cloud_commands", []string{"box_id", "id", "doc"}, bt.cmds, byID, &n.Commands},
	} {
		if c.b == nil {
			continue // a days bucket in a store made before it
		}
		cur := c.b.Cursor()
		k, v := cur.First()
		copied, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromFunc(func() ([]any, error) {
			if k == nil {
				return nil, nil
			}
			row, err := c.row(k, v)
			k, v = cur.Next()
			return row, err
		}))
		if err != nil {
			return fmt.Errorf("%s: %w", c.table, err)
		}
		*c.count += int(copied)
	}
	return nil
}
