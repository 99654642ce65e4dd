package bookings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// The queue's workers. A delivery spends nearly all its time waiting on
// Fleetio (read-back, PATCH, contact lookup) and on fsyncs, so up to
// Options.Workers deliveries run at once. What keeps that correct:
//
//   - inflight: a delivery is claimed before it runs, with its assignment,
//     so two deliveries of one assignment never run together, and a later one
//     waits behind an earlier one (the worker pool keeps id order per
//     assignment). One delivery is processed once: a worker reads it again
//     under the work lock and runs it only if it is still queued and due.
//   - on a shared store (PostgreSQL), the same claim in the store, for
//     every replica: claimShared, after inflight's (see store_claims.go).
//   - the work lock (locks.go): workers hold it shared; the operations that
//     act on many bookings (Disconnect, CreateBooking, driver codes,
//     Reconcile's repairs) hold it exclusively, so they never overlap a
//     worker, on any replica.
//   - the driver locks: the deliveries of bookings that use a driver code
//     are serialized per driver (see lockDrivers).
//   - PINs: the cloud refuses a code another grant of the box holds
//     (box.ErrCodeInUse, checked in the transaction that stores the
//     grant), and finish draws again: two workers drawing the same PIN for
//     one box cannot both get it.

// inflight is the keyed lock of the queue: the deliveries being processed
// and their assignments. Run and ProcessDue share it.
type inflight struct {
	mu          sync.Mutex
	deliveries  map[int64]bool
	assignments map[int64]bool
	waiting     map[int64]bool // assignments a claim was refused for
}

// claim takes delivery id of assignment a; false if either is taken.
func (f *inflight) claim(id, a int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deliveries[id] || f.assignments[a] {
		if f.waiting == nil {
			f.waiting = map[int64]bool{}
		}
		f.waiting[a] = true
		return false
	}
	if f.deliveries == nil {
		f.deliveries, f.assignments = map[int64]bool{}, map[int64]bool{}
	}
	f.deliveries[id], f.assignments[a] = true, true
	return true
}

// release gives delivery id and assignment a back, and reports whether a
// claim of a was refused meanwhile (someone waits for it).
func (f *inflight) release(id, a int64) (waited bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.deliveries, id)
	delete(f.assignments, a)
	waited = f.waiting[a]
	delete(f.waiting, a)
	return waited
}

// wait records that a claim of assignment a was refused: its next release
// wakes the other lane.
func (f *inflight) wait(a int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waiting == nil {
		f.waiting = map[int64]bool{}
	}
	f.waiting[a] = true
}

// ids are the deliveries being processed.
func (f *inflight) ids() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]int64, 0, len(f.deliveries))
	for id := range f.deliveries {
		ids = append(ids, id)
	}
	return ids
}

func (f *inflight) busy(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deliveries[id]
}

// idLocks is a mutex per id (a Fleetio contact), made on first use and
// dropped when nobody holds or waits for it.
type idLocks struct {
	mu    sync.Mutex
	locks map[int64]*idLock
}

type idLock struct {
	mu   sync.Mutex
	refs int // holders and waiters
}

// lock takes the ids' locks in ascending order (so two callers wanting
// overlapping sets cannot deadlock) and returns what releases them.
func (k *idLocks) lock(ids ...int64) (unlock func()) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for _, id := range ids {
		k.mu.Lock()
		if k.locks == nil {
			k.locks = map[int64]*idLock{}
		}
		e := k.locks[id]
		if e == nil {
			e = &idLock{}
			k.locks[id] = e
		}
		e.refs++
		k.mu.Unlock()
		e.mu.Lock()
	}
	return func() {
		for _, id := range slices.Backward(ids) {
			k.mu.Lock()
			e := k.locks[id]
			if e.refs--; e.refs == 0 {
				delete(k.locks, id)
			}
			k.mu.Unlock()
			e.mu.Unlock()
		}
	}
}

// lockedReader makes a random source safe for the workers drawing PINs at
// the same time.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// pooledClient is the HTTP client of the default Fleetio client: net/http
// keeps 2 idle connections per host by default, so more workers than that
// would open and close connections to Fleetio (a TLS handshake each, sockets
// in TIME_WAIT) all through a burst instead of reusing them.
func pooledClient(workers int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = workers + 2 // + the admin's calls (Vehicles, Reconcile)
	return &http.Client{Transport: t}
}

// queued is a due delivery and the assignment it is about.
type queued struct {
	d          Delivery
	assignment int64 // the assignment id; -(delivery id) for a body that names none (it fails on its own)
}

// deliveryAssignment is the assignment a delivery is about, read from its payload
// without parsing the rest (process parses and checks it all).
func deliveryAssignment(d Delivery) int64 {
	var wh struct {
		Payload struct {
			ID int64 `json:"id"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(d.Body, &wh); err != nil || wh.Payload.ID <= 0 {
		return -d.ID
	}
	return wh.Payload.ID
}

// outcome is what a worker did with a delivery.
type outcome struct {
	d         Delivery
	ran       bool // false: processed or dropped by someone else meanwhile
	perr, err error
}

// lane is one of the queue's two halves, each with its own workers, so
// that the work that waits on Fleetio never holds up the work that does
// not:
//
//	laneIntake   Fleetio's webhooks, acted on from their payload: a grant
//	             pushed, no Fleetio call (intake)
//	laneConfirm  the bridge's own deliveries: a read-back, then the
//	             write-back and the driver's message (confirm), each call
//	             taking from the request budget
//
// The assignment claim (inflight) is shared: one assignment's deliveries
// never run at once, whatever their lane.
type lane int

const (
	laneIntake lane = iota
	laneConfirm
	lanes
)

func laneOf(d Delivery) lane {
	if d.internal() {
		return laneConfirm
	}
	return laneIntake
}

// workerPool hands the due deliveries of its lane, oldest first, to up to
// Workers goroutines.
type workerPool struct {
	b       *Integration
	ctx     context.Context
	lane    lane
	pending []queued // due, not started, oldest first
	running int
	done    chan outcome

	// The confirm lane's request budget (nil: none, or the intake lane):
	// a confirm starts only with a token taken for its first request, so
	// that it never waits on the budget while it holds its assignment
	// (a payload of that assignment waits for the claim); its further
	// requests take a token only if one is free (fleetio.Prepaid), or it
	// stops with ErrBudgetSpent and goes on with its next token.
	budget fleetio.Budget
	tokens int             // taken, not yet handed to a confirm
	starve bool            // a confirm waits for a token
	wait   bool            // take tokens waiting (ProcessDue), not from a feeder
	ask    chan<- struct{} // asks the feeder for a token (Run)
	feed   <-chan struct{} // the feeder's tokens

	retry bool // the store refused a claim: look again in claimRetry
}

func (b *Integration) newWorkerPool(ctx context.Context, l lane, wait bool) *workerPool {
	q := &workerPool{b: b, ctx: ctx, lane: l, done: make(chan outcome, b.o.Workers), wait: wait}
	q.findBudget()
	return q
}

// findBudget looks up the confirm lane's budget, the client's (none before
// the integration is connected: looked up again at each scan), and starts
// Run's feeder of tokens once there is one.
func (q *workerPool) findBudget() {
	if q.lane != laneConfirm || q.budget != nil {
		return
	}
	if c, err := q.b.fleetio(); err == nil {
		q.budget = c.Budget()
	}
	if q.budget != nil && !q.wait {
		q.ask, q.feed = q.feeder()
	}
}

// token reports whether the next confirm may start: a token is held, or
// one is free now (or, waiting, once one is).
func (q *workerPool) token() bool {
	switch {
	case q.budget == nil || q.tokens > 0:
		return true
	case q.budget.TryTake():
	case !q.wait || q.budget.Take(q.ctx) != nil:
		q.starve = true
		return false
	}
	q.tokens++
	return true
}

// feeder takes tokens for the confirm lane (runLane), one each time the
// lane asks (ask) while a confirm waits for one, so that no token is held
// idle: one taken before a 429 would let a request through the pause the
// 429 asked for.
func (q *workerPool) feeder() (ask chan<- struct{}, feed <-chan struct{}) {
	a, f := make(chan struct{}, 1), make(chan struct{})
	go func() {
		for {
			select {
			case <-a:
			case <-q.ctx.Done():
				return
			}
			if q.budget.Take(q.ctx) != nil {
				return
			}
			select {
			case f <- struct{}{}:
			case <-q.ctx.Done():
				return
			}
		}
	}()
	return a, f
}

// scan reads the queue: pending becomes the due deliveries that no worker
// has, oldest first; next is when the first one not yet due will be.
func (q *workerPool) scan() (next time.Time, err error) {
	due, next, held, err := q.b.o.Store.Claimable(q.b.o.Replica, q.b.o.Now())
	if err != nil {
		return time.Time{}, fmt.Errorf("read queue: %w", err)
	}
	if held {
		// Left out for another replica's live claim: look again in
		// claimRetry, as after a refused claim (that claim ends, or
		// lapses if its replica died).
		q.retry = true
	}
	q.findBudget()
	q.pending = q.pending[:0]
	for _, d := range due {
		if laneOf(d) == q.lane && !q.b.inflight.busy(d.ID) {
			q.pending = append(q.pending, queued{d: d, assignment: deliveryAssignment(d)})
		}
	}
	return next, nil
}

// start starts pending deliveries while a worker is free. One whose
// assignment is being processed stays, and so do the later ones of that
// assignment behind it: an assignment's deliveries run one at a time, in
// order.
func (q *workerPool) start() {
	if q.ctx.Err() != nil || q.b.draining() {
		return
	}
	var blocked map[int64]bool
	kept := q.pending[:0]
	q.starve = false
	for i, p := range q.pending {
		if q.running >= q.b.o.Workers || (!blocked[p.assignment] && !q.token()) {
			kept = append(kept, q.pending[i:]...)
			break
		}
		if blocked[p.assignment] || !q.b.inflight.claim(p.d.ID, p.assignment) || !q.claimShared(p) {
			if blocked == nil {
				blocked = map[int64]bool{}
			}
			blocked[p.assignment] = true
			kept = append(kept, p)
			continue
		}
		q.running++
		// The intake lane's requests never wait (it makes none); a
		// confirm's beyond its first never wait while it holds the
		// assignment. Without a budget known (not connected when the
		// lane looked), requests wait as they would anywhere.
		prepaid := -1
		switch {
		case q.budget != nil:
			q.tokens--
			prepaid = 1
		case q.lane == laneIntake:
			prepaid = 0
		}
		go q.work(p, prepaid)
	}
	clear(q.pending[len(kept):])
	q.pending = kept
}

// claimShared claims p in the store when replicas share it (PostgreSQL),
// after the in-process claim (inflight) was had: refused, p stays pending,
// its in-process claim given back, and the lane looks again soon
// (claimRetry): another replica has it or its assignment, or processed it.
func (q *workerPool) claimShared(p queued) bool {
	if !q.b.o.Store.Shared() {
		return true
	}
	ok, err := q.b.o.Store.ClaimDelivery(q.b.o.Replica, p.d, q.b.o.Now(), q.b.o.ClaimLease)
	if err != nil {
		q.b.log.Error("delivery queue: claim", "delivery", p.d.ID, "err", err)
	}
	if !ok {
		// Refused for a delivery of the assignment this process has (a
		// webhook in the intake lane before its confirm), the release of
		// that one wakes this lane at once (as a refusal of inflight's
		// does); refused for another replica's, the lane looks again in
		// claimRetry.
		// A claim of the other lane refused meanwhile by inflight (while
		// this lane held the assignment) is woken now: nobody else will.
		if q.b.inflight.release(p.d.ID, p.assignment) {
			q.b.wakeLane(lanes - 1 - q.lane)
		}
		q.b.inflight.wait(p.assignment)
		q.retry = true
	}
	return ok
}

// claimRetry is how soon a lane looks at the queue again after the store
// refused it a claim (another replica holds the delivery or its
// assignment): that replica's next delivery of the assignment, or a dead
// replica's lapsed claim, is taken within this; a rescan reads the queue,
// so not much more often.
const claimRetry = 500 * time.Millisecond

// work runs one delivery with prepaid tokens of the budget (< 0: none,
// requests wait for theirs); beyond them its Fleetio requests never wait
// (fleetio.Prepaid).
func (q *workerPool) work(p queued, prepaid int) {
	var o outcome
	ctx := q.ctx
	if prepaid >= 0 {
		ctx = fleetio.Prepaid(ctx, prepaid)
	}
	o.d, o.ran, o.perr, o.err = q.b.runQueued(ctx, p.d.ID)
	// The store's claim ends with the delivery's outcome stored; one not
	// stored (not run, a confirm that goes on later, a failure to store)
	// is released so that any replica may take it at once. Stopping, it
	// is kept: a replica stopped without Drain is as one killed, and its
	// claims lapse with their lease.
	if q.b.o.Store.Shared() && q.ctx.Err() == nil &&
		(!o.ran || o.err != nil || errors.Is(o.perr, fleetio.ErrBudgetSpent) || errors.Is(o.perr, errConfirmAgain)) {
		if _, err := q.b.o.Store.ReleaseClaims(q.b.o.Replica, []int64{p.d.ID}); err != nil {
			q.b.log.Warn("delivery queue: release claim", "delivery", p.d.ID, "err", err)
		}
	}
	// Released before the worker pool hears of it, so that the next
	// delivery of the assignment can start at once; the other lane is
	// woken when it may have one waiting for the assignment (only then:
	// a wake-up reads the queue again).
	if q.b.inflight.release(p.d.ID, p.assignment) {
		q.b.wakeLane(lanes - 1 - q.lane)
	}
	q.done <- o
}

// finished takes a worker's outcome and returns when its delivery is due
// again (zero: it is not queued any more).
func (q *workerPool) finished(o outcome) time.Time {
	q.running--
	if o.ran && o.d.State == DeliveryQueued {
		return o.d.NextAttempt
	}
	return time.Time{}
}

// runQueued processes delivery id if it is still queued and due: between
// the scan that found it and now, CreateBooking may have processed it, or
// Disconnect dropped it.
func (b *Integration) runQueued(ctx context.Context, id int64) (d Delivery, ran bool, perr, err error) {
	ctx, unlock, err := b.locks.work(ctx, false)
	if err != nil {
		if ctx.Err() != nil {
			return d, false, nil, nil // stopping
		}
		return d, false, nil, fmt.Errorf("delivery %d: %w", id, err)
	}
	defer unlock()
	if ctx.Err() != nil {
		return d, false, nil, nil // stopping: it stays queued as it is
	}
	if d, err = b.o.Store.Delivery(id); err != nil {
		return d, false, nil, fmt.Errorf("delivery %d: %w", id, err)
	}
	if d.State != DeliveryQueued || d.NextAttempt.After(b.o.Now()) {
		return d, false, nil, nil
	}
	d, perr, err = b.processOne(ctx, d)
	return d, true, perr, err
}

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// Run processes the delivery queue until ctx is done, up to Options.Workers
// deliveries at once in each lane: at once, whenever a webhook is stored
// (Wake), and when a retry is due. It sends the admin alerts box events
// queue (alerts.go) too. When ctx ends it waits for the deliveries in
// progress (each ends soon: its calls see ctx) and returns nil.
//
// On a store replicas share (PostgreSQL), each delivery is claimed in the
// store before it runs (Store.ClaimDelivery, owner Options.Replica, lease
// Options.ClaimLease), the claims of the deliveries in progress renewed
// every third of the lease. Run starts by releasing the claims of its
// name (its previous run's, which died). When ctx ends without Drain, the
// claims left are kept, as a killed replica's: they lapse after the lease.
func (b *Integration) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lanesDone, done := make(chan struct{}), make(chan struct{})
	defer close(done)
	b.run.Lock()
	b.run.lanes, b.run.done, b.run.cancel = lanesDone, done, cancel
	b.run.Unlock()
	if b.o.Store.Shared() {
		if n, err := b.o.Store.ReleaseClaims(b.o.Replica, nil); err != nil {
			b.log.Warn("delivery queue: release the claims of a previous run", "replica", b.o.Replica, "err", err)
		} else if n > 0 {
			b.log.Info("delivery queue: released the claims of a previous run", "replica", b.o.Replica, "claims", n)
		}
	}
	var wg, lanesWG sync.WaitGroup
	wg.Go(func() { b.runAlerts(ctx) })
	if b.o.Store.Shared() {
		wg.Go(func() { b.renewClaims(ctx) })
	}
	for l := range lanes {
		lanesWG.Go(func() { b.runLane(ctx, l) })
	}
	lanesWG.Wait()
	close(lanesDone)
	wg.Wait()
	return nil
}

// renewClaims renews the store's claims on the deliveries in progress
// every third of the lease, until ctx ends: a renewal that fails once
// leaves two more before the lease runs out.
func (b *Integration) renewClaims(ctx context.Context) {
	t := time.NewTicker(b.o.ClaimLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := b.o.Store.RenewClaims(b.o.Replica, b.inflight.ids(), b.o.Now().Add(b.o.ClaimLease)); err != nil {
			b.log.Warn("delivery queue: renew claims", "err", err)
		}
	}
}

// drainBound bounds Drain's wait for the deliveries in progress when its
// ctx has no deadline: a delivery is a few Fleetio calls; one still
// running after this is stopped, and its claim released for another
// replica to run it again.
const drainBound = 20 * time.Second

// Drain stops Run's lanes from starting deliveries, waits for those in
// progress (until ctx ends, or drainBound without a deadline), stops what
// is left (and Run), and releases this replica's claims in the store, so
// that another replica takes the deliveries at once instead of after the
// lease. The bridge calls it on SIGTERM, before it cancels Run and closes
// the store. Once drained, the integration starts no more deliveries
// (ProcessDue neither); a second Drain only releases the claims again.
func (b *Integration) Drain(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, drainBound)
		defer cancel()
	}
	b.drainOnce.Do(func() { close(b.drainCh) })
	b.run.Lock()
	lanesDone, done, cancel := b.run.lanes, b.run.done, b.run.cancel
	b.run.Unlock()
	var errs []error
	if lanesDone != nil {
		select {
		case <-lanesDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("drain: deliveries still in progress: %w", ctx.Err()))
		}
		cancel()
		<-done // the workers see their ctx: each stops within its next call
	}
	if b.o.Store.Shared() {
		n, err := b.o.Store.ReleaseClaims(b.o.Replica, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("drain: %w", err))
		} else {
			b.log.Info("delivery queue drained", "replica", b.o.Replica, "claims_released", n)
		}
	}
	return errors.Join(errs...)
}

func (b *Integration) draining() bool {
	select {
	case <-b.drainCh:
		return true
	default:
		return false
	}
}

// runLane is Run's loop of one lane.
func (b *Integration) runLane(ctx context.Context, l lane) {
	q := b.newWorkerPool(ctx, l, false)
	var next time.Time
	rescan := true
	poll := pollInterval
	if b.o.Store.Shared() {
		poll = sharedPollInterval
	}
	for {
		q.start()
		// The queue is read again only when a worker is free and nothing
		// pending may start: a scan reads the whole queue, and a burst
		// wakes the worker hundreds of times while the first scan's
		// deliveries are still being worked through. New deliveries have
		// higher ids than the pending ones, so waiting keeps the order.
		// Nor while the confirm lane waits for a token: nothing could
		// start, and every webhook the intake lane takes wakes it.
		if rescan && ctx.Err() == nil && q.running < b.o.Workers && !q.starve {
			n, err := q.scan()
			if err != nil {
				b.log.Error("delivery queue", "err", err)
			}
			next, rescan = n, false
			q.start()
		}
		if q.retry {
			next, q.retry = earlier(next, b.o.Now().Add(claimRetry)), false
		}
		wait := poll
		if !next.IsZero() {
			wait = min(max(next.Sub(b.o.Now()), 0), poll)
		}
		t := time.NewTimer(wait)
		drain := b.drainCh
		var feed <-chan struct{}
		if q.starve && q.feed != nil {
			select {
			case q.ask <- struct{}{}:
			default: // asked already
			}
			feed = q.feed
		}
		select {
		case <-feed:
			q.tokens++
		case <-ctx.Done():
			t.Stop()
			for q.running > 0 {
				q.finished(<-q.done)
			}
			return
		case <-drain:
			t.Stop()
			// Drain: nothing starts; what runs finishes (or sees ctx,
			// which Drain cancels at its bound).
			for q.running > 0 {
				if o := <-q.done; o.err != nil && ctx.Err() == nil {
					b.log.Error("delivery queue", "err", o.err)
				}
				q.running--
			}
			return
		case <-b.wake[l]:
			rescan = true
		case o := <-q.done:
			next = earlier(next, q.finished(o))
			if o.err != nil && ctx.Err() == nil {
				b.log.Error("delivery queue", "err", o.err)
			}
		case <-t.C:
			// Look again; the scan says when the next retry is due (until
			// then, the safety poll).
			rescan, next = true, time.Time{}
		}
		t.Stop()
	}
}

// ProcessDue processes every queued delivery that is due, up to
// Options.Workers at once, and returns when they are done and when the next
// one not yet due will be (zero: none): Fleetio's webhooks first, then the
// confirms they queued (and the bridge's other deliveries). A delivery
// another worker (Run) has in hand is left to it. err is a failure to
// record an outcome, or ctx's.
func (b *Integration) ProcessDue(ctx context.Context) (next time.Time, err error) {
	var errs []error
	for l := range lanes {
		n, err := b.processDue(ctx, l)
		next = earlier(next, n)
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return next, errors.Join(errs...)
}

func (b *Integration) processDue(ctx context.Context, l lane) (next time.Time, err error) {
	q := b.newWorkerPool(ctx, l, true)
	if next, err = q.scan(); err != nil {
		return time.Time{}, err
	}
	var errs []error
	for {
		q.start()
		if q.running == 0 {
			break // done, or what is left waits on Run's workers
		}
		o := <-q.done
		next = earlier(next, q.finished(o))
		if o.err != nil {
			errs = append(errs, o.err)
		}
	}
	if ctx.Err() != nil {
		return next, ctx.Err()
	}
	return next, errors.Join(errs...)
}
