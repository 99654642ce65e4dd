package bookings_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// The grant-first flow (issue 13): a webhook's payload makes the grant at
// once, the read-back confirms it later. These tests run the rig's env with
// its worker stopped and a second Integration on the same store and fake
// Fleetio (fastRig), whose Fleetio requests go through a gate the test
// opens (Fleetio as slow as the test wants) and take from a budget the
// test chooses.

// gate holds every Fleetio request until it is opened, and records when
// each was sent and answered.
type gate struct {
	mu       gosync.Mutex
	open     chan struct{}
	isOpen   bool
	sent     []time.Time // when each request was let through
	answered int
}

func newGate(open bool) *gate {
	g := &gate{open: make(chan struct{})}
	if open {
		g.Open()
	}
	return g
}

func (g *gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.isOpen {
		g.isOpen = true
		close(g.open)
	}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case <-g.open:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	g.mu.Lock()
	g.sent = append(g.sent, time.Now())
	g.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(r)
	g.mu.Lock()
	g.answered++
	g.mu.Unlock()
	return resp, err
}

func (g *gate) answers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.answered
}

func (g *gate) sends() []time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]time.Time(nil), g.sent...)
}

// spentBudget is a fleetio.Budget with no token until Refill: a Fleetio
// rate limit spent for as long as the test wants.
type spentBudget struct {
	mu     gosync.Mutex
	refill chan struct{}
	full   bool
	takes  int
}

func newSpentBudget() *spentBudget { return &spentBudget{refill: make(chan struct{})} }

func (s *spentBudget) Take(ctx context.Context) error {
	select {
	case <-s.refill:
		s.mu.Lock()
		s.takes++
		s.mu.Unlock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *spentBudget) TryTake() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		s.takes++
	}
	return s.full
}

func (s *spentBudget) Pause(time.Time) {}

// Refill makes the budget unlimited from now on.
func (s *spentBudget) Refill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.full {
		s.full = true
		close(s.refill)
	}
}

type fastRig struct {
	*env
	b      *bookings.Integration
	gate   *gate
	url    string // its webhook
	cancel context.CancelFunc
	done   chan struct{}
}

// newFastRig stops env's worker and runs an Integration of its own on the
// same store, its Fleetio requests through g and taking from budget (nil:
// none).
func newFastRig(t *testing.T, g *gate, budget fleetio.Budget) *fastRig {
	t.Helper()
	e := newEnv(t, envOpts{})
	e.cancel()
	<-e.done
	r := &fastRig{env: e, gate: g}
	r.start(t, budget)
	return r
}

// start runs a new Integration on the rig's store (a bridge started again).
func (r *fastRig) start(t *testing.T, budget fleetio.Budget) {
	t.Helper()
	var err error
	r.b, err = bookings.New(bookings.Options{
		Store: r.store, Cloud: r.cloud, Notifier: r.notes,
		Admin:         notify.Recipient{Name: "Fleet admin", Email: "admin@example.com"},
		AccessBaseURL: r.srv.URL,
		NewClient: func(s bookings.Settings) (*fleetio.Client, error) {
			return fleetio.New(fleetio.Options{BaseURL: s.BaseURL, APIKey: s.APIKey, AccountToken: s.AccountToken,
				MaxRetries: -1, Timeout: 5 * time.Second, HTTPClient: &http.Client{Transport: r.gate}, Budget: budget})
		},
		FleetioBudget: budget, FleetioPerMinute: unlimited(budget),
		MinRetry: 20 * time.Millisecond, MaxRetry: 200 * time.Millisecond,
		Now:    r.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	srv := httptest.NewServer(r.b.Webhook())
	t.Cleanup(srv.Close)
	r.url = srv.URL + bookings.WebhookPath
	r.f.SetWebhookURL(r.url)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() { defer close(r.done); r.b.Run(ctx) }()
	t.Cleanup(r.stop)
}

// unlimited is Options.FleetioPerMinute for a rig's budget: -1 (none) when
// the test gives none.
func unlimited(b fleetio.Budget) int {
	if b == nil {
		return -1
	}
	return 0
}

// stop stops the rig's worker (a bridge going down); deliveries it had in
// hand stay queued.
func (r *fastRig) stop() {
	r.cancel()
	<-r.done
}

// waitGrant waits until grant id is in the cloud and ok says it is as
// wanted.
func (r *fastRig) waitGrant(t *testing.T, id int64, ok func(until time.Time, revoked bool) bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		g, found := r.grant(t, bookings.GrantID(id))
		return found && ok(g.Until, g.Revoked)
	}, 10*time.Second, 2*time.Millisecond, "grant of assignment %d", id)
}

// post sends a delivery signed with the webhook secret, as Fleetio would:
// body is one of the fake's deliveries with its id and payload changed.
func (r *fastRig) post(t *testing.T, id int64, event string, payload fleetio.VehicleAssignment) {
	t.Helper()
	pb, err := json.Marshal(payload)
	require.NoError(t, err)
	body, err := json.Marshal(map[string]any{"id": id, "event": event, "timestamp": time.Now().Format(time.RFC3339Nano),
		"triggered_by": nil, "payload": json.RawMessage(pb)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, post(t, r.url, body, map[string]string{fleetio.SignatureHeader: fleetio.Sign([]byte(secret), body)}))
}

// waitDone waits until delivery id is processed.
func (r *fastRig) waitDone(t *testing.T, id int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		d, err := r.store.Delivery(id)
		return err == nil && d.State == bookings.DeliveryDone
	}, 10*time.Second, 2*time.Millisecond, "delivery %d processed", id)
}

func (r *fastRig) booking(t *testing.T, id int64) bookings.Booking {
	t.Helper()
	bk, ok, err := r.store.Booking(id)
	require.NoError(t, err)
	require.True(t, ok, "booking of assignment %d", id)
	return bk
}

func patchesOf(e *env, id int64) int {
	n := 0
	for _, rq := range e.f.Requests() {
		if rq.Method == http.MethodPatch && rq.Status == http.StatusOK && rq.Path == "/api/v1/vehicle_assignments/"+strconv.FormatInt(id, 10) {
			n++
		}
	}
	return n
}

// TestBurstGrantsBeforeAnyReadBack: with Fleetio slow (no request answered
// until the gate opens) and rate limited (20 a minute), a burst of
// assignments has every grant in the cloud before a single read-back is
// answered; what Fleetio is owed stays queued, nothing lost.
func TestBurstGrantsBeforeAnyReadBack(t *testing.T) {
	r := newFastRig(t, newGate(false), nil)
	r.f.RateLimit(20)
	const n = 40
	from := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	ids := make([]int64, n)
	for i := range ids {
		f := from.Add(time.Duration(i) * 2 * time.Hour)
		ids[i] = r.assign(t, r.van, r.ada, f, f.Add(time.Hour)).ID
	}
	for _, id := range ids {
		r.waitGrant(t, id, func(_ time.Time, revoked bool) bool { return !revoked })
	}
	require.Zero(t, r.gate.answers(), "every grant was made before any Fleetio answer")
	// Fleetio's deliveries all in and done: one confirm per assignment
	// is left.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r.f.Flush(ctx))
	require.Eventually(t, func() bool { return r.store.QueueDepth() == n }, 10*time.Second, 2*time.Millisecond)
	for _, id := range ids {
		bk := r.booking(t, id)
		require.True(t, bk.PendingConfirm, "the read-back is owed")
		require.True(t, bk.PendingWriteBack, "the write-back is owed")
		require.Equal(t, notify.KindBookingCreated, bk.PendingNotify, "the driver is told once the read-back confirms")
	}
	require.Empty(t, r.notes.all(), "nobody is told from a payload alone")

	// Fleetio answers again, rate limited: the confirms are retried after
	// its Retry-After; none fails for good and the grants stay.
	r.gate.Open()
	require.Eventually(t, func() bool { return r.gate.answers() >= 20 }, 10*time.Second, 2*time.Millisecond)
	for _, id := range ids {
		bk := r.booking(t, id)
		require.Equal(t, bookings.BookingActive, bk.State)
		d, err := r.store.Delivery(bk.ConfirmID)
		require.NoError(t, err)
		require.NotEqual(t, bookings.DeliveryFailed, d.State, "confirm of %d: %s", id, d.LastError)
	}
}

// TestReadBackRepairsPayload: the read-back is the truth. A change Fleetio
// made after the payload (its webhook lost), an assignment gone, and a
// payload Fleetio's record disagrees with at the same updated_at are each
// repaired when the confirm reads the assignment back.
func TestReadBackRepairsPayload(t *testing.T) {
	from := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	t.Run("changed since", func(t *testing.T) {
		r := newFastRig(t, newGate(false), nil)
		a := r.assign(t, r.van, r.ada, from, from.Add(time.Hour))
		r.waitGrant(t, a.ID, func(u time.Time, _ bool) bool { return u.Equal(from.Add(time.Hour)) })
		r.webhooks(false) // the change's webhook never comes
		until2 := from.Add(4 * time.Hour)
		_, err := r.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &until2 })
		require.NoError(t, err)
		r.gate.Open()
		r.waitGrant(t, a.ID, func(u time.Time, revoked bool) bool { return u.Equal(until2) && !revoked })
		require.Eventually(t, func() bool { return r.store.QueueDepth() == 0 }, 10*time.Second, 2*time.Millisecond)
		bk := r.booking(t, a.ID)
		require.True(t, bk.Until.Equal(until2))
		require.False(t, bk.PendingConfirm)
		ns := r.notes.of(notify.KindBookingCreated)
		require.Len(t, ns, 1, "the driver is told once, of the window Fleetio holds")
		got, _ := r.f.Assignment(a.ID)
		require.Equal(t, ns[0].data["pin"], field(got, fleetio.FieldAccessCode))
	})
	t.Run("gone", func(t *testing.T) {
		r := newFastRig(t, newGate(false), nil)
		a := r.assign(t, r.van, r.ada, from, from.Add(time.Hour))
		r.waitGrant(t, a.ID, func(_ time.Time, revoked bool) bool { return !revoked })
		r.webhooks(false)
		_, err := r.f.DeleteAssignment(a.ID)
		require.NoError(t, err)
		r.gate.Open()
		r.waitGrant(t, a.ID, func(_ time.Time, revoked bool) bool { return revoked })
		require.Eventually(t, func() bool { return r.store.QueueDepth() == 0 }, 10*time.Second, 2*time.Millisecond)
		require.Equal(t, bookings.BookingEnded, r.booking(t, a.ID).State)
		require.Empty(t, r.notes.all(), "a driver never told of the booking is not told of its end")
		require.Zero(t, r.patches())
	})
	t.Run("disagrees at the same version", func(t *testing.T) {
		r := newFastRig(t, newGate(false), nil)
		r.webhooks(false) // this test sends the only delivery
		a := r.assign(t, r.van, r.ada, from, from.Add(time.Hour))
		wrong := a
		wrongUntil := from.Add(9 * time.Hour)
		wrong.EndedAt = &wrongUntil
		r.post(t, 9001, fleetio.EventAssignmentCreated, wrong)
		r.waitGrant(t, a.ID, func(u time.Time, _ bool) bool { return u.Equal(wrongUntil) })
		r.gate.Open()
		r.waitGrant(t, a.ID, func(u time.Time, revoked bool) bool { return u.Equal(from.Add(time.Hour)) && !revoked })
		require.Eventually(t, func() bool { return r.store.QueueDepth() == 0 }, 10*time.Second, 2*time.Millisecond)
		bk := r.booking(t, a.ID)
		require.True(t, bk.Until.Equal(from.Add(time.Hour)), "the booking follows the read-back")
		require.Len(t, r.notes.of(notify.KindBookingCreated), 1)
	})
}

// TestOlderPayloadNeverRollsBack: a late, reordered or replayed delivery
// whose payload is older than what the booking was made from changes
// nothing, before or after its confirm.
func TestOlderPayloadNeverRollsBack(t *testing.T) {
	g := newGate(true)
	r := newFastRig(t, g, nil)
	from := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	a := r.assign(t, r.van, r.ada, from, from.Add(time.Hour))
	r.settle(t)
	until2 := from.Add(3 * time.Hour)
	_, err := r.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &until2 })
	require.NoError(t, err)
	r.settle(t)
	r.waitGrant(t, a.ID, func(u time.Time, _ bool) bool { return u.Equal(until2) })
	before := r.booking(t, a.ID)
	patches := r.patches()

	// The created delivery again, as a new delivery (Fleetio's retry
	// after a lost answer, reordered behind the update), its payload the
	// first version.
	r.stop()
	*r.gate = gate{open: make(chan struct{})} // Fleetio slow from now on
	r.start(t, nil)
	r.post(t, 9002, fleetio.EventAssignmentCreated, a)
	r.waitDone(t, 9002)
	gr, _ := r.grant(t, bookings.GrantID(a.ID))
	require.True(t, gr.Until.Equal(until2), "not rolled back by the older payload")
	now := r.booking(t, a.ID)
	require.True(t, now.UpdatedAt.Equal(before.UpdatedAt))
	require.True(t, now.Until.Equal(until2))
	require.True(t, now.PendingConfirm, "an older payload asks for the confirm only")

	r.gate.Open()
	require.Eventually(t, func() bool { return r.store.QueueDepth() == 0 }, 10*time.Second, 2*time.Millisecond)
	gr, _ = r.grant(t, bookings.GrantID(a.ID))
	require.True(t, gr.Until.Equal(until2))
	require.Equal(t, patches, r.patches(), "the confirm found nothing to write")
	require.False(t, r.booking(t, a.ID).PendingConfirm)
}

// TestChangesCoalesceIntoOnePatch: while the budget is spent, every change
// of an assignment goes live from its payload, and once it refills the
// owed write-back is one PATCH with the latest fields.
func TestChangesCoalesceIntoOnePatch(t *testing.T) {
	budget := newSpentBudget()
	r := newFastRig(t, newGate(true), budget)
	from := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	a := r.assign(t, r.van, r.ada, from, from.Add(time.Hour))
	r.waitGrant(t, a.ID, func(_ time.Time, revoked bool) bool { return !revoked })
	var last time.Time
	for i := 1; i <= 5; i++ {
		last = from.Add(time.Duration(1+i) * time.Hour)
		u := last
		_, err := r.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &u })
		require.NoError(t, err)
		r.waitGrant(t, a.ID, func(got time.Time, _ bool) bool { return got.Equal(u) })
	}
	require.Zero(t, r.gate.answers(), "no Fleetio request while the budget is spent")
	confirm := r.booking(t, a.ID).ConfirmID
	require.NotZero(t, confirm)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r.f.Flush(ctx))
	require.Eventually(t, func() bool { return r.store.QueueDepth() == 1 }, 10*time.Second, 2*time.Millisecond,
		"one confirm owed for the six deliveries")

	budget.Refill()
	r.settle(t)
	require.Equal(t, 1, patchesOf(r.env, a.ID), "one PATCH for six changes")
	got, _ := r.f.Assignment(a.ID)
	bk := r.booking(t, a.ID)
	require.True(t, bk.Until.Equal(last))
	require.NotEmpty(t, field(got, fleetio.FieldAccessInstructions))
	require.Len(t, field(got, fleetio.FieldAccessCode), 6)
	ns := r.notes.of(notify.KindBookingCreated)
	require.Len(t, ns, 1, "told once")
	require.Equal(t, field(got, fleetio.FieldAccessCode), ns[0].data["pin"])
	require.Empty(t, r.notes.of(notify.KindBookingUpdated), "the updates before the first message are in it")
	d, err := r.store.Delivery(confirm)
	require.NoError(t, err)
	require.Equal(t, bookings.DeliveryDone, d.State)
}

// TestRestartFinishesOwedWork: a bridge stopped with confirms owed (the
// budget spent) leaves them in the store; the next one finishes them.
func TestRestartFinishesOwedWork(t *testing.T) {
	budget := newSpentBudget()
	r := newFastRig(t, newGate(true), budget)
	from := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	var ids []int64
	for i := range 3 {
		f := from.Add(time.Duration(i) * 2 * time.Hour)
		ids = append(ids, r.assign(t, r.van, r.ada, f, f.Add(time.Hour)).ID)
	}
	for _, id := range ids {
		r.waitGrant(t, id, func(_ time.Time, revoked bool) bool { return !revoked })
	}
	require.Eventually(t, func() bool { return r.store.QueueDepth() == len(ids) }, 10*time.Second, 2*time.Millisecond)
	r.stop()
	require.Zero(t, r.patches())

	r.start(t, nil) // the next bridge, its budget not spent
	r.settle(t)
	for _, id := range ids {
		bk := r.booking(t, id)
		require.False(t, bk.PendingConfirm || bk.PendingWriteBack || bk.PendingNotify != "", "assignment %d: %+v", id, bk)
		got, _ := r.f.Assignment(id)
		require.Len(t, field(got, fleetio.FieldAccessCode), 6)
		require.Equal(t, 1, patchesOf(r.env, id))
	}
	require.Len(t, r.notes.of(notify.KindBookingCreated), len(ids))
}

// TestRetryAfterHonoured: a 429's Retry-After pauses the budget: the
// confirm's next request waits it out, while the grant did not wait at all.
func TestRetryAfterHonoured(t *testing.T) {
	budget := fleetio.NewTokenBucket(600, 10, nil)
	r := newFastRig(t, newGate(true), budget)
	r.f.SetRetryAfter(1)
	r.f.FailNext(1, http.StatusTooManyRequests)
	from := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	a := r.assign(t, r.van, r.ada, from, from.Add(time.Hour))
	r.waitGrant(t, a.ID, func(_ time.Time, revoked bool) bool { return !revoked })
	r.settle(t)
	sends := r.gate.sends()
	require.GreaterOrEqual(t, len(sends), 2)
	require.GreaterOrEqual(t, sends[1].Sub(sends[0]), 900*time.Millisecond, "the request after the 429 waited its Retry-After")
	got, _ := r.f.Assignment(a.ID)
	require.Len(t, field(got, fleetio.FieldAccessCode), 6)
	d, err := r.store.Delivery(r.booking(t, a.ID).ConfirmID)
	require.NoError(t, err)
	require.Equal(t, bookings.DeliveryDone, d.State)
	require.Equal(t, 2, d.Attempts, "the 429 was one failed attempt")
}

// TestEndFromPayload: an assignment ended or deleted loses its grant as
// soon as the webhook arrives, with Fleetio slow; the fields are cleared
// and the driver told once the confirm reads it back.
func TestEndFromPayload(t *testing.T) {
	t.Run("ended", func(t *testing.T) {
		r := newFastRig(t, newGate(true), nil)
		from := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		a := r.booked(t, r.van, r.ada, from, from.Add(3*time.Hour))
		got, _ := r.f.Assignment(a.ID)
		require.Len(t, field(got, fleetio.FieldAccessCode), 6)
		*r.gate = gate{open: make(chan struct{})}
		ended := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
		_, err := r.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &ended })
		require.NoError(t, err)
		r.waitGrant(t, a.ID, func(_ time.Time, revoked bool) bool { return revoked })
		require.Zero(t, r.gate.answers(), "revoked before any Fleetio answer")
		require.Eventually(t, func() bool {
			bk := r.booking(t, a.ID)
			return bk.State == bookings.BookingEnded && bk.PendingClear
		}, 10*time.Second, 2*time.Millisecond, "ended from the payload, the clearing owed")
		r.gate.Open()
		r.settle(t)
		got, _ = r.f.Assignment(a.ID)
		require.Empty(t, field(got, fleetio.FieldAccessCode), "the fields are cleared by the confirm")
		require.False(t, r.booking(t, a.ID).PendingClear)
	})
	t.Run("deleted", func(t *testing.T) {
		r := newFastRig(t, newGate(true), nil)
		from := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		a := r.booked(t, r.van, r.ada, from, from.Add(time.Hour))
		*r.gate = gate{open: make(chan struct{})}
		_, err := r.f.DeleteAssignment(a.ID)
		require.NoError(t, err)
		r.waitGrant(t, a.ID, func(_ time.Time, revoked bool) bool { return revoked })
		require.Zero(t, r.gate.answers(), "revoked before any Fleetio answer")
		require.Empty(t, r.notes.of(notify.KindBookingCancelled), "told once the confirm reads it gone")
		r.gate.Open()
		r.settle(t)
		ns := r.notes.of(notify.KindBookingCancelled)
		require.Len(t, ns, 1)
		require.Equal(t, "ada@example.com", ns[0].to.Email)
		require.Equal(t, bookings.BookingEnded, r.booking(t, a.ID).State)
	})
}
