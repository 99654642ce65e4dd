package fleetiotest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/internal/retry"
)

// Clock is the fake's time: it decides current and future, the timestamps of
// records and deliveries, and the rate-limit window. box.Clock and
// boxtest.Clock satisfy it. Delivery retries and delays run on real time, so
// that a test with a frozen clock still sees its retries.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configures a fake Fleetio account.
type Options struct {
	// APIKey and AccountToken are the account's credentials: every API
	// request must carry "Authorization: Token <APIKey>" and
	// "Account-Token: <AccountToken>".
	APIKey       string
	AccountToken string

	// WebhookURL receives the vehicle_assignment_* deliveries; "" records
	// them without sending. WebhookSecret keys the HMAC-SHA256 signature.
	// WebhookAuthorization, if set, is sent as a fixed Authorization header,
	// as a Fleetio webhook can be configured to do.
	WebhookURL           string
	WebhookSecret        string
	WebhookAuthorization string

	// RetryIntervals are the waits before each retry of a failed delivery
	// (non-2xx or no answer within WebhookTimeout); when they run out the
	// delivery is given up. Default: Fleetio's reported schedule, five
	// retries in the first hour then hourly for a day. Tests pass
	// milliseconds.
	RetryIntervals []time.Duration
	// WebhookTimeout bounds one delivery attempt. Default 30 s: Fleetio
	// reportedly expects an answer within that.
	WebhookTimeout time.Duration

	// TimeZone is the account's time zone: record times and delivery
	// timestamps carry its offset, as Fleetio's do. Default a fixed -05:00
	// (the offset of Fleetio's documented example), so that a client that
	// assumes UTC fails here and not in production.
	TimeZone *time.Location
	// TriggeredBy is the triggered_by of deliveries caused through the seed
	// API (a fleet manager in Fleetio's UI); "" sends null. Changes made
	// through the HTTP API are triggered by the API key's user.
	TriggeredBy string

	// Latency delays every API request by this much before it is answered
	// (injected failures and rate limits included), as the round trip to
	// the real Fleetio does (about 100-300 ms): a benchmark or a test of
	// concurrent callers sees what waiting on the API costs. The wait runs
	// outside the fake's lock, so concurrent requests wait at the same
	// time, and ends early when the request's context does. 0: none.
	Latency time.Duration
	// Wait waits out Latency, or returns an error when ctx (the request's)
	// ends first; nil: a timer. A test of concurrent callers injects one
	// to see them wait at the same time without a clock.
	Wait func(ctx context.Context, d time.Duration) error

	Clock  Clock        // default: the system clock
	Logger *slog.Logger // default: discard
}

// Server is a fake Fleetio account: an http.Handler serving the API paths
// under /api, in-memory records, and a webhook delivery queue.
type Server struct {
	// immutable
	opts    Options
	clock   Clock
	log     *slog.Logger
	tz      *time.Location
	handler http.Handler
	hooks   *deliverer

	// mutable, under mu
	mu         sync.Mutex
	keys       map[string]apiKey // API key -> its account and rights
	me         fleetio.User
	vehicles   map[int64]fleetio.Vehicle
	contacts   map[int64]fleetio.Contact
	assigns    map[int64]fleetio.VehicleAssignment
	fields     map[string]bool // defined assignment custom fields -> required
	lastID     int64
	lastUpdate time.Time
	failures   []failure
	rateLimit  int
	rateWindow []time.Time
	retryAfter int
	requests   []Request

	// changes wakes Changed's callers; it has its own lock
	changes changes

	// listener, set by Start
	srvMu sync.Mutex
	srv   *http.Server
	url   string
}

type apiKey struct {
	account  string
	readOnly bool
}

type failure struct{ status int }

// Request is one API request as the fake saw it, for assertions (the pinned
// X-Api-Version, the cursor parameter sent, how many retries).
type Request struct {
	Method     string
	Path       string
	Query      string
	APIVersion string
	Status     int
}

// New makes a fake account with no records and a default users/me user
// (id 1, fleet.manager@example.com). Close it to stop its delivery worker.
func New(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TimeZone == nil {
		opts.TimeZone = time.FixedZone("", -5*60*60)
	}
	if opts.WebhookTimeout <= 0 {
		opts.WebhookTimeout = 30 * time.Second
	}
	if opts.RetryIntervals == nil {
		opts.RetryIntervals = FleetioRetryIntervals()
	}
	s := &Server{
		opts:       opts,
		clock:      opts.Clock,
		log:        opts.Logger,
		tz:         opts.TimeZone,
		keys:       map[string]apiKey{},
		me:         fleetio.User{ID: 1, Email: "fleet.manager@example.com", Name: "Fleet Manager", FirstName: "Fleet", LastName: "Manager"},
		vehicles:   map[int64]fleetio.Vehicle{},
		contacts:   map[int64]fleetio.Contact{},
		assigns:    map[int64]fleetio.VehicleAssignment{},
		fields:     map[string]bool{},
		retryAfter: 1,
	}
	if opts.APIKey != "" {
		s.keys[opts.APIKey] = apiKey{account: opts.AccountToken}
	}
	s.hooks = newDeliverer(s, opts)
	s.handler = s.routes()
	return s
}

// FleetioRetryIntervals is Fleetio's reported retry schedule: five retries
// in the first hour, then hourly until a day has passed.
func FleetioRetryIntervals() []time.Duration {
	iv := []time.Duration{time.Minute, 4 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute}
	for range 23 {
		iv = append(iv, time.Hour)
	}
	return iv
}

// Start serves the fake on 127.0.0.1 at a free port and returns its base URL
// ("http://127.0.0.1:port"); the API is under BaseURL()+"/api".
func (s *Server) Start() (string, error) { return s.StartOn("127.0.0.1:0") }

// StartOn serves the fake on addr ("host:port").
func (s *Server) StartOn(addr string) (string, error) {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return "", errors.New("fake fleetio: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("fake fleetio: listen on %s: %w", addr, err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.url = "http://" + ln.Addr().String()
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("fake fleetio: serve", "err", err)
		}
	}()
	return s.url, nil
}

// BaseURL is "http://host:port" once started, "" before.
func (s *Server) BaseURL() string {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	return s.url
}

// APIURL is the equivalent of https://secure.fleetio.com/api.
func (s *Server) APIURL() string {
	if u := s.BaseURL(); u != "" {
		return u + "/api"
	}
	return ""
}

// Close stops the listener (if started) and the delivery worker; deliveries
// still queued are dropped.
func (s *Server) Close() error {
	s.hooks.close()
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// AddAPIKey registers another API key: one of accountToken's account (a
// different token gives the "key of another account" 403), or a read-only
// key of this account (its PATCH gets 403, as a key with a user lacking the
// right would).
func (s *Server) AddAPIKey(key, accountToken string, readOnly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = apiKey{account: accountToken, readOnly: readOnly}
}

// FailNext makes the next n API requests (after authentication) answer
// status. A 429 carries Retry-After (see SetRetryAfter) and Fleetio's error
// body; any other status carries {"error": <status text>}.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status})
	}
}

// RateLimit allows at most n API requests per minute of the fake's clock;
// the rest get 429 with Retry-After set to the seconds until the window
// frees a slot. 0 turns the limit off. With a frozen test clock, advance it
// to let requests through again.
func (s *Server) RateLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit = n
	s.rateWindow = nil
}

// SetRetryAfter sets the Retry-After seconds of FailNext's 429s (default 1;
// 0 lets a client's test retry at once).
func (s *Server) SetRetryAfter(seconds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = max(seconds, 0)
}

// Requests returns the API requests seen so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.Latency > 0 && strings.HasPrefix(r.URL.Path, "/api/") {
		wait := s.opts.Wait
		if wait == nil {
			wait = retry.Sleep
		}
		if wait(r.Context(), s.opts.Latency) != nil {
			return // the client went away: nobody reads an answer
		}
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.handler.ServeHTTP(rec, r)
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		APIVersion: r.Header.Get("X-Api-Version"), Status: rec.status,
	})
	s.mu.Unlock()
	s.log.Debug("fake fleetio: request", "method", r.Method, "path", r.URL.Path, "status", rec.status)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// authenticate checks the two credential headers and applies injected
// failures and the rate limit. It reports the caller's key on success and
// has written the error response otherwise.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (apiKey, bool) {
	key := parseTokenAuth(r.Header.Get("Authorization"))
	account := r.Header.Get("Account-Token")
	s.mu.Lock()
	k, known := s.keys[key]
	s.mu.Unlock()
	switch {
	case key == "" || account == "":
		writeError(w, http.StatusUnauthorized, "Unauthorized: send Authorization: Token <API key> and Account-Token")
		return apiKey{}, false
	case !known:
		writeError(w, http.StatusUnauthorized, "Unauthorized: unknown API key")
		return apiKey{}, false
	case k.account != account || account != s.opts.AccountToken:
		// A real key used with an account it does not belong to: Fleetio
		// answers with the key's permissions, and it has none there.
		writeError(w, http.StatusForbidden, "Forbidden: this API key does not belong to that account")
		return apiKey{}, false
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		if f.status == http.StatusTooManyRequests {
			writeTooMany(w, s.retryAfter)
		} else {
			writeError(w, f.status, http.StatusText(f.status))
		}
		return apiKey{}, false
	}
	if s.rateLimit > 0 {
		now := s.clock.Now()
		cut := now.Add(-time.Minute)
		kept := s.rateWindow[:0]
		for _, t := range s.rateWindow {
			if t.After(cut) {
				kept = append(kept, t)
			}
		}
		s.rateWindow = kept
		if len(s.rateWindow) >= s.rateLimit {
			wait := s.rateWindow[0].Add(time.Minute).Sub(now)
			writeTooMany(w, int(math.Ceil(wait.Seconds())))
			return apiKey{}, false
		}
		s.rateWindow = append(s.rateWindow, now)
	}
	return k, true
}

// parseTokenAuth takes "Token <key>" (Fleetio's docs) and the older
// `Token token="<key>"` seen in third-party code.
func parseTokenAuth(h string) string {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Token") {
		return ""
	}
	rest = strings.TrimSpace(rest)
	if v, ok := strings.CutPrefix(rest, "token="); ok {
		rest = strings.Trim(v, `"`)
	}
	return rest
}

// TooManyRequestsBody is the error text of Fleetio's 429.
const TooManyRequestsBody = "Too many requests detected from your account token. Please wait and try again."

func writeTooMany(w http.ResponseWriter, retryAfter int) {
	w.Header().Set("Retry-After", fmt.Sprint(max(retryAfter, 0)))
	writeError(w, http.StatusTooManyRequests, TooManyRequestsBody)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeValidation is Rails' 422 shape: {"errors": {"field": ["message"]}}.
func writeValidation(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]map[string][]string{"errors": {field: {msg}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"encoding failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
