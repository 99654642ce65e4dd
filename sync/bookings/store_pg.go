package bookings

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartbox-oss/smartbox/sync/pgdb"
)

// The PostgreSQL engine: the tables of migrations/ (prefixed bookings_), on
// a pool any number of replicas share. A write transaction runs at
// SERIALIZABLE, so that what one decides from what it read (a watch
// transaction's seen seq and holders, AddDelivery's connection check, an
// overdue flag raised once) holds as it did on bbolt's single writer;
// pgdb.InTx runs it again when PostgreSQL aborts it for a conflict with
// another replica's.

//go:embed migrations/*.sql
var migrations embed.FS

// pgStoreName is the store's name for pgdb.Migrate: its version table is
// bookings_schema.
const pgStoreName = "bookings"

// pgOpTimeout bounds one transaction of the store: the Store's methods take
// no context, and a database that stopped answering must give an error
// (the queue retries) rather than hold a worker for good.
const pgOpTimeout = 30 * time.Second

// OpenPostgresStore opens the store in the database of pool, applying the
// migrations it lacks and making the seal key if there is none (once, even
// if replicas open together). The pool is the caller's: Close leaves it
// open.
func OpenPostgresStore(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("bridge store (postgres): %w pool: nil", ErrInvalid)
	}
	if err := migratePostgres(ctx, pool, slog.Default()); err != nil {
		return nil, err
	}
	if err := pgFillAssignments(ctx, pool); err != nil {
		return nil, err
	}
	if err := pgFillWaiting(ctx, pool); err != nil {
		return nil, err
	}
	key, err := pgSealKey(ctx, pool, newSealKey())
	if err != nil {
		return nil, err
	}
	s, err := newStore(&pgEngine{pool: pool}, key)
	if err != nil {
		return nil, fmt.Errorf("bridge store (postgres): %w", err)
	}
	return s, nil
}

func migratePostgres(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	if err := pgdb.Migrate(ctx, pool, pgStoreName, sub, log); err != nil {
		return fmt.Errorf("bridge store (postgres): %w", err)
	}
	return nil
}

// pgSealKey stores key as the seal key unless one is stored, and returns
// the one stored: two replicas opening at once store one and both read it.
func pgSealKey(ctx context.Context, pool *pgxpool.Pool, key []byte) ([]byte, error) {
	if _, err := pool.Exec(ctx, `INSERT INTO bookings_meta (name, value) VALUES ('seal_key', $1)
		ON CONFLICT (name) DO NOTHING`, key); err != nil {
		return nil, fmt.Errorf("bridge store (postgres): store seal key: %w", err)
	}
	var got []byte
	if err := pool.QueryRow(ctx, `SELECT value FROM bookings_meta WHERE name = 'seal_key'`).Scan(&got); err != nil {
		return nil, fmt.Errorf("bridge store (postgres): read seal key: %w", err)
	}
	return got, nil
}

// pgFillAssignments writes the assignment column of the queued deliveries
// stored before it existed (migration 00002): a claim orders an
// assignment's deliveries by it. Replicas opening together write the same
// values.
func pgFillAssignments(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT doc FROM bookings_deliveries WHERE queued AND assignment_id IS NULL`)
	if err != nil {
		return fmt.Errorf("bridge store (postgres): read the queue: %w", err)
	}
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("bridge store (postgres): read the queue: %w", err)
	}
	for _, doc := range docs {
		var d Delivery
		if err := json.Unmarshal(doc, &d); err != nil {
			return fmt.Errorf("bridge store (postgres): decode queued delivery: %w", err)
		}
		if _, err := pool.Exec(ctx, `UPDATE bookings_deliveries SET assignment_id = $2 WHERE id = $1`, d.ID, deliveryAssignment(d)); err != nil {
			return fmt.Errorf("bridge store (postgres): delivery %d: %w", d.ID, err)
		}
	}
	return nil
}

// pgFillWaiting writes the waiting_box column of the bookings stored
// before it existed (migration 00003), from their documents. A row is
// written only while still NULL: every write of a booking since sets it,
// from a document at least as new as the one read here, and stands.
func pgFillWaiting(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT assignment_id, doc FROM bookings_bookings WHERE waiting_box IS NULL`)
	if err != nil {
		return fmt.Errorf("bridge store (postgres): read the bookings to index: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pgRec, error) {
		var r pgRec
		return r, row.Scan(&r.k.ID, &r.doc)
	})
	if err != nil {
		return fmt.Errorf("bridge store (postgres): read the bookings to index: %w", err)
	}
	for _, r := range recs {
		var bk Booking
		if err := json.Unmarshal(r.doc, &bk); err != nil {
			return fmt.Errorf("bridge store (postgres): decode booking %d: %w", r.k.ID, err)
		}
		if _, err := pool.Exec(ctx, `UPDATE bookings_bookings SET waiting_box = $2 WHERE assignment_id = $1 AND waiting_box IS NULL`,
			r.k.ID, waitingFor(bk)); err != nil {
			return fmt.Errorf("bridge store (postgres): booking %d: %w", r.k.ID, err)
		}
	}
	return nil
}

type pgEngine struct {
	pool *pgxpool.Pool

	// locks is the pool of the advisory locks' sessions (pgLocker), made
	// on first use and closed with the store: a lock held across Fleetio
	// calls holds its connection, and taking those from pool could leave
	// the transactions of the lock holders none.
	locksOnce sync.Once
	locks     *pgxpool.Pool
	locksErr  error
}

var (
	_ engine  = (*pgEngine)(nil)
	_ storeTx = (*pgTx)(nil)
)

func (e *pgEngine) view(fn func(storeTx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
	defer cancel()
	// REPEATABLE READ: the reads of one view see one snapshot, as a bbolt
	// read transaction does.
	return pgdb.InTx(ctx, e.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error { return fn(&pgTx{ctx: ctx, tx: tx}) })
}

func (e *pgEngine) update(fn func(storeTx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
	defer cancel()
	return pgdb.InTx(ctx, e.pool, pgx.TxOptions{IsoLevel: pgx.Serializable},
		func(tx pgx.Tx) error { return fn(&pgTx{ctx: ctx, tx: tx}) })
}

// lockedTxAttempts bounds the runs of a transaction under
// updateOneAtATime's lock that PostgreSQL aborted for a conflict with a
// writer outside it (as pgdb.InTx bounds its own).
const lockedTxAttempts = 10

// updateOneAtATime takes a session advisory lock on key before the
// transaction begins, on the connection that runs it: a waiter's snapshot
// is taken once it holds the lock, so it sees what the one before it
// committed (a lock taken inside a SERIALIZABLE transaction would leave it
// a snapshot from before, and the conflict would abort it anyway).
func (e *pgEngine) updateOneAtATime(key string, fn func(storeTx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
	defer cancel()
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, pgLockPrefix+key); err != nil {
		// Waiting was cut short: the lock may have been granted as the
		// statement was cancelled; a closed session holds none.
		conn.Conn().Close(context.Background())
		return fmt.Errorf("lock %s: %w", key, err)
	}
	defer func() {
		if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, pgLockPrefix+key); err != nil {
			conn.Conn().Close(context.Background()) // the session's end frees the lock
		}
	}()
	for attempt := 1; ; attempt++ {
		err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.Serializable},
			func(tx pgx.Tx) error { return fn(&pgTx{ctx: ctx, tx: tx}) })
		if !pgdb.Retryable(err) || attempt == lockedTxAttempts {
			return err
		}
	}
}

// pgLockPrefix names the store's advisory locks apart from other stores'.
const pgLockPrefix = "bookings:"

func (e *pgEngine) close() error {
	e.locksOnce.Do(func() {}) // none made from now on
	if e.locks != nil {
		e.locks.Close()
	}
	return nil
}

// claimDue runs at READ COMMITTED, not SERIALIZABLE: the row locks of FOR
// UPDATE SKIP LOCKED keep two replicas off one delivery, and each skips
// what the other holds instead of both being aborted for reading it.
func (e *pgEngine) claimDue(owner string, now, until time.Time, max int) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
	defer cancel()
	var docs [][]byte
	err := pgdb.InTx(ctx, e.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE bookings_deliveries SET claimed_by = $1, claimed_until = $3
			WHERE id IN (SELECT id FROM bookings_deliveries
				WHERE queued AND (due IS NULL OR due <= $2) AND (claimed_until IS NULL OR claimed_until <= $2)
				ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
			RETURNING doc`, owner, now, until, max)
		if err != nil {
			return err
		}
		docs, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim due deliveries: %w", err)
	}
	return docs, nil
}

func (e *pgEngine) shared() bool { return true }

// claim runs at READ COMMITTED under a transaction advisory lock of the
// delivery's assignment: the claims of one assignment are one at a time
// across replicas (a statement of milliseconds), so that the assignment
// rule, which reads other rows than the one it writes (all of them the
// assignment's), sees every claim of the assignment committed before it
// (two claims at once could each miss the other's). Claims of different
// assignments run side by side: one lock for every claim made the replicas'
// lanes queue behind each other's refused claims, and a burst's grants
// waited seconds for their turn. The delivery's own row is locked by the
// UPDATE; a worker storing its outcome meanwhile makes the UPDATE see the
// row as stored.
func (e *pgEngine) claim(owner string, id, a int64, now, until time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
	defer cancel()
	var n int64
	err := pgdb.InTx(ctx, e.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
			pgLockPrefix+"claim:"+strconv.FormatInt(a, 10)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE bookings_deliveries d SET claimed_by = $1, claimed_until = $5
			WHERE d.id = $2 AND d.queued AND (d.due IS NULL OR d.due <= $4)
				AND (d.claimed_until IS NULL OR d.claimed_until <= $4)
				AND NOT EXISTS (SELECT 1 FROM bookings_deliveries o
					WHERE o.queued AND o.assignment_id = $3 AND o.id <> d.id
						AND (o.claimed_until > $4 OR (o.id < d.id AND (o.due IS NULL OR o.due <= $4))))`,
			owner, id, a, now, until)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claim delivery %d: %w", id, err)
	}
	return n == 1, nil
}

func (e *pgEngine) renewClaims(owner string, ids []int64, until time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
	defer cancel()
	if _, err := e.pool.Exec(ctx, `UPDATE bookings_deliveries SET claimed_until = $3
		WHERE claimed_by = $1 AND id = ANY($2) AND queued`, owner, ids, until); err != nil {
		return fmt.Errorf("renew claims of %s: %w", owner, err)
	}
	return nil
}

func (e *pgEngine) releaseClaims(owner string, ids []int64) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
	defer cancel()
	sql, args := `UPDATE bookings_deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1`, []any{owner}
	if ids != nil {
		sql, args = sql+` AND id = ANY($2)`, append(args, ids)
	}
	tag, err := e.pool.Exec(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("release claims of %s: %w", owner, err)
	}
	return int(tag.RowsAffected()), nil
}

// pgTable is the table of a record kind and its key columns, in key order.
type pgTable struct {
	name string
	keys []string
	// The statements, made from name and keys once.
	get, put, del, scan, scanByID, clear string
}

var pgTables = func() [numTables]pgTable {
	ts := [numTables]pgTable{
		tBoxes:      {name: "bookings_boxes", keys: []string{"box_id"}},
		tLinks:      {name: "bookings_links", keys: []string{"vehicle_id"}},
		tDeliveries: {name: "bookings_deliveries", keys: []string{"id"}},
		tBookings:   {name: "bookings_bookings", keys: []string{"assignment_id"}},
		tPrompts:    {name: "bookings_prompts", keys: []string{"assignment_id"}},
		tDrivers:    {name: "bookings_drivers", keys: []string{"contact_id"}},
		tEvents:     {name: "bookings_watch_events", keys: []string{"assignment_id", "box_id", "seq"}},
		tOverdue:    {name: "bookings_watch_overdue", keys: []string{"assignment_id"}},
		tAlerts:     {name: "bookings_watch_alerts", keys: []string{"kind", "subject"}},
		tReturns:    {name: "bookings_watch_returns", keys: []string{"box_id", "key_id"}},
	}
	for i := range ts {
		t := &ts[i]
		var where, params []string
		for j, k := range t.keys {
			where = append(where, fmt.Sprintf("%s = $%d", k, j+1))
			params = append(params, fmt.Sprintf("$%d", j+1))
		}
		keys, cond := strings.Join(t.keys, ", "), strings.Join(where, " AND ")
		t.get = fmt.Sprintf("SELECT doc FROM %s WHERE %s", t.name, cond)
		t.put = fmt.Sprintf("INSERT INTO %s (%s, doc) VALUES (%s, $%d) ON CONFLICT (%s) DO UPDATE SET doc = EXCLUDED.doc",
			t.name, keys, strings.Join(params, ", "), len(t.keys)+1, keys)
		t.del = fmt.Sprintf("DELETE FROM %s WHERE %s", t.name, cond)
		t.scan = fmt.Sprintf("SELECT %s, doc FROM %s ORDER BY %s", keys, t.name, keys)
		t.scanByID = fmt.Sprintf("SELECT %s, doc FROM %s WHERE %s = $1 ORDER BY %s", keys, t.name, t.keys[0], keys)
		t.clear = fmt.Sprintf("DELETE FROM %s", t.name)
	}
	return ts
}()

// pgKeyArgs is k as the values of t's key columns.
func pgKeyArgs(t table, k recKey) []any {
	switch t {
	case tBoxes:
		return []any{k.BoxID}
	case tEvents:
		return []any{k.ID, k.BoxID, int64(k.Seq)} // a box's seq counts from 1, far below 2^63
	case tAlerts:
		return []any{k.Kind, k.Subject}
	case tReturns:
		return []any{k.BoxID, k.KeyID}
	}
	return []any{k.ID}
}

type pgTx struct {
	ctx context.Context
	tx  pgx.Tx
}

// one reads the first column of the one row a query gives; false if none.
func pgOne[T any](p *pgTx, sql string, args ...any) (T, bool, error) {
	var v T
	err := p.tx.QueryRow(p.ctx, sql, args...).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, false, nil
	}
	return v, err == nil, err
}

func (p *pgTx) exec(sql string, args ...any) error {
	_, err := p.tx.Exec(p.ctx, sql, args...)
	return err
}

func (p *pgTx) get(t table, k recKey) ([]byte, bool, error) {
	return pgOne[[]byte](p, pgTables[t].get, pgKeyArgs(t, k)...)
}

func (p *pgTx) put(t table, k recKey, doc []byte) error {
	if t == tBookings {
		return fmt.Errorf("%s record %s: store a booking with putBooking (its waiting_box)", t, k)
	}
	return p.exec(pgTables[t].put, append(pgKeyArgs(t, k), doc)...)
}

func (p *pgTx) putBooking(id int64, waitingBox string, doc []byte) error {
	return p.exec(`INSERT INTO bookings_bookings (assignment_id, doc, waiting_box) VALUES ($1, $2, $3)
		ON CONFLICT (assignment_id) DO UPDATE SET doc = EXCLUDED.doc, waiting_box = EXCLUDED.waiting_box`,
		id, doc, waitingBox)
}

// waiting reads the partial index bookings_bookings_waiting (the rows
// whose waiting_box is not empty). A box's query states that condition
// again: the plan of a prepared statement is made for any $1, and without
// it PostgreSQL cannot tell that $1 is not empty and scans the table.
func (p *pgTx) waiting(boxID string, fn func([]byte) error) error {
	sql, args := `SELECT doc FROM bookings_bookings WHERE waiting_box <> '' ORDER BY assignment_id`, []any(nil)
	if boxID != "" {
		sql, args = `SELECT doc FROM bookings_bookings WHERE waiting_box = $1 AND waiting_box <> '' ORDER BY assignment_id`, []any{boxID}
	}
	rows, err := p.tx.Query(p.ctx, sql, args...)
	if err != nil {
		return err
	}
	return p.eachDoc(rows, "the waiting index", fn)
}

func (p *pgTx) del(t table, k recKey) error { return p.exec(pgTables[t].del, pgKeyArgs(t, k)...) }

type pgRec struct {
	k   recKey
	doc []byte
}

func (p *pgTx) scan(t table, byID bool, id int64, fn func(recKey, []byte) error) error {
	sql, args := pgTables[t].scan, []any(nil)
	if byID {
		switch t {
		case tBoxes, tAlerts, tReturns:
			return fmt.Errorf("%s: no records by id", t)
		}
		sql, args = pgTables[t].scanByID, []any{id}
	}
	rows, err := p.tx.Query(p.ctx, sql, args...)
	if err != nil {
		return err
	}
	// Collected first: fn may query in the same transaction, which a
	// connection cannot while rows are open.
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pgRec, error) {
		var r pgRec
		var seq int64
		var err error
		switch t {
		case tBoxes:
			err = row.Scan(&r.k.BoxID, &r.doc)
		case tEvents:
			err = row.Scan(&r.k.ID, &r.k.BoxID, &seq, &r.doc)
			r.k.Seq = uint64(seq)
		case tAlerts:
			err = row.Scan(&r.k.Kind, &r.k.Subject, &r.doc)
		case tReturns:
			err = row.Scan(&r.k.BoxID, &r.k.KeyID, &r.doc)
		default:
			err = row.Scan(&r.k.ID, &r.doc)
		}
		return r, err
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", t, err)
	}
	for _, r := range recs {
		if err := fn(r.k, r.doc); err != nil {
			return err
		}
	}
	return nil
}

func (p *pgTx) clear(t table) (int, error) {
	tag, err := p.tx.Exec(p.ctx, pgTables[t].clear)
	return int(tag.RowsAffected()), err
}

func (p *pgTx) connection() ([]byte, bool, error) {
	doc, _, err := pgOne[[]byte](p, `SELECT connection FROM bookings_settings`)
	return doc, doc != nil, err
}

// putConnection and putCodeMode write the one settings row, making it
// again if someone deleted it.
func (p *pgTx) putConnection(doc []byte) error {
	return p.exec(`INSERT INTO bookings_settings (one, connection) VALUES (true, $1)
		ON CONFLICT (one) DO UPDATE SET connection = EXCLUDED.connection`, doc)
}

func (p *pgTx) deleteConnection() error {
	return p.exec(`UPDATE bookings_settings SET connection = NULL`)
}

func (p *pgTx) codeMode() (string, error) {
	m, _, err := pgOne[string](p, `SELECT code_mode FROM bookings_settings`)
	return m, err
}

func (p *pgTx) putCodeMode(m string) error {
	return p.exec(`INSERT INTO bookings_settings (one, code_mode) VALUES (true, $1)
		ON CONFLICT (one) DO UPDATE SET code_mode = EXCLUDED.code_mode`, m)
}

// pgDue is a delivery's due column: NULL when it is due at once.
func pgDue(d Delivery) *time.Time {
	if d.NextAttempt.IsZero() {
		return nil
	}
	return &d.NextAttempt
}

// putDelivery also ends a claim on the delivery: whoever claimed it has
// done with it (done, failed, or queued again for a later attempt).
func (p *pgTx) putDelivery(d Delivery, doc []byte) error {
	return p.exec(`INSERT INTO bookings_deliveries (id, doc, queued, due, assignment_id) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, queued = EXCLUDED.queued, due = EXCLUDED.due,
			assignment_id = EXCLUDED.assignment_id, claimed_by = NULL, claimed_until = NULL`,
		d.ID, doc, d.State == DeliveryQueued, pgDue(d), deliveryAssignment(d))
}

func (p *pgTx) addDelivery(d Delivery, doc []byte) (bool, error) {
	tag, err := p.tx.Exec(p.ctx, `INSERT INTO bookings_deliveries (id, doc, queued, due, assignment_id) VALUES ($1, $2, true, $3, $4)
		ON CONFLICT (id) DO NOTHING`, d.ID, doc, pgDue(d), deliveryAssignment(d))
	return tag.RowsAffected() == 1, err
}

func (p *pgTx) queued(fn func([]byte) error) error {
	rows, err := p.tx.Query(p.ctx, `SELECT doc FROM bookings_deliveries WHERE queued ORDER BY id`)
	if err != nil {
		return err
	}
	return p.eachDoc(rows, "the queue", fn)
}

// claimable leaves out what a claim would refuse for another replica's
// live claim, so that a lane's pass does not spend a claim transaction
// (one at a time across replicas) on each delivery the other replicas are
// working on: with three replicas at 100 webhooks a second those refusals
// were most of the claims, and grants waited behind them for seconds.
func (p *pgTx) claimable(owner string, now time.Time, fn func([]byte, bool) error) error {
	rows, err := p.tx.Query(p.ctx, `SELECT q.doc, q.held FROM (
		SELECT d.id, EXISTS (SELECT 1 FROM bookings_deliveries o
				WHERE o.queued AND o.claimed_until > $2 AND o.claimed_by <> $1
					AND (o.id = d.id OR o.assignment_id = d.assignment_id)) AS held,
			d.doc
		FROM bookings_deliveries d WHERE d.queued) q ORDER BY q.id`, owner, now)
	if err != nil {
		return err
	}
	type row struct {
		doc  []byte
		held bool
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.doc, &x.held)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("read the queue: %w", err)
	}
	for _, x := range got {
		if x.held {
			x.doc = nil
		}
		if err := fn(x.doc, x.held); err != nil {
			return err
		}
	}
	return nil
}

// eachDoc hands fn the documents of rows, read first (fn may query).
func (p *pgTx) eachDoc(rows pgx.Rows, what string, fn func([]byte) error) error {
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	for _, doc := range docs {
		if err := fn(doc); err != nil {
			return err
		}
	}
	return nil
}

func (p *pgTx) queueDepth() (int, error) {
	n, _, err := pgOne[int64](p, `SELECT count(*) FROM bookings_deliveries WHERE queued`)
	return int(n), err
}

// nextInternalSeq: a sequence is not rolled back with the transaction, so
// a transaction run again skips a number; the ids stay unique.
func (p *pgTx) nextInternalSeq() (uint64, error) {
	n, _, err := pgOne[int64](p, `SELECT nextval('bookings_internal_delivery_seq')`)
	return uint64(n), err
}

func (p *pgTx) tokenBooking(hash []byte) (int64, bool, error) {
	return pgOne[int64](p, `SELECT assignment_id FROM bookings_tokens WHERE token_hash = $1`, hash)
}

func (p *pgTx) putToken(hash []byte, assignmentID int64) error {
	return p.exec(`INSERT INTO bookings_tokens (token_hash, assignment_id) VALUES ($1, $2)
		ON CONFLICT (token_hash) DO UPDATE SET assignment_id = EXCLUDED.assignment_id`, hash, assignmentID)
}

func (p *pgTx) deleteToken(hash []byte) error {
	return p.exec(`DELETE FROM bookings_tokens WHERE token_hash = $1`, hash)
}

func (p *pgTx) holder(boxID, keyID string) (int64, bool, error) {
	return pgOne[int64](p, `SELECT assignment_id FROM bookings_watch_holders WHERE box_id = $1 AND key_id = $2`, boxID, keyID)
}

func (p *pgTx) putHolder(boxID, keyID string, assignmentID int64) error {
	return p.exec(`INSERT INTO bookings_watch_holders (box_id, key_id, assignment_id) VALUES ($1, $2, $3)
		ON CONFLICT (box_id, key_id) DO UPDATE SET assignment_id = EXCLUDED.assignment_id`, boxID, keyID, assignmentID)
}

func (p *pgTx) deleteHolder(boxID, keyID string) error {
	return p.exec(`DELETE FROM bookings_watch_holders WHERE box_id = $1 AND key_id = $2`, boxID, keyID)
}

func (p *pgTx) holders(fn func(heldKey) error) error {
	rows, err := p.tx.Query(p.ctx, `SELECT box_id, key_id, assignment_id FROM bookings_watch_holders ORDER BY box_id, key_id`)
	if err != nil {
		return err
	}
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (heldKey, error) {
		var h heldKey
		return h, row.Scan(&h.BoxID, &h.KeyID, &h.AssignmentID)
	})
	if err != nil {
		return fmt.Errorf("read holders: %w", err)
	}
	for _, h := range hs {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

func (p *pgTx) seen(boxID string) (uint64, error) {
	n, _, err := pgOne[int64](p, `SELECT seq FROM bookings_watch_seen WHERE box_id = $1`, boxID)
	return uint64(n), err
}

func (p *pgTx) putSeen(boxID string, seq uint64) error {
	return p.exec(`INSERT INTO bookings_watch_seen (box_id, seq) VALUES ($1, $2)
		ON CONFLICT (box_id) DO UPDATE SET seq = EXCLUDED.seq`, boxID, int64(seq))
}
