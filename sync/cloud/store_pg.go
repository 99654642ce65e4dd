package cloud

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartbox-oss/smartbox/sync/pgdb"
)

// The PostgreSQL engine: the tables of migrations/00001_cloud.sql, one row
// per record. Any number of Clouds (replicas) may run on one database:
//
//   - every update of a box is one transaction that first locks the box's
//     cloud_boxes row (SELECT ... FOR UPDATE), so a box's revisions are
//     bumped one after the other, in the database, whichever replica makes
//     them; a view is one REPEATABLE READ snapshot;
//   - events are keyed by (box_id, seq): under the box's lock the second
//     replica to get a batch sees the first one's events and acks them as
//     duplicates (and ON CONFLICT DO NOTHING stores none twice anyway);
//   - the store-wide meta (the code key) is set with INSERT ... ON
//     CONFLICT DO NOTHING and read back, so two replicas opening a new
//     database at once agree on one key.
//
// Round trips: writes are queued and sent with the next read, or at
// commit, in one pgx batch; a record put costs its reads (the record, its
// fob or its keys, its code's holders), not one trip per row written.

//go:embed migrations/*.sql
var migrationFiles embed.FS

// pgStoreName is the store's name for pgdb.Migrate: its version table is
// cloud_schema.
const pgStoreName = "cloud"

// pgTxTimeout bounds one transaction. The longest are a PutBatch of
// 100,000 grants (about 20 s on a test machine, as long as on bbolt: the
// time goes into sealing and indexing each code, not into round trips) and
// a snapshot of such a box (one query streamed, about 4 s); five minutes
// says the database is stuck, not busy.
const pgTxTimeout = 5 * time.Minute

type pgStore struct {
	pool   *pgxpool.Pool
	name   string
	closed atomic.Bool // Close was called: the pool is the caller's, but this Cloud is done
}

// errClosed: the Cloud was closed (bbolt says the same with its own error).
var errClosed = errors.New("cloud store closed")

var _ store = (*pgStore)(nil)

func migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded directory is there: go:embed checked it
	}
	return sub
}

// openPostgres applies the cloud's migrations to pool's database.
func openPostgres(pool *pgxpool.Pool, log *slog.Logger) (*pgStore, error) {
	cfg := pool.Config().ConnConfig
	s := &pgStore{pool: pool, name: fmt.Sprintf("postgres %s:%d/%s", cfg.Host, cfg.Port, cfg.Database)}
	ctx, cancel := context.WithTimeout(context.Background(), pgdb.MigrateLockWait+pgTxTimeout)
	defer cancel()
	if err := pgdb.Migrate(ctx, pool, pgStoreName, migrations(), log); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *pgStore) where() string { return s.name }
func (s *pgStore) close() error {
	s.closed.Store(true) // the pool is the caller's: left open
	return nil
}

var (
	txRead  = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	txWrite = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
)

func (s *pgStore) inTx(opts pgx.TxOptions, fn func(ctx context.Context, tx pgx.Tx) error) error {
	if s.closed.Load() {
		return errClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgTxTimeout)
	defer cancel()
	return pgdb.InTx(ctx, s.pool, opts, func(tx pgx.Tx) error { return fn(ctx, tx) })
}

type pgMeta struct {
	ctx context.Context
	tx  pgx.Tx
}

func (m pgMeta) get(name string) ([]byte, error) {
	var v []byte
	err := m.tx.QueryRow(m.ctx, `SELECT value FROM cloud_meta WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

func (m pgMeta) putIfAbsent(name string, v []byte) ([]byte, error) {
	// Under READ COMMITTED the insert waits for another transaction
	// inserting the same name and then does nothing; the select, a new
	// statement, sees what that one committed.
	if _, err := m.tx.Exec(m.ctx, `INSERT INTO cloud_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		name, v); err != nil {
		return nil, err
	}
	return m.get(name)
}

func (s *pgStore) meta(fn func(metaTx) error) error {
	return s.inTx(txWrite, func(ctx context.Context, tx pgx.Tx) error { return fn(pgMeta{ctx, tx}) })
}

const selectBox = `SELECT pub, rev, logstart, highseq, seqbase, seqbase_pending, status FROM cloud_boxes WHERE id = $1`

func (s *pgStore) box(boxID string, opts pgx.TxOptions, lock, create bool, fn func(boxTx) error) error {
	if hasNUL(boxID) {
		// text holds no NUL, so no box has such an id; say so rather
		// than pass on the database's encoding error.
		return fmt.Errorf("%w %q", ErrUnknownBox, boxID)
	}
	return s.inTx(opts, func(ctx context.Context, tx pgx.Tx) error {
		bt := &pgBox{ctx: ctx, tx: tx, id: boxID, keys: map[string][]byte{}, grants: map[string][]byte{},
			codes: map[string][]string{}}
		if create {
			bt.write("making the box", `INSERT INTO cloud_boxes (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, boxID)
		}
		q := selectBox
		if lock {
			q += ` FOR UPDATE`
		}
		found := false
		err := bt.query(q, []any{boxID}, func(r pgx.Rows) error {
			found = true
			return r.Scan(&bt.m.Pub, &bt.m.Rev, &bt.m.LogStart, &bt.m.HighSeq, &bt.m.SeqBase,
				&bt.m.SeqBasePending, &bt.m.Status)
		})
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w %q", ErrUnknownBox, boxID)
		}
		if err := fn(bt); err != nil {
			return err
		}
		return bt.flush()
	})
}

func (s *pgStore) view(boxID string, fn func(boxTx) error) error {
	return s.box(boxID, txRead, false, false, fn)
}

func (s *pgStore) update(boxID string, fn func(boxTx) error) error {
	return s.box(boxID, txWrite, true, false, fn)
}

func (s *pgStore) register(boxID string, fn func(boxTx) error) error {
	return s.box(boxID, txWrite, true, true, fn)
}

func (s *pgStore) boxes() ([]string, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgTxTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id FROM cloud_boxes ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// pgBox is one box inside a PostgreSQL transaction.
type pgBox struct {
	ctx     context.Context
	tx      pgx.Tx
	id      string
	m       boxMeta
	pending pgx.Batch // writes not sent yet: they go with the next read
	what    []string  // what each pending write does, for its error
	reading bool      // a forEach is reading rows: fn must not call back
	err     error     // a failed send of queued writes (see write)
	// keys caches the key documents this transaction read or wrote (nil:
	// known absent). A box has tens of keys and a batch of grants names
	// them over and over; the box's row lock (or the view's snapshot)
	// keeps the cache true for the transaction.
	keys map[string][]byte
	// grants and codes are the same for grant documents and the code
	// index (code MAC -> grant ids, sorted; a MAC present is complete).
	grants map[string][]byte
	codes  map[string][]string
}

// hasNUL: PostgreSQL's text cannot hold the byte 0, so no stored id has it.
func hasNUL(id string) bool { return strings.IndexByte(id, 0) >= 0 }

var _ boxTx = (*pgBox)(nil)

var errReentered = errors.New("cloud: postgres: a forEach callback called its transaction back")

// maxPendingWrites bounds the writes queued before they are sent without
// waiting for a read: a batch of 100,000 grants goes in round trips of
// this many statements, not in one message of hundreds of megabytes.
const maxPendingWrites = 1000

// write queues a statement that returns nothing. An error sending a full
// queue is kept and returned by the next read or the commit.
func (p *pgBox) write(what, sql string, args ...any) {
	p.pending.Queue(sql, args...)
	p.what = append(p.what, what)
	if p.pending.Len() >= maxPendingWrites && p.err == nil {
		p.err = p.flush()
	}
}

// query sends the pending writes and then sql in one round trip, and calls
// fn on each row of sql's result. sql "" only sends the writes.
func (p *pgBox) query(sql string, args []any, fn func(pgx.Rows) error) error {
	if p.reading {
		return errReentered
	}
	if p.err != nil {
		return p.err
	}
	b, what := p.pending, p.what
	p.pending, p.what = pgx.Batch{}, nil
	if sql != "" {
		b.Queue(sql, args...)
	}
	if b.Len() == 0 {
		return nil
	}
	br := p.tx.SendBatch(p.ctx, &b)
	for _, w := range what {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("box %s: %s: %w", p.id, w, err)
		}
	}
	if sql != "" {
		rows, err := br.Query()
		if err == nil {
			p.reading = true
			for err == nil && rows.Next() {
				err = fn(rows)
			}
			p.reading = false
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		if err != nil {
			br.Close()
			return fmt.Errorf("box %s: %w", p.id, err)
		}
	}
	return br.Close()
}

func (p *pgBox) flush() error { return p.query("", nil, nil) }

// doc is the document of one row, nil if there is none.
func (p *pgBox) doc(sql string, args ...any) ([]byte, error) {
	var v []byte
	err := p.query(sql, args, func(r pgx.Rows) error { return r.Scan(&v) })
	return v, err
}

func (p *pgBox) docsByID(sql string, ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	err := p.query(sql, []any{p.id, ids}, func(r pgx.Rows) error {
		var id string
		var v []byte
		if err := r.Scan(&id, &v); err != nil {
			return err
		}
		out[id] = v
		return nil
	})
	return out, err
}

func (p *pgBox) forEachID(sql string, args []any, fn func(string, []byte) error) error {
	return p.query(sql, args, func(r pgx.Rows) error {
		var id string
		var v []byte
		if err := r.Scan(&id, &v); err != nil {
			return err
		}
		return fn(id, v)
	})
}

func (p *pgBox) forEachSeq(sql string, args []any, fn func(uint64, []byte) error) error {
	return p.query(sql, args, func(r pgx.Rows) error {
		var n uint64
		var v []byte
		if err := r.Scan(&n, &v); err != nil {
			return err
		}
		return fn(n, v)
	})
}

func (p *pgBox) boxID() string { return p.id }
func (p *pgBox) meta() boxMeta { return p.m }

func (p *pgBox) prefetch(keyIDs, grantIDs []string, macs [][]byte) error {
	if _, err := p.keysByID(keyIDs); err != nil {
		return err
	}
	var missing []string
	for _, id := range grantIDs {
		if _, ok := p.grants[id]; !ok && !hasNUL(id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		found, err := p.docsByID(`SELECT id, doc FROM cloud_grants WHERE box_id = $1 AND id = ANY($2)`, missing)
		if err != nil {
			return err
		}
		for _, id := range missing {
			p.grants[id] = found[id]
		}
	}
	var unknown [][]byte
	for _, mac := range macs {
		if _, ok := p.codes[string(mac)]; !ok {
			p.codes[string(mac)] = nil // complete once the query below is read
			unknown = append(unknown, mac)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	return p.query(`SELECT c.code_mac, c.grant_id, g.doc FROM cloud_codes c
		LEFT JOIN cloud_grants g ON g.box_id = c.box_id AND g.id = c.grant_id
		WHERE c.box_id = $1 AND c.code_mac = ANY($2) ORDER BY c.code_mac, c.grant_id`, []any{p.id, unknown},
		p.scanCodeRow)
}

// scanCodeRow caches one row of the code index with its grant's document.
func (p *pgBox) scanCodeRow(r pgx.Rows) error {
	var mac []byte
	var id string
	var doc []byte
	if err := r.Scan(&mac, &id, &doc); err != nil {
		return err
	}
	p.codes[string(mac)] = append(p.codes[string(mac)], id)
	if _, ok := p.grants[id]; !ok {
		p.grants[id] = doc
	}
	return nil
}

func (p *pgBox) setMeta(m boxMeta) error {
	// The whole row: one statement whatever changed, none if nothing did.
	if sameMeta(p.m, m) {
		return nil
	}
	pub := m.Pub
	if pub == nil {
		pub = []byte{}
	}
	p.write("saving the box's meta", `UPDATE cloud_boxes SET pub = $2, rev = $3, logstart = $4, highseq = $5,
		seqbase = $6, seqbase_pending = $7, status = $8 WHERE id = $1`,
		p.id, pub, m.Rev, m.LogStart, m.HighSeq, m.SeqBase, m.SeqBasePending, jsonOrNull(m.Status))
	p.m = m
	return nil
}

// jsonOrNull passes a nil document as SQL NULL.
func jsonOrNull(v []byte) any {
	if v == nil {
		return nil
	}
	return string(v)
}

func (p *pgBox) key(id string) ([]byte, error) {
	docs, err := p.keysByID([]string{id})
	return docs[id], err
}

func (p *pgBox) keysByID(ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	var missing []string
	for _, id := range ids {
		if doc, ok := p.keys[id]; ok {
			if doc != nil {
				out[id] = doc
			}
		} else if !hasNUL(id) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	found, err := p.docsByID(`SELECT id, doc FROM cloud_keys WHERE box_id = $1 AND id = ANY($2)`, missing)
	if err != nil {
		return nil, err
	}
	for _, id := range missing {
		p.keys[id] = found[id]
		if found[id] != nil {
			out[id] = found[id]
		}
	}
	return out, nil
}

func (p *pgBox) putKey(id string, doc []byte) error {
	p.write("putting key "+id, `INSERT INTO cloud_keys (box_id, id, doc) VALUES ($1, $2, $3)
		ON CONFLICT (box_id, id) DO UPDATE SET doc = EXCLUDED.doc`, p.id, id, string(doc))
	p.keys[id] = bytes.Clone(doc)
	return nil
}

func (p *pgBox) deleteKey(id string) error {
	p.write("deleting key "+id, `DELETE FROM cloud_keys WHERE box_id = $1 AND id = $2`, p.id, id)
	p.keys[id] = nil
	return nil
}

func (p *pgBox) forEachKey(fn func(string, []byte) error) error {
	return p.forEachID(`SELECT id, doc FROM cloud_keys WHERE box_id = $1 ORDER BY id`, []any{p.id}, fn)
}

func (p *pgBox) fobKey(fob string) (string, error) {
	if hasNUL(fob) {
		return "", nil
	}
	v, err := p.doc(`SELECT key_id FROM cloud_fobs WHERE box_id = $1 AND fob = $2`, p.id, fob)
	return string(v), err
}

func (p *pgBox) putFob(fob, keyID string) error {
	p.write("putting fob "+fob, `INSERT INTO cloud_fobs (box_id, fob, key_id) VALUES ($1, $2, $3)
		ON CONFLICT (box_id, fob) DO UPDATE SET key_id = EXCLUDED.key_id`, p.id, fob, keyID)
	return nil
}

func (p *pgBox) deleteFob(fob string) error {
	p.write("deleting fob "+fob, `DELETE FROM cloud_fobs WHERE box_id = $1 AND fob = $2`, p.id, fob)
	return nil
}

func (p *pgBox) grant(id string) ([]byte, error) {
	if hasNUL(id) {
		return nil, nil
	}
	if doc, ok := p.grants[id]; ok {
		return doc, nil
	}
	doc, err := p.doc(`SELECT doc FROM cloud_grants WHERE box_id = $1 AND id = $2`, p.id, id)
	if err == nil {
		p.grants[id] = doc
	}
	return doc, err
}

func (p *pgBox) grantsByID(ids []string) (map[string][]byte, error) {
	ids = slices.DeleteFunc(slices.Clone(ids), hasNUL)
	return p.docsByID(`SELECT id, doc FROM cloud_grants WHERE box_id = $1 AND id = ANY($2)`, ids)
}

func (p *pgBox) putGrant(id string, doc []byte) error {
	p.write("putting grant "+id, `INSERT INTO cloud_grants (box_id, id, doc) VALUES ($1, $2, $3)
		ON CONFLICT (box_id, id) DO UPDATE SET doc = EXCLUDED.doc`, p.id, id, string(doc))
	p.grants[id] = bytes.Clone(doc)
	return nil
}

func (p *pgBox) deleteGrant(id string) error {
	p.write("deleting grant "+id, `DELETE FROM cloud_grants WHERE box_id = $1 AND id = $2`, p.id, id)
	p.grants[id] = nil
	return nil
}

func (p *pgBox) forEachGrant(fn func(string, []byte) error) error {
	return p.forEachID(`SELECT id, doc FROM cloud_grants WHERE box_id = $1 ORDER BY id`, []any{p.id}, fn)
}

func (p *pgBox) putCode(mac []byte, grantID string) error {
	p.write("indexing the code of grant "+grantID, `INSERT INTO cloud_codes (box_id, code_mac, grant_id)
		VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, p.id, mac, grantID)
	if ids, ok := p.codes[string(mac)]; ok {
		if i, found := slices.BinarySearch(ids, grantID); !found {
			p.codes[string(mac)] = slices.Insert(ids, i, grantID)
		}
	}
	return nil
}

func (p *pgBox) deleteCode(mac []byte, grantID string) error {
	p.write("unindexing the code of grant "+grantID,
		`DELETE FROM cloud_codes WHERE box_id = $1 AND code_mac = $2 AND grant_id = $3`, p.id, mac, grantID)
	if ids, ok := p.codes[string(mac)]; ok {
		if i, found := slices.BinarySearch(ids, grantID); found {
			p.codes[string(mac)] = slices.Delete(ids, i, i+1)
		}
	}
	return nil
}

func (p *pgBox) forEachCodeGrant(mac []byte, fn func(string, []byte) error) error {
	ids, ok := p.codes[string(mac)]
	if !ok {
		p.codes[string(mac)] = nil
		if err := p.query(`SELECT c.code_mac, c.grant_id, g.doc FROM cloud_codes c
			LEFT JOIN cloud_grants g ON g.box_id = c.box_id AND g.id = c.grant_id
			WHERE c.box_id = $1 AND c.code_mac = $2 ORDER BY c.grant_id`, []any{p.id, mac}, p.scanCodeRow); err != nil {
			delete(p.codes, string(mac))
			return err
		}
		ids = p.codes[string(mac)]
	}
	var missing []string
	for _, id := range ids {
		if _, ok := p.grants[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 { // indexed after the index was read: fetch their documents
		found, err := p.docsByID(`SELECT id, doc FROM cloud_grants WHERE box_id = $1 AND id = ANY($2)`, missing)
		if err != nil {
			return err
		}
		for _, id := range missing {
			p.grants[id] = found[id]
		}
	}
	for _, id := range slices.Clone(ids) {
		if err := fn(id, p.grants[id]); err != nil {
			return err
		}
	}
	return nil
}

func (p *pgBox) putLog(rev uint64, doc []byte) error {
	p.write(fmt.Sprintf("logging revision %d", rev), `INSERT INTO cloud_log (box_id, rev, doc) VALUES ($1, $2, $3)
		ON CONFLICT (box_id, rev) DO UPDATE SET doc = EXCLUDED.doc`, p.id, rev, string(doc))
	return nil
}

func (p *pgBox) forEachLog(from, to uint64, fn func(uint64, []byte) error) error {
	if from > math.MaxInt64 {
		return nil
	}
	to = min(to, math.MaxInt64)
	return p.forEachSeq(`SELECT rev, doc FROM cloud_log WHERE box_id = $1 AND rev BETWEEN $2 AND $3 ORDER BY rev`,
		[]any{p.id, from, to}, fn)
}

func (p *pgBox) deleteLog(from, to uint64) error {
	if from > to || from > math.MaxInt64 {
		return nil
	}
	p.write(fmt.Sprintf("trimming the log (%d..%d)", from, to),
		`DELETE FROM cloud_log WHERE box_id = $1 AND rev BETWEEN $2 AND $3`, p.id, from, min(to, math.MaxInt64))
	return nil
}

func (p *pgBox) putEvent(seq uint64, doc []byte) error {
	// DO NOTHING: under the box's lock no replica stores a seq another
	// stored (the meta says how far they go), but a seq is never stored
	// twice whatever happens.
	p.write(fmt.Sprintf("storing event %d", seq), `INSERT INTO cloud_events (box_id, seq, doc) VALUES ($1, $2, $3)
		ON CONFLICT (box_id, seq) DO NOTHING`, p.id, seq, string(doc))
	return nil
}

func (p *pgBox) forEachEvent(after uint64, limit int, fn func(uint64, []byte) error) error {
	if after >= math.MaxInt64 {
		return nil // no seq is stored past bigint
	}
	return p.forEachSeq(`SELECT seq, doc FROM cloud_events WHERE box_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		[]any{p.id, after, limit}, fn)
}

func (p *pgBox) deleteEventsThrough(seq uint64) (uint64, error) {
	var n uint64
	err := p.query(`WITH d AS (DELETE FROM cloud_events WHERE box_id = $1 AND seq <= $2 RETURNING 1)
		SELECT count(*) FROM d`, []any{p.id, min(seq, math.MaxInt64)}, func(r pgx.Rows) error { return r.Scan(&n) })
	return n, err
}

func (p *pgBox) hasDays() (bool, error) {
	var ok bool
	err := p.query(`SELECT EXISTS (SELECT 1 FROM cloud_event_days WHERE box_id = $1)`, []any{p.id},
		func(r pgx.Rows) error { return r.Scan(&ok) })
	return ok, err
}

func (p *pgBox) putDay(day, seq uint64) error {
	p.write(fmt.Sprintf("indexing day %d", day), `INSERT INTO cloud_event_days (box_id, day, seq) VALUES ($1, $2, $3)
		ON CONFLICT (box_id, day) DO UPDATE SET seq = EXCLUDED.seq`, p.id, day, seq)
	return nil
}

func (p *pgBox) forEachDayBefore(day uint64, fn func(uint64, uint64) error) error {
	return p.query(`SELECT day, seq FROM cloud_event_days WHERE box_id = $1 AND day < $2 ORDER BY day`,
		[]any{p.id, min(day, math.MaxInt64)}, func(r pgx.Rows) error {
			var d, s uint64
			if err := r.Scan(&d, &s); err != nil {
				return err
			}
			return fn(d, s)
		})
}

func (p *pgBox) deleteDaysBefore(day uint64) error {
	p.write("trimming the day index", `DELETE FROM cloud_event_days WHERE box_id = $1 AND day < $2`,
		p.id, min(day, math.MaxInt64))
	return nil
}

func (p *pgBox) command(id string) ([]byte, error) {
	if hasNUL(id) {
		return nil, nil // a box's answer naming no command the cloud made
	}
	return p.doc(`SELECT doc FROM cloud_commands WHERE box_id = $1 AND id = $2`, p.id, id)
}

func (p *pgBox) putCommand(id string, doc []byte) error {
	p.write("storing command "+id, `INSERT INTO cloud_commands (box_id, id, doc) VALUES ($1, $2, $3)
		ON CONFLICT (box_id, id) DO UPDATE SET doc = EXCLUDED.doc`, p.id, id, string(doc))
	return nil
}
