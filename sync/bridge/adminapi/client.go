package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Bounds of the admin client.
const (
	// AdminCallTimeout bounds one admin call: each is a small local
	// transaction, and a minute covers a bbolt fsync on a slow SD card
	// many times over.
	AdminCallTimeout = time.Minute
	// MaxAdminAnswer caps an answer read (a box's whole record list).
	MaxAdminAnswer = 64 << 20
)

// UnreachableError is a failure to reach the admin API at all (nothing
// listens, the connection broke), as opposed to an answer that says no.
type UnreachableError struct {
	Base string // the URL called
	Err  error  // what the HTTP client said
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the bridge's admin API at %s is not reachable: %v", e.Base, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// APIError is an answer that says no: its HTTP status and the service's
// message, which is all Error says (callers tell a 409 from the rest).
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// AdminClient calls the admin API (admin.go) with the service's bearer
// token and the answer types of api.go: what `smartbox-bridge` commands and
// the simulator use.
type AdminClient struct {
	base  string // http://host:port
	token string
	http  *http.Client
}

// NewAdminClient talks to the admin API at base ("http://127.0.0.1:8480")
// with token (DATA/admin.token, or bridge.Service.AdminToken).
func NewAdminClient(base, token string) *AdminClient {
	return &AdminClient{base: base, token: token, http: &http.Client{Timeout: AdminCallTimeout}}
}

// Base is the URL the client calls.
func (c *AdminClient) Base() string { return c.base }

// Do sends in (nil: no body) as JSON and decodes a 200's JSON answer into
// out (if not nil). An error answer is an error with the service's message;
// a failure to reach the service is an *UnreachableError.
func (c *AdminClient) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &UnreachableError{Base: c.base, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxAdminAnswer))
	if err != nil {
		return fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorResponse
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &APIError{Status: resp.StatusCode, Message: e.Error}
		}
		return &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("admin API %s %s: %s", method, path, resp.Status)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the answer to %s %s: %w", method, path, err)
	}
	return nil
}
