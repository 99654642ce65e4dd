package bookings_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// The replicas' tests: several Integrations (one per bridge replica), each
// with a store of its own on one PostgreSQL database, one cloud between
// them (as replicas share its tables) and one fake Fleetio, whose webhooks
// go to a replica drawn at random for each delivery.

type replica struct {
	b      *bookings.Integration
	store  *bookings.Store
	cancel context.CancelFunc
	done   chan struct{}
}

type replicas struct {
	*env
	rs []*replica
}

type replicaOpts struct {
	n       int
	lease   time.Duration
	budget  func(t testing.TB, s *bookings.Store) fleetio.Budget // nil: none
	latency bool                                                 // the fake answers in 30 ms
}

func newReplicas(t *testing.T, o replicaOpts) *replicas {
	t.Helper()
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("replicas share a PostgreSQL database: a bbolt file is one process's (its queue is tested by the package's other tests)")
	}
	var lat time.Duration
	if o.latency {
		lat = 30 * time.Millisecond
	}
	e := newEnv(t, envOpts{latency: lat})
	// newEnv's own Integration stops: the replicas below are the ones.
	e.cancel()
	<-e.done
	r := &replicas{env: e}
	var budget fleetio.Budget
	if o.budget != nil {
		budget = o.budget(t, e.store)
	}
	front := http.NewServeMux()
	var hooks []http.Handler
	for i := range o.n {
		st := bookings.OpenTestPostgresStoreLike(t, e.store)
		b, err := bookings.New(bookings.Options{
			Store: st, Cloud: e.cloud, Notifier: e.notes,
			Admin:         notify.Recipient{Name: "Fleet admin", Email: "admin@example.com"},
			AccessBaseURL: e.srv.URL,
			NewClient: func(s bookings.Settings) (*fleetio.Client, error) {
				return fleetio.New(fleetio.Options{BaseURL: s.BaseURL, APIKey: s.APIKey, AccountToken: s.AccountToken,
					MaxRetries: -1, Timeout: 5 * time.Second, Budget: budget})
			},
			FleetioBudget: budget,
			Replica:       "replica-" + string(rune('a'+i)),
			ClaimLease:    o.lease,
			MinRetry:      20 * time.Millisecond, MaxRetry: 200 * time.Millisecond,
			Now:    e.clock.Now,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		require.NoError(t, err)
		rp := &replica{b: b, store: st, done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		rp.cancel = cancel
		go func() { defer close(rp.done); b.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-rp.done })
		r.rs = append(r.rs, rp)
		hooks = append(hooks, b.Webhook())
	}
	var mu sync.Mutex
	pick := rand.New(rand.NewPCG(1, 2))
	front.HandleFunc(bookings.WebhookPath, func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		h := hooks[pick.IntN(len(hooks))]
		mu.Unlock()
		h.ServeHTTP(w, req)
	})
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	e.f.SetWebhookURL(srv.URL + bookings.WebhookPath)
	return r
}

// burst makes n assignments of the van one after the other (an hour each,
// from tomorrow), their webhooks sent at once.
func (r *replicas) burst(t *testing.T, n int) []fleetio.VehicleAssignment {
	t.Helper()
	start := time.Now().Add(24 * time.Hour).Truncate(time.Hour)
	var as []fleetio.VehicleAssignment
	for i := range n {
		from := start.Add(time.Duration(i) * time.Hour)
		c := r.ada
		if i%2 == 1 {
			c = r.bob
		}
		as = append(as, r.assign(t, r.van, c, from, from.Add(time.Hour)))
	}
	return as
}

// settled waits for Fleetio to have sent everything and the queue to be
// empty, within limit.
func (r *replicas) settled(t *testing.T, limit time.Duration) {
	t.Helper()
	if left := r.settle(t, limit); left != "" {
		t.Fatalf("not settled within %s: %s", limit, left)
	}
}

// settle waits up to limit for the queue to empty with Fleetio's
// deliveries all sent; "" when it did, else what is left queued.
func (r *replicas) settle(t *testing.T, limit time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		require.NoError(t, r.f.Flush(ctx))
		n := len(r.f.Deliveries())
		if r.store.QueueDepth() == 0 {
			require.NoError(t, r.f.Flush(ctx))
			if len(r.f.Deliveries()) == n && r.store.QueueDepth() == 0 {
				return ""
			}
		}
		select {
		case <-ctx.Done():
			due, next, err := r.store.Queued(time.Now().Add(24 * time.Hour))
			left := fmt.Sprintf("queue %d (next %s, err %v):", r.store.QueueDepth(), next, err)
			for _, d := range due {
				left += fmt.Sprintf(" [delivery %d %s attempts %d next %s error %q]",
					d.ID, d.Event, d.Attempts, d.NextAttempt.Format(time.RFC3339Nano), d.LastError)
			}
			return left
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// processedOnce checks every assignment was acted on once: its booking
// active with its grant in the cloud, its custom fields written, its
// driver told once; and no more grants pushed than assignments.
func (r *replicas) processedOnce(t *testing.T, as []fleetio.VehicleAssignment) {
	t.Helper()
	var pushed uint64
	for _, rp := range r.rs {
		pushed += rp.b.Stats().GrantsPushed
	}
	require.EqualValues(t, len(as), pushed, "each grant pushed once, by one replica")
	require.Len(t, r.notes.of(notify.KindBookingCreated), len(as), "one booking_created per assignment")
	for _, a := range as {
		bk, ok, err := r.store.Booking(a.ID)
		require.NoError(t, err)
		require.True(t, ok, "assignment %d not booked", a.ID)
		require.Equal(t, bookings.BookingActive, bk.State)
		_, ok = r.grant(t, bk.GrantID)
		require.True(t, ok, "grant of assignment %d", a.ID)
		got, ok := r.f.Assignment(a.ID)
		require.True(t, ok)
		require.NotEmpty(t, field(got, fleetio.FieldAccessCode), "custom fields of assignment %d", a.ID)
	}
}

// midBurst has Fleetio send its deliveries (Flush, in the background) and
// returns once replica a has taken one of them in: it has deliveries in
// hand (and claims on them).
func (r *replicas) midBurst(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	go r.f.Flush(ctx)
	require.Eventually(t, func() bool { return r.rs[0].b.Stats().WebhooksAccepted > 0 }, time.Minute, time.Millisecond)
}

// TestReplicasBurst: a burst of webhooks to random replicas is processed
// once each.
func TestReplicasBurst(t *testing.T) {
	r := newReplicas(t, replicaOpts{n: 3, lease: 5 * time.Second, latency: true})
	as := r.burst(t, 24)
	r.settled(t, 60*time.Second)
	r.processedOnce(t, as)
}

// TestReplicasKilled: a replica stopped mid-burst without Drain (as one
// killed) leaves its claims; the others take them once the lease is over.
func TestReplicasKilled(t *testing.T) {
	r := newReplicas(t, replicaOpts{n: 3, lease: time.Second, latency: true})
	as := r.burst(t, 24)
	r.midBurst(t)
	r.rs[0].cancel()
	<-r.rs[0].done
	r.settled(t, 60*time.Second)
	r.processedOnce(t, as)
}

// TestReplicasDrain: a drained replica's claims are released at once: the
// others finish its deliveries long before the lease (a minute) is over,
// and those it stored but never ran as well.
func TestReplicasDrain(t *testing.T) {
	r := newReplicas(t, replicaOpts{n: 2, lease: time.Minute, latency: true})
	as := r.burst(t, 16)
	r.midBurst(t)
	// A bound already spent: what runs is stopped, its claims released.
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	r.rs[0].b.Drain(ctx)
	<-r.rs[0].done
	// Settled within seconds: the drained replica's claims are released,
	// and the webhooks it stores after its drain (the front still sends it
	// some) are another replica's at its next look at the queue
	// (sharedPollInterval), not a minute later.
	r.settled(t, 30*time.Second)
	r.processedOnce(t, as)
}

// TestReplicasSharedBudget: the replicas' Fleetio requests together stay
// under the shared budget's rate, counted at the fake.
func TestReplicasSharedBudget(t *testing.T) {
	const perMinute, burst = 600, 5 // 10 a second
	r := newReplicas(t, replicaOpts{n: 3, lease: 5 * time.Second, budget: func(t testing.TB, s *bookings.Store) fleetio.Budget {
		pool, err := pgdb.Open(context.Background(), bookings.PostgresURLOf(t, s), pgdb.Options{MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		b, err := bookings.NewPostgresBudget(context.Background(), pool, "fleetio", perMinute, burst)
		require.NoError(t, err)
		return b
	}})
	start := time.Now()
	before := len(r.f.Requests())
	as := r.burst(t, 12)
	r.settled(t, 60*time.Second)
	sent := len(r.f.Requests()) - before
	max := burst + int(time.Since(start).Seconds()*perMinute/60) + 1
	require.LessOrEqual(t, sent, max, "requests of the three replicas against the budget")
	r.processedOnce(t, as)
}
