package bookings

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/sync/pgdb"
)

// CopyCounts says how many records of each kind CopyToPostgres copied, by
// the name of their bbolt bucket ("settings" counts the connection and the
// code mode, "queue" the deliveries still queued).
type CopyCounts map[string]int

// CopyToPostgres copies every record of the bbolt store file at boltPath
// (a depot's bookings.db) into the bookings schema of pool's database,
// applying its migrations first, in one transaction: on an error nothing is
// copied. It refuses a database whose bookings store holds anything,
// a seal key included (a bridge ran on it: its PINs are sealed with
// another key); stop every bridge on the file and the database first. The
// file must exist (a mistyped path is an error, not an empty copy); it is
// opened as the bridge opens it (a running bridge holds its lock: an error
// after two seconds; a bucket an older bridge lacked is made) and read.
func CopyToPostgres(ctx context.Context, boltPath string, pool *pgxpool.Pool, log *slog.Logger) (CopyCounts, error) {
	if log == nil {
		log = slog.Default()
	}
	if fi, err := os.Stat(boltPath); err != nil {
		return nil, fmt.Errorf("copy bridge store to postgres: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("copy bridge store to postgres: %w source %s: not a file", ErrInvalid, boltPath)
	}
	src, sealKey, err := openBolt(boltPath)
	if err != nil {
		return nil, err
	}
	defer src.close()
	if err := migratePostgres(ctx, pool, log); err != nil {
		return nil, err
	}
	var counts CopyCounts
	err = pgdb.InTx(ctx, pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
		counts = CopyCounts{}
		dst := &pgTx{ctx: ctx, tx: tx}
		if err := pgEmpty(dst); err != nil {
			return err
		}
		if err := dst.exec(`INSERT INTO bookings_meta (name, value) VALUES ('seal_key', $1)`, sealKey); err != nil {
			return fmt.Errorf("seal key: %w", err)
		}
		return src.db.View(func(btx *bolt.Tx) error { return copyBolt(boltTx{tx: btx}, dst, counts) })
	})
	if err != nil {
		return nil, fmt.Errorf("copy bridge store %s to postgres: %w", boltPath, err)
	}
	log.Info("bridge store copied to postgres", "file", boltPath, "records", map[string]int(counts))
	return counts, nil
}

// pgEmpty refuses a bookings store that holds anything.
func pgEmpty(p *pgTx) error {
	var tables []string
	for _, t := range pgTables {
		tables = append(tables, t.name)
	}
	tables = append(tables, "bookings_meta", "bookings_tokens", "bookings_watch_holders", "bookings_watch_seen")
	for _, name := range tables {
		found, _, err := pgOne[bool](p, "SELECT EXISTS (SELECT 1 FROM "+name+")")
		if err != nil {
			return fmt.Errorf("look into %s: %w", name, err)
		}
		if found {
			return fmt.Errorf("%w target: the database's bookings store is not empty (%s has records): copy into a new database", ErrInvalid, name)
		}
	}
	if _, ok, err := p.connection(); err != nil || ok {
		return firstErr(err, fmt.Errorf("%w target: the database's bookings store is not empty (connection settings)", ErrInvalid))
	}
	if m, err := p.codeMode(); err != nil || m != "" {
		return firstErr(err, fmt.Errorf("%w target: the database's bookings store is not empty (code mode)", ErrInvalid))
	}
	return nil
}

// copyBolt copies what src holds into dst, counting it.
func copyBolt(src boltTx, dst *pgTx, counts CopyCounts) error {
	if raw, ok, err := src.connection(); err != nil {
		return err
	} else if ok {
		if err := dst.putConnection(raw); err != nil {
			return fmt.Errorf("settings: %w", err)
		}
		counts["settings"]++
	}
	if m, err := src.codeMode(); err != nil {
		return err
	} else if m != "" {
		if err := dst.putCodeMode(m); err != nil {
			return fmt.Errorf("code mode: %w", err)
		}
		counts["settings"]++
	}
	for t := range numTables {
		err := src.scan(t, false, 0, func(k recKey, doc []byte) error {
			counts[t.String()]++
			if t == tBookings {
				// The document as it is, filed in the waiting index from
				// itself (as the file's own index files it).
				var bk Booking
				if err := json.Unmarshal(doc, &bk); err != nil {
					return fmt.Errorf("decode booking %d: %w", k.ID, err)
				}
				return dst.putBooking(k.ID, waitingFor(bk), doc)
			}
			if t != tDeliveries {
				return dst.put(t, k, doc)
			}
			// The document as it is; the columns beside it as the bbolt
			// queue has the delivery (queued or not).
			var d Delivery
			if err := json.Unmarshal(doc, &d); err != nil {
				return fmt.Errorf("decode delivery %d: %w", k.ID, err)
			}
			d.State = DeliveryDone
			if src.tx.Bucket(bucketQueue).Get(id64(k.ID)) != nil {
				d.State = DeliveryQueued
				counts["queue"]++
			}
			return dst.putDelivery(d, doc)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
	}
	// The internal deliveries' numbers go on from the file's.
	if seq := src.tx.Bucket(bucketDeliveries).Sequence(); seq > 0 {
		if err := dst.exec(`SELECT setval('bookings_internal_delivery_seq', $1)`, int64(seq)); err != nil {
			return fmt.Errorf("internal delivery sequence: %w", err)
		}
	}
	if err := src.tx.Bucket(bucketTokens).ForEach(func(k, _ []byte) error {
		id, _, err := src.tokenBooking(k)
		if err != nil {
			return err
		}
		counts["tokens"]++
		return dst.putToken(k, id)
	}); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	if err := src.holders(func(h heldKey) error {
		counts["watch_holders"]++
		return dst.putHolder(h.BoxID, h.KeyID, h.AssignmentID)
	}); err != nil {
		return fmt.Errorf("holders: %w", err)
	}
	if err := src.tx.Bucket(bucketWatchSeen).ForEach(func(k, _ []byte) error {
		seq, err := src.seen(string(k))
		if err != nil {
			return err
		}
		counts["watch_seen"]++
		return dst.putSeen(string(k), seq)
	}); err != nil {
		return fmt.Errorf("seen: %w", err)
	}
	return nil
}
