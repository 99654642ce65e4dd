package fleetio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/sync/internal/retry"
)

// Defaults for Options left zero.
const (
	DefaultBaseURL = "https://secure.fleetio.com/api"
	// DefaultAPIVersion pins the dated API version the shapes in types.go
	// follow; it is what Fleetio's own connector sends.
	DefaultAPIVersion = "2025-05-05"
	// DefaultTimeout bounds one attempt (connect, answer and body). Fleetio
	// answers in well under a second; a hung connection must not hold a
	// bridge worker for ever.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxRetries: with the default back-off, 4 retries span 2 to
	// 7.5 s, enough for a blip; longer outages are the bridge's durable
	// queue's business, not a blocked call's.
	DefaultMaxRetries = 4
	// DefaultMaxRetryAfter caps a 429's Retry-After: an older Fleetio page
	// says 20 requests a minute, so a minute is the longest sane wait, and a
	// wild header must not stall a worker for hours.
	DefaultMaxRetryAfter = time.Minute
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	// DefaultPerPage is Fleetio's largest cursor page (2..100): fewer
	// requests against a per-minute rate limit.
	DefaultPerPage   = 100
	DefaultUserAgent = "smartbox-fleetio/1 (+https://github.com/smartbox-oss/smartbox)"
	// maxResponseBody bounds what is read of one answer: 100 records of a
	// few KB each is far below it, and a broken server cannot exhaust memory.
	maxResponseBody = 32 << 20
	// maxErrorBody is how much of a failed answer's body an APIError keeps.
	maxErrorBody = 2 << 10
)

// ErrNotFound is returned (and matched by errors.Is on an *APIError with
// status 404) when a record does not exist.
var ErrNotFound = errors.New("fleetio: not found")

// Options configure New.
type Options struct {
	BaseURL      string // default DefaultBaseURL; paths /v1/... and /v2/... are appended
	APIKey       string // required; sent as "Authorization: Token <key>", never logged
	AccountToken string // required; sent as "Account-Token", never logged
	APIVersion   string // X-Api-Version; default DefaultAPIVersion
	UserAgent    string // default DefaultUserAgent
	HTTPClient   *http.Client
	Timeout      time.Duration // per attempt; default DefaultTimeout
	// MaxRetries is how many times a request is retried after a 429, a 5xx
	// or a network error: 0 means DefaultMaxRetries, a negative value none.
	MaxRetries    int
	MaxRetryAfter time.Duration // cap on a 429's Retry-After; default DefaultMaxRetryAfter
	MinBackoff    time.Duration // first and least back-off; default DefaultMinBackoff
	MaxBackoff    time.Duration // back-off cap; default DefaultMaxBackoff (sync/internal/retry: full jitter between the two)
	PerPage       int           // cursor page size, 2..100; default DefaultPerPage
	Logger        *slog.Logger  // default slog.Default()
	// Budget, if set, is taken from before every attempt (see Budget), and
	// told of every 429's Retry-After, so that all the callers sharing it
	// wait it out, not only the one that got it. nil: no client-side limit.
	Budget Budget

	// Hooks for tests. Now reads the clock (Retry-After as an HTTP date);
	// Sleep waits d or until ctx is done (default retry.Sleep, a timer).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client calls Fleetio's API. It is safe for concurrent use.
type Client struct {
	// immutable
	base   *url.URL
	opts   Options
	http   *http.Client
	log    *slog.Logger
	secret []string // strings no error may contain
	retry  retry.Loop
}

// New checks o and makes a Client. It does not call Fleetio: use Me to
// check the credentials.
func New(o Options) (*Client, error) {
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	if o.APIKey == "" {
		return nil, errors.New("fleetio: options: APIKey is empty")
	}
	if o.AccountToken == "" {
		return nil, errors.New("fleetio: options: AccountToken is empty")
	}
	// A CR, LF or other control byte would break the header (net/http
	// refuses it at request time, with the value in no message, but later
	// and less clearly).
	if hasCtl(o.APIKey) {
		return nil, errors.New("fleetio: options: APIKey holds a control character")
	}
	if hasCtl(o.AccountToken) {
		return nil, errors.New("fleetio: options: AccountToken holds a control character")
	}
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("fleetio: options: BaseURL %q: want http(s)://host[/path]", o.BaseURL)
	}
	if base.User != nil {
		return nil, errors.New("fleetio: options: BaseURL must not carry user info")
	}
	if o.APIVersion == "" {
		o.APIVersion = DefaultAPIVersion
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	switch {
	case o.PerPage == 0:
		o.PerPage = DefaultPerPage
	case o.PerPage < 2 || o.PerPage > 100:
		return nil, fmt.Errorf("fleetio: options: PerPage %d: Fleetio allows 2..100", o.PerPage)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.Default()
	}
	c := &Client{
		base:   base,
		opts:   o,
		http:   hc,
		log:    lg.With("component", "fleetio"),
		secret: []string{o.APIKey, o.AccountToken},
	}
	c.retry = retry.Loop{
		// The one cap on a 429's Retry-After is this policy's
		// MaxRetryAfter (retryAfter applies it for APIError.RetryAfter);
		// the back-off itself is capped by MaxBackoff.
		Policy:   retry.Policy{Base: o.MinBackoff, Cap: o.MaxBackoff, MaxRetryAfter: o.MaxRetryAfter},
		Attempts: o.MaxRetries + 1,
		Sleep:    o.Sleep,
	}
	return c, nil
}

func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// APIError is a non-2xx answer from Fleetio. Body is Fleetio's error body
// (truncated; the key and token are masked should a server echo them).
type APIError struct {
	Method     string
	Path       string // path and query, without the base URL's host
	StatusCode int
	Message    string // Fleetio's "error"/"errors"/"message", if the body had one
	Body       string
	RetryAfter time.Duration // a 429's Retry-After, capped
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fleetio: %s %s: HTTP %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.Message != "":
		fmt.Fprintf(&b, ": %s", e.Message)
	case e.Body != "":
		fmt.Fprintf(&b, ": %s", e.Body)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// Retryable reports whether the same request may succeed later: rate
// limited or a server error.
func (e *APIError) Retryable() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// redactedError masks the key and token in a wrapped error's message while
// keeping errors.Is/As working.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact masks every secret in s.
func (c *Client) redact(s string) string {
	for _, v := range c.secret {
		if v != "" {
			s = strings.ReplaceAll(s, v, "[REDACTED]")
		}
	}
	return s
}

// clean returns err, wrapped so that its message holds no secret.
func (c *Client) clean(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := c.redact(msg); r != msg {
		return &redactedError{msg: r, err: err}
	}
	return err
}

// do sends one request with retries and decodes a 2xx JSON answer into out
// (nil: body discarded). It returns the answer's headers.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) (http.Header, error) {
	h, err := c.doRaw(ctx, method, path, q, in, func(body []byte) error {
		if out == nil || len(bytes.TrimSpace(body)) == 0 {
			return nil
		}
		return json.Unmarshal(body, out)
	})
	return h, c.clean(err)
}

func (c *Client) doRaw(ctx context.Context, method, path string, q url.Values, in any, decode func([]byte) error) (http.Header, error) {
	var reqBody []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("fleetio: %s %s: encode body: %w", method, path, err)
		}
		reqBody = b
	}
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = q.Encode()
	where := path
	if u.RawQuery != "" {
		where += "?" + u.RawQuery
	}

	type answer struct {
		h    http.Header
		body []byte
	}
	loop := c.retry
	if c.opts.Budget != nil && prepaid(ctx) {
		// The caller holds something others wait for: no wait here, not
		// even a retry's; its own queue retries.
		loop.Attempts = 1
	}
	loop.OnRetry = func(ctx context.Context, attempt int, wait time.Duration, err error) {
		c.log.WarnContext(ctx, "fleetio request failed, retrying",
			"method", method, "path", path, "attempt", attempt, "wait", wait, "err", c.redact(err.Error()))
	}
	a, err := retry.Do(ctx, loop, func(ctx context.Context) (answer, retry.Outcome, error) {
		if err := c.takeToken(ctx); err != nil {
			return answer{}, retry.Outcome{}, fmt.Errorf("fleetio: %s %s: %w", method, where, err)
		}
		h, body, wait, retryable, err := c.attempt(ctx, method, u.String(), where, reqBody)
		if wait > 0 && c.opts.Budget != nil {
			c.opts.Budget.Pause(c.opts.Now().Add(wait))
		}
		return answer{h, body}, retry.Outcome{Retry: retryable, RetryAfter: wait}, err
	})
	var stopped *retry.Error
	switch {
	case errors.As(err, &stopped):
		// Out of attempts, or the caller gave up (then with what the last
		// attempt saw).
		return nil, fmt.Errorf("fleetio: %s %s: %w", method, where, err)
	case err != nil:
		return nil, err
	}
	if derr := decode(a.body); derr != nil {
		return a.h, fmt.Errorf("fleetio: %s %s: decode answer: %w", method, where, derr)
	}
	return a.h, nil
}

// attempt sends one request. wait > 0 is how long a 429 asked to wait;
// retry tells whether a failure may pass on a later attempt (429, 5xx,
// network and timeout errors).
func (c *Client) attempt(ctx context.Context, method, rawURL, where string, body []byte) (h http.Header, respBody []byte, wait time.Duration, retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, rawURL, rd)
	if err != nil {
		return nil, nil, 0, false, fmt.Errorf("fleetio: %s %s: make request: %w", method, where, err)
	}
	req.Header.Set("Authorization", "Token "+c.opts.APIKey)
	req.Header.Set("Account-Token", c.opts.AccountToken)
	req.Header.Set("X-Api-Version", c.opts.APIVersion)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, 0, true, fmt.Errorf("fleetio: %s %s: %w", method, where, err)
	}
	defer resp.Body.Close()
	respBody, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, nil, 0, true, fmt.Errorf("fleetio: %s %s: read answer: %w", method, where, err)
	}
	if len(respBody) > maxResponseBody {
		// Treated as final: the same request would get the same answer.
		return nil, nil, 0, false, &APIError{Method: method, Path: where, StatusCode: resp.StatusCode,
			Message: fmt.Sprintf("answer larger than %d bytes", maxResponseBody)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.Header, respBody, 0, false, nil
	}
	e := &APIError{Method: method, Path: where, StatusCode: resp.StatusCode}
	e.Body = c.redact(strings.ToValidUTF8(string(truncate(respBody, maxErrorBody)), "?"))
	e.Message = c.redact(errorMessage(respBody))
	if resp.StatusCode == http.StatusTooManyRequests {
		e.RetryAfter = c.retryAfter(resp.Header.Get("Retry-After"))
		wait = e.RetryAfter
	}
	return resp.Header, nil, wait, e.Retryable(), e
}

func truncate(b []byte, n int) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return b[:n]
	}
	return b
}

// errorMessage pulls Fleetio's message out of an error body: {"error":"..."}
// (documented for 429), or the Rails-style {"errors":{...}} / {"message":..}.
func errorMessage(body []byte) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Errors  json.RawMessage `json:"errors"`
		Message json.RawMessage `json:"message"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	for _, raw := range []json.RawMessage{v.Error, v.Message, v.Errors} {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return string(truncate([]byte(s), maxErrorBody))
		}
		return string(truncate(raw, maxErrorBody))
	}
	return ""
}

// retryAfter reads a Retry-After value: seconds (what Fleetio sends) or an
// HTTP date (allowed by RFC 9110), capped by the retry policy (its
// MaxRetryAfter): APIError.RetryAfter is capped too, for callers that wait
// on it themselves (sync/bookings). 0: none usable.
func (c *Client) retryAfter(v string) time.Duration {
	return c.retry.Policy.AtLeast(0, retry.RetryAfter(v, c.opts.Now()))
}
