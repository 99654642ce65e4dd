package fleetiotest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// Delivery is one webhook event and every attempt to deliver it.
type Delivery struct {
	ID        int64
	Event     string
	Body      []byte // the exact bytes sent, every time
	Signature string // X-Fleetio-Webhook-Signature
	Attempts  []Attempt
	Delivered bool // some attempt got a 2xx
	GaveUp    bool // the retry schedule ran out before a 2xx
}

// Attempt is one POST of a delivery.
type Attempt struct {
	At        time.Time // real time
	Status    int       // 0: no answer
	Err       string
	Duplicate bool // a repeat sent by DuplicateDeliveries
}

// Order is how ResumeDeliveries releases held deliveries.
type Order int

const (
	InOrder  Order = iota // as they were made
	Reversed              // newest first
	Shuffled              // random order
)

// job is one copy of a delivery on its way; a duplicated delivery has two.
type job struct {
	d     *Delivery
	dup   bool
	tries int // attempts made so far
}

// deliverer sends webhooks one at a time from a queue, as Fleetio sends them
// asynchronously; a failed attempt waits for its retry on a timer while the
// queue moves on, so a retried delivery arrives after later ones.
type deliverer struct {
	// immutable
	s      *Server
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// mutable, under mu
	mu        sync.Mutex
	url       string
	secret    string
	auth      string
	retries   []time.Duration
	lastID    int64
	log       []*Delivery
	ready     []*job
	held      []*job
	paused    bool
	delay     time.Duration
	duplicate bool
	pending   int           // jobs not yet delivered or given up
	idle      chan struct{} // closed and replaced whenever pending drops
	wake      chan struct{} // 1-buffered: the worker has work
	timers    map[*time.Timer]struct{}
	closed    bool
}

func newDeliverer(s *Server, opts Options) *deliverer {
	ctx, cancel := context.WithCancel(context.Background())
	d := &deliverer{
		s:       s,
		client:  &http.Client{Timeout: opts.WebhookTimeout},
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		url:     opts.WebhookURL,
		secret:  opts.WebhookSecret,
		auth:    opts.WebhookAuthorization,
		retries: slices.Clone(opts.RetryIntervals),
		idle:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		timers:  map[*time.Timer]struct{}{},
	}
	go d.run()
	return d
}

// Sign is the X-Fleetio-Webhook-Signature of body: lower-case hex
// HMAC-SHA256 keyed with the webhook secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// SetWebhookURL changes where later deliveries go ("" stops sending).
func (s *Server) SetWebhookURL(url string) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.url = url
}

// DuplicateDeliveries makes every later delivery go twice, same id and
// bytes, as Fleetio may repeat one.
func (s *Server) DuplicateDeliveries(on bool) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.duplicate = on
}

// SetDeliveryDelay holds every later delivery d (real time) before its first
// attempt.
func (s *Server) SetDeliveryDelay(d time.Duration) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.delay = d
}

// PauseDeliveries holds later deliveries until ResumeDeliveries.
func (s *Server) PauseDeliveries() {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.paused = true
}

// ResumeDeliveries sends the held deliveries in the given order, then
// delivers as usual: the way to make deliveries arrive out of order.
func (s *Server) ResumeDeliveries(order Order) {
	d := s.hooks
	d.mu.Lock()
	defer d.mu.Unlock()
	held := d.held
	d.held, d.paused = nil, false
	switch order {
	case Reversed:
		slices.Reverse(held)
	case Shuffled:
		rand.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	}
	d.ready = append(d.ready, held...)
	d.kick()
}

// Deliveries returns a copy of every delivery made so far, oldest first.
func (s *Server) Deliveries() []Delivery {
	d := s.hooks
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Delivery, len(d.log))
	for i, dl := range d.log {
		out[i] = *dl
		out[i].Body = slices.Clone(dl.Body)
		out[i].Attempts = slices.Clone(dl.Attempts)
	}
	return out
}

// Flush waits until no delivery is queued, held, delayed, in flight or
// waiting for a retry (given-up ones count as done).
func (s *Server) Flush(ctx context.Context) error {
	d := s.hooks
	for {
		d.mu.Lock()
		if d.pending == 0 || d.closed {
			d.mu.Unlock()
			return nil
		}
		idle := d.idle
		n := d.pending
		d.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("fake fleetio: flush: %d deliveries still pending: %w", n, ctx.Err())
		}
	}
}

// enqueue makes a delivery of event with payload. Called with s.mu held:
// it only touches the deliverer's own state.
func (d *deliverer) enqueue(event string, payload fleetio.VehicleAssignment, triggeredBy *string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.lastID++
	p, err := wire(payload)
	if err != nil {
		d.s.log.Error("fake fleetio: encode webhook payload", "err", err)
		return
	}
	// The timestamp is formatted by hand: Fleetio sends milliseconds and the
	// account's offset ("2017-11-03T10:15:38.741-05:00"), which time.Time's
	// own JSON would shorten.
	ts := d.s.accountTime(d.s.clock.Now()).Format(fleetioTime)
	body, err := json.Marshal(struct {
		ID          int64           `json:"id"`
		Event       string          `json:"event"`
		Timestamp   string          `json:"timestamp"`
		TriggeredBy *string         `json:"triggered_by"`
		Payload     json.RawMessage `json:"payload"`
	}{d.lastID, event, ts, triggeredBy, p})
	if err != nil {
		d.s.log.Error("fake fleetio: encode webhook", "err", err)
		return
	}
	dl := &Delivery{ID: d.lastID, Event: event, Body: body, Signature: Sign(d.secret, body)}
	d.log = append(d.log, dl)
	d.s.changes.signal()
	if d.url == "" {
		return
	}
	jobs := []*job{{d: dl}}
	if d.duplicate {
		jobs = append(jobs, &job{d: dl, dup: true})
	}
	d.pending += len(jobs)
	for _, j := range jobs {
		switch {
		case d.paused:
			d.held = append(d.held, j)
		case d.delay > 0:
			d.after(d.delay, j)
		default:
			d.ready = append(d.ready, j)
		}
	}
	d.kick()
}

// after puts j on the queue after wait. Called with mu held.
func (d *deliverer) after(wait time.Duration, j *job) {
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.timers, t)
		if d.closed {
			return
		}
		if d.paused {
			d.held = append(d.held, j)
			return
		}
		d.ready = append(d.ready, j)
		d.kick()
	})
	d.timers[t] = struct{}{}
}

func (d *deliverer) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// finish marks one job done. Called with mu held.
func (d *deliverer) finish() {
	d.pending--
	close(d.idle)
	d.idle = make(chan struct{})
}

func (d *deliverer) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		var j *job
		if len(d.ready) > 0 {
			j = d.ready[0]
			d.ready = d.ready[1:]
		}
		url, auth := d.url, d.auth
		d.mu.Unlock()
		if j == nil {
			select {
			case <-d.wake:
				continue
			case <-d.ctx.Done():
				return
			}
		}
		status, err := d.post(url, auth, j.d)
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return
		}
		a := Attempt{At: time.Now(), Status: status, Duplicate: j.dup}
		if err != nil {
			a.Err = err.Error()
		}
		j.d.Attempts = append(j.d.Attempts, a)
		j.tries++
		switch {
		case err == nil && status >= 200 && status < 300:
			j.d.Delivered = true
			d.finish()
		case j.tries <= len(d.retries):
			wait := d.retries[j.tries-1]
			d.s.log.Info("fake fleetio: webhook failed, will retry", "id", j.d.ID, "event", j.d.Event, "status", status, "err", err, "in", wait)
			d.after(wait, j)
		default:
			d.s.log.Warn("fake fleetio: webhook given up", "id", j.d.ID, "event", j.d.Event, "attempts", j.tries)
			if !j.d.Delivered {
				j.d.GaveUp = true
			}
			d.finish()
		}
		d.s.changes.signal() // the attempt, and Delivered or GaveUp with it
		d.mu.Unlock()
	}
}

// post makes one attempt; a non-2xx status is not an error here.
func (d *deliverer) post(url, auth string, dl *Delivery) (int, error) {
	if url == "" {
		return 0, fmt.Errorf("no webhook URL")
	}
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, url, bytes.NewReader(dl.Body))
	if err != nil {
		return 0, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Fleetio-Webhooks (smartbox fake)")
	req.Header.Set(fleetio.SignatureHeader, dl.Signature)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("webhook post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

func (d *deliverer) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for t := range d.timers {
		t.Stop()
	}
	d.timers = nil
	d.ready, d.held = nil, nil
	close(d.idle)
	d.idle = make(chan struct{})
	d.mu.Unlock()
	d.cancel()
	<-d.done
}
