package bookings

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// What only replicas hit: several Stores on one PostgreSQL database, each
// on its own pool, as several bridge processes are.

// replicaDB is a new database for replica tests; they run on the postgres
// engine only.
func replicaDB(t *testing.T) string {
	t.Helper()
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("replicas on one database: PostgreSQL only (a bbolt file is one process's, TestStoreFileLocked)")
	}
	return pgtest.New(t)
}

// TestPostgresReplicasAddDeliveryOnce: the same Fleetio delivery landing on
// two replicas at once is stored and queued once.
func TestPostgresReplicasAddDeliveryOnce(t *testing.T) {
	url := replicaDB(t)
	s1, s2 := OpenTestPostgresStore(t, url), OpenTestPostgresStore(t, url)
	require.NoError(t, s1.SetSettings(Settings{APIKey: "k", AccountToken: "t", WebhookSecret: "s"}))
	const deliveries = 40
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	added := map[int64]int{}
	var errs []error
	var wg sync.WaitGroup
	for id := int64(deliveries); id >= 1; id-- { // arrival order is not id order
		for _, s := range []*Store{s1, s2, s1, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.AddDelivery(Delivery{ID: id, Event: "e", Body: []byte(`{}`), ReceivedAt: t0})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if ok {
					added[id]++
				}
			}()
		}
	}
	wg.Wait()
	require.Empty(t, errs)
	for id := int64(1); id <= deliveries; id++ {
		require.Equal(t, 1, added[id], "delivery %d added once", id)
	}
	for _, s := range []*Store{s1, s2} {
		require.Equal(t, deliveries, s.QueueDepth())
		due, _, err := s.Queued(t0)
		require.NoError(t, err)
		require.Len(t, due, deliveries)
		for i, d := range due {
			require.Equal(t, int64(i+1), d.ID, "the queue in id order")
		}
	}
}

// TestPostgresReplicasSealKeyOnce: replicas opening a new database at once
// make one seal key between them, so each opens what another sealed.
func TestPostgresReplicasSealKeyOnce(t *testing.T) {
	url := replicaDB(t)
	ctx := context.Background()
	const replicas = 4
	stores := make([]*Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pool *pgxpool.Pool
			if pool, errs[i] = pgdb.Open(ctx, url, pgdb.Options{MaxConns: 4}); errs[i] != nil {
				return
			}
			t.Cleanup(pool.Close)
			stores[i], errs[i] = OpenPostgresStore(ctx, pool)
		}()
	}
	wg.Wait()
	for i := range replicas {
		require.NoError(t, errs[i], "replica %d", i)
	}
	for i, a := range stores {
		pin, code := a.sealPIN(9, "482913"), a.sealDriverCode(5, "735194")
		for j, b := range stores {
			got, err := b.openPIN(9, pin)
			require.NoError(t, err, "replica %d opens replica %d's PIN", j, i)
			require.Equal(t, "482913", got)
			got, err = b.openDriverCode(5, code)
			require.NoError(t, err, "replica %d opens replica %d's driver code", j, i)
			require.Equal(t, "735194", got)
		}
	}
	pool, err := pgdb.Open(ctx, url, pgdb.Options{MaxConns: 1})
	require.NoError(t, err)
	defer pool.Close()
	var keys int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM bookings_meta WHERE name = 'seal_key'`).Scan(&keys))
	require.Equal(t, 1, keys)
}

// TestPostgresReplicasRaiseOverdueOnce: two replicas' overdue checks
// finding the same key overdue raise its flag, and record its key_overdue,
// once.
func TestPostgresReplicasRaiseOverdueOnce(t *testing.T) {
	url := replicaDB(t)
	s1, s2 := OpenTestPostgresStore(t, url), OpenTestPostgresStore(t, url)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	f := overdueFlag{RaisedAt: at, KeyID: "van-7", BoxID: "box-a"}
	ev := BookingEvent{AssignmentID: 9, Time: at, Type: EventKeyOverdue, KeyID: "van-7", Via: viaBridge}
	var mu sync.Mutex
	raised := 0
	var errs []error
	var wg sync.WaitGroup
	for i := range 16 {
		s := []*Store{s1, s2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.raiseOverdue(9, f, ev)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				raised++
			}
		}()
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Equal(t, 1, raised)
	evs, err := s2.bookingEvents(9)
	require.NoError(t, err)
	require.Len(t, evs, 1)
}

// TestPostgresReplicasInternalDeliveries: the deliveries replicas queue
// themselves at once get ids of their own.
func TestPostgresReplicasInternalDeliveries(t *testing.T) {
	url := replicaDB(t)
	s1, s2 := OpenTestPostgresStore(t, url), OpenTestPostgresStore(t, url)
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	const each = 20
	var mu sync.Mutex
	ids := map[int64]bool{}
	var errs []error
	var wg sync.WaitGroup
	for i := range 2 * each {
		s := []*Store{s1, s2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := s.AddInternalDelivery(EventCreateBooking, int64(i+1), 7, now)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				ids[d.ID] = true
			}
		}()
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Len(t, ids, 2*each)
	for id := range ids {
		require.Greater(t, id, int64(internalDeliveryBase))
	}
	require.Equal(t, 2*each, s1.QueueDepth())
}

// TestPostgresReplicasWatchNoLostUpdate: watch transactions of two
// replicas on one box (each reads the box's seen seq, handles what follows
// and writes it) never lose one another's work: the same box's events
// handled at once on two replicas move its seq once per event.
func TestPostgresReplicasWatchNoLostUpdate(t *testing.T) {
	url := replicaDB(t)
	s1, s2 := OpenTestPostgresStore(t, url), OpenTestPostgresStore(t, url)
	const steps = 40
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for i := range steps {
		s := []*Store{s1, s2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.watchUpdateBox("box-a", func(w *watchTx) error {
				seen, err := w.lastSeen("box-a")
				if err != nil {
					return err
				}
				ev := BookingEvent{AssignmentID: 9, BoxID: "box-a", Seq: seen + 1, Type: "code_accepted", Via: viaGrant}
				return firstErr(w.attach(ev), w.setSeen("box-a", seen+1))
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Equal(t, uint64(steps), s1.seenOf("box-a"))
	evs, err := s2.bookingEvents(9)
	require.NoError(t, err)
	require.Len(t, evs, steps)
}
