package bookings

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The integration's locks, behind one small interface so that what is
// serialised holds across replicas on PostgreSQL (advisory locks) and stays
// the in-memory locks it always was on bbolt (one process):
//
//   - work: the queue's workers hold it shared while they process a
//     delivery; Disconnect, CreateBooking, the driver code calls, the code
//     mode, the expiry sweep and each Reconcile repair hold it exclusively.
//   - drivers: the deliveries of bookings that use a driver code, one at a
//     time per driver (see lockDrivers).
//   - named: one of a kind across replicas (SendAlerts: "alerts").
//
// Order, so that no two holders wait on each other: work, then drivers in
// ascending contact order; named locks are never held with the others.
// Nobody waits for work while holding a driver lock, and work is taken
// once (never again while held).
type locker interface {
	// work takes the work lock, shared or exclusive, and returns a
	// context that carries it (drivers taken with that context share its
	// PostgreSQL session).
	work(ctx context.Context, exclusive bool) (context.Context, func(), error)
	drivers(ctx context.Context, ids []int64) (func(), error)
	named(ctx context.Context, name string) (func(), error)
}

// lockWait bounds every wait for a lock on PostgreSQL: a holder is a
// delivery's processing or an exclusive operation, each a few Fleetio calls
// (each bounded by the client's timeout) and store transactions
// (pgOpTimeout): two minutes is well past what one takes, and a waiter cut
// short gets an error (a delivery is retried with its back-off, an admin's
// call answers it) rather than hanging on a replica that hangs. On bbolt the
// locks are in memory and a waiter waits for the holder, bounded by the
// same operations.
const lockWait = 2 * time.Minute

// memLocker is the locker of one process (bbolt).
type memLocker struct {
	w      sync.RWMutex
	ids    idLocks
	mu     sync.Mutex
	byName map[string]*sync.Mutex
}

func (m *memLocker) work(ctx context.Context, exclusive bool) (context.Context, func(), error) {
	if exclusive {
		m.w.Lock()
		return ctx, m.w.Unlock, nil
	}
	m.w.RLock()
	return ctx, m.w.RUnlock, nil
}

func (m *memLocker) drivers(_ context.Context, ids []int64) (func(), error) {
	return m.ids.lock(ids...), nil
}

func (m *memLocker) named(_ context.Context, name string) (func(), error) {
	m.mu.Lock()
	if m.byName == nil {
		m.byName = map[string]*sync.Mutex{}
	}
	l := m.byName[name]
	if l == nil {
		l = &sync.Mutex{}
		m.byName[name] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock, nil
}

// pgLocker takes session advisory locks on connections of a pool of their
// own (the store's lock pool): a lock is held across Fleetio calls, so a
// transaction could not hold it, and a session ends with its locks when
// the process dies (a killed replica holds nothing).
type pgLocker struct{ pool *pgxpool.Pool }

// lockSession is the connection of a held work lock, in its context.
type lockSession struct{ conn *pgxpool.Conn }

type lockSessionKey struct{}

func (p *pgLocker) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock session: %w", err)
	}
	return conn, nil
}

// pgAdvisory runs fn (pg_advisory_lock, ..._shared, ..._unlock...) on key
// in conn's session, waiting at most lockWait. A wait cut short closes the
// session: the lock may have been granted as the statement was cancelled,
// and a closed session holds none.
func pgAdvisory(ctx context.Context, conn *pgxpool.Conn, fn, key string) error {
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT `+fn+`(hashtextextended($1, 0))`, pgLockPrefix+key); err != nil {
		conn.Conn().Close(context.Background())
		return fmt.Errorf("%s %s: %w", fn, key, err)
	}
	return nil
}

// pgUnlock ends a lock taken with pgAdvisory; should that fail, the
// session is closed, which ends every lock it holds.
func pgUnlock(conn *pgxpool.Conn, fn, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT `+fn+`(hashtextextended($1, 0))`, pgLockPrefix+key); err != nil {
		conn.Conn().Close(context.Background())
	}
}

func (p *pgLocker) work(ctx context.Context, exclusive bool) (context.Context, func(), error) {
	conn, err := p.acquire(ctx)
	if err != nil {
		return ctx, nil, err
	}
	lock, unlock := "pg_advisory_lock_shared", "pg_advisory_unlock_shared"
	if exclusive {
		lock, unlock = "pg_advisory_lock", "pg_advisory_unlock"
	}
	// PostgreSQL queues a shared request behind a waiting exclusive one, so
	// an exclusive operation waits at most for the deliveries in progress
	// when it asked, on every replica.
	if err := pgAdvisory(ctx, conn, lock, "work"); err != nil {
		conn.Release()
		return ctx, nil, fmt.Errorf("work lock: %w", err)
	}
	return context.WithValue(ctx, lockSessionKey{}, &lockSession{conn: conn}), func() {
		pgUnlock(conn, unlock, "work")
		conn.Release()
	}, nil
}

func (p *pgLocker) drivers(ctx context.Context, ids []int64) (func(), error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) == 0 {
		return func() {}, nil
	}
	conn, own := (*pgxpool.Conn)(nil), false
	if s, ok := ctx.Value(lockSessionKey{}).(*lockSession); ok {
		conn = s.conn // the work lock's session: one connection per worker
	} else {
		var err error
		if conn, err = p.acquire(ctx); err != nil {
			return nil, err
		}
		own = true
	}
	var held []string
	unlock := func() {
		for _, k := range slices.Backward(held) {
			pgUnlock(conn, "pg_advisory_unlock", k)
		}
		if own {
			conn.Release()
		}
	}
	for _, id := range ids {
		k := "driver:" + strconv.FormatInt(id, 10)
		if err := pgAdvisory(ctx, conn, "pg_advisory_lock", k); err != nil {
			unlock()
			return nil, fmt.Errorf("driver lock: %w", err)
		}
		held = append(held, k)
	}
	return unlock, nil
}

func (p *pgLocker) named(ctx context.Context, name string) (func(), error) {
	conn, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	if err := pgAdvisory(ctx, conn, "pg_advisory_lock", "named:"+name); err != nil {
		conn.Release()
		return nil, err
	}
	return func() {
		pgUnlock(conn, "pg_advisory_unlock", "named:"+name)
		conn.Release()
	}, nil
}

// newLocker is the locker of the store's engine: the database's advisory
// locks on a shared store, with up to sessions connections held at once
// (each worker's, the exclusive operations', SendAlerts'), else memory.
func newLocker(s *Store, sessions int) (locker, error) {
	e, ok := s.eng.(*pgEngine)
	if !ok {
		return &memLocker{}, nil
	}
	pool, err := e.lockPool(int32(sessions))
	if err != nil {
		return nil, err
	}
	return &pgLocker{pool: pool}, nil
}

// lockPool makes (once) the pool of the advisory locks' sessions, a copy
// of the store pool's configuration with at most size connections.
func (e *pgEngine) lockPool(size int32) (*pgxpool.Pool, error) {
	e.locksOnce.Do(func() {
		cfg := e.pool.Config()
		cfg.MaxConns, cfg.MinConns = size, 0
		ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
		defer cancel()
		e.locks, e.locksErr = pgxpool.NewWithConfig(ctx, cfg)
	})
	if e.locks == nil && e.locksErr == nil {
		return nil, fmt.Errorf("bridge store (postgres): closed")
	}
	return e.locks, e.locksErr
}
