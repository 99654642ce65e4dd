package boxsocket

// The maintenance session (`smartboxctl selftest` on a running box):
//
//	POST   /v1/selftest                          SessionInfo: begins one (409 if one runs, or a slot is
//	                                             released for a driver); the controller takes no codes
//	                                             nor fobs until it ends
//	DELETE /v1/selftest/{id}                     ends it: every lock de-energised
//	POST   /v1/selftest/{id}/slots/{n}/release   SessionRelease: energises slot n's lock (audited)
//	POST   /v1/selftest/{id}/slots/{n}/lock      de-energises it
//	GET    /v1/selftest/{id}/slots/{n}           SessionSensor: what its key sensor reads
//	GET    /v1/selftest/{id}/next?timeout_ms=T   SessionInput: the next key, fob or sensor change
//	                                             (kind "" after T, at most MaxNextWait)
//	GET    /v1/selftest/{id}/checks              SessionChecks: clock, store, broker
//	POST   /v1/selftest/{id}/lease               renews the lease (a client waiting for a person)
//
// Every request on the session renews its lease: a session nobody has
// spoken to for SessionLease ends by itself (a killed smartboxctl must not
// leave the box out of service, nor a lock energised). A request on an
// ended or unknown session answers 404.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Session bounds.
const (
	// SessionLease ends a session its client has not spoken to for this
	// long (a next request in flight counts as speaking).
	SessionLease = 60 * time.Second
	// MaxSessionLength ends a session this long after it began, however
	// often its client renews it: a whole 12-slot test with a person at
	// the box takes about five minutes, and a client left renewing must
	// not keep the box out of service for drivers.
	MaxSessionLength = 30 * time.Minute
	// MaxNextWait caps one next request's timeout_ms: the client asks
	// again, and the lease is renewed each time.
	MaxNextWait = 30 * time.Second
)

// SessionInfo is a session begun.
type SessionInfo struct {
	ID     string   `json:"id"`
	Slots  int      `json:"slots"`
	Layout []string `json:"layout"` // the keypad's rows
	// LeaseMS is SessionLease: speak more often than this.
	LeaseMS int64 `json:"lease_ms"`
}

// SessionRelease energises a lock for at most MS milliseconds (the box
// caps it at its hard maximum).
type SessionRelease struct {
	MS int64 `json:"ms"`
}

// SessionSensor is a key sensor's reading.
type SessionSensor struct {
	Slot    int  `json:"slot"`
	Present bool `json:"present"`
}

// SessionInput is one thing a person did at the box during the session:
// Kind "key" (Key), "fob" (Fob), "sensor" (Slot, Present), or "" when
// nothing happened within the timeout.
type SessionInput struct {
	Kind    string `json:"kind,omitempty"`
	Key     string `json:"key,omitempty"`
	Fob     string `json:"fob,omitempty"`
	Slot    int    `json:"slot,omitempty"`
	Present bool   `json:"present,omitempty"`
}

// The kinds of SessionInput.
const (
	InputKey    = "key"
	InputFob    = "fob"
	InputSensor = "sensor"
)

// SessionChecks is the box's clock, store and broker, as the self-test
// reads them.
type SessionChecks struct {
	Status Status `json:"status"`
	// StoreErr is why the store failed bbolt's check or its identity is
	// not this box's; "" when it passed.
	StoreErr string `json:"store_err,omitempty"`
}

// Session is a client's maintenance session.
type Session struct {
	c    *Client
	Info SessionInfo
}

// BeginSession begins a maintenance session.
func (c *Client) BeginSession(ctx context.Context) (*Session, error) {
	s := &Session{c: c}
	if err := c.do(ctx, http.MethodPost, "/v1/selftest", nil, &s.Info, RequestTimeout); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Session) path(rest string) string { return "/v1/selftest/" + url.PathEscape(s.Info.ID) + rest }

// End ends the session (every lock de-energised).
func (s *Session) End(ctx context.Context) error {
	return s.c.do(ctx, http.MethodDelete, s.path(""), nil, nil, RequestTimeout)
}

// Release energises slot n's lock for at most d.
func (s *Session) Release(ctx context.Context, n int, d time.Duration) error {
	return s.c.do(ctx, http.MethodPost, s.path(fmt.Sprintf("/slots/%d/release", n)), SessionRelease{MS: d.Milliseconds()}, nil, RequestTimeout)
}

// Lock de-energises slot n's lock.
func (s *Session) Lock(ctx context.Context, n int) error {
	return s.c.do(ctx, http.MethodPost, s.path(fmt.Sprintf("/slots/%d/lock", n)), nil, nil, RequestTimeout)
}

// Present reads slot n's key sensor.
func (s *Session) Present(ctx context.Context, n int) (bool, error) {
	var out SessionSensor
	err := s.c.do(ctx, http.MethodGet, s.path(fmt.Sprintf("/slots/%d", n)), nil, &out, RequestTimeout)
	return out.Present, err
}

// Next is the next input within timeout (capped at MaxNextWait), or a
// SessionInput of kind "" when none came.
func (s *Session) Next(ctx context.Context, timeout time.Duration) (SessionInput, error) {
	timeout = min(timeout, MaxNextWait)
	var out SessionInput
	q := "?timeout_ms=" + strconv.FormatInt(timeout.Milliseconds(), 10)
	err := s.c.do(ctx, http.MethodGet, s.path("/next"+q), nil, &out, RequestTimeout+timeout)
	return out, err
}

// Renew renews the lease: call it more often than Info.LeaseMS while
// waiting for a person.
func (s *Session) Renew(ctx context.Context) error {
	return s.c.do(ctx, http.MethodPost, s.path("/lease"), nil, nil, RequestTimeout)
}

// Checks reads the clock, store and broker.
func (s *Session) Checks(ctx context.Context) (SessionChecks, error) {
	var out SessionChecks
	err := s.c.do(ctx, http.MethodGet, s.path("/checks"), nil, &out, RequestTimeout)
	return out, err
}
