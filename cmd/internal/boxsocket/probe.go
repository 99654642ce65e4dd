package boxsocket

// POST /v1/cloud/probe: a signed round trip to the cloud (sync/link's
// Probe). 200 with ProbeResponse when the cloud's signed answer verified
// with the box's provisioned keys; 503 with ProbeFailure (an ErrorResponse
// with a Reason) otherwise.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ProbeTimeout bounds the daemon's wait for the cloud's answer: a cloud
// that is up answers in milliseconds, a loaded bridge on a slow uplink in
// a few seconds. ProbeRequestTimeout is the client's bound, RequestTimeout
// more, so that a slow cloud (a 503 "timeout") is told apart from a stuck
// daemon (no answer on the socket).
const (
	ProbeTimeout        = 12 * time.Second
	ProbeRequestTimeout = ProbeTimeout + RequestTimeout
)

// Reasons a probe fails (ProbeFailure.Reason).
const (
	ProbeOfflineOnly  = "offline_only"   // the config has no [cloud]: nothing to probe
	ProbeNotConnected = "not_connected"  // the box is not connected to the broker
	ProbeTimedOut     = "timeout"        // no answer from the cloud
	ProbeBadSignature = "bad_signature"  // the answer does not verify with the box's keys
	ProbeWrongBox     = "wrong_identity" // the cloud signs for another store of this box id
	ProbeBusy         = "busy"           // too many probes at once
	ProbeFailed       = "failed"         // anything else (the store, the daemon stopping)
)

// ProbeResponse is a probe that passed.
type ProbeResponse struct {
	RTTMS float64 `json:"rtt_ms"` // round trip, request to verified answer
	KeyID string  `json:"key_id"` // the cloud key that signed ("" is the default key)
}

// ProbeFailure is a probe that failed: an ErrorResponse (Error says what
// and what to do) with a Reason from the Probe* constants.
type ProbeFailure struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// ProbeError is the client's error for a probe that failed.
type ProbeError struct {
	Reason  string // a Probe* constant
	Message string
}

func (e *ProbeError) Error() string {
	return fmt.Sprintf("cloud probe failed (%s): %s", e.Reason, e.Message)
}

// Probe asks the daemon for a signed round trip to the cloud. A failed
// probe is a *ProbeError; a socket that does not answer, or another error
// status, is the error do returns.
func (c *Client) Probe(ctx context.Context) (ProbeResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, ProbeRequestTimeout)
	defer cancel()
	const path = "/v1/cloud/probe"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://smartboxd"+path, nil)
	if err != nil {
		return ProbeResponse{}, fmt.Errorf("POST %s: %w", path, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ProbeResponse{}, fmt.Errorf("POST %s on %s: %w", path, c.path, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var out ProbeResponse
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&out); err != nil {
			return out, fmt.Errorf("POST %s: decoding the answer: %w", path, err)
		}
		return out, nil
	case http.StatusServiceUnavailable:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxRequestBody))
		var f ProbeFailure
		if json.Unmarshal(b, &f) == nil && f.Reason != "" {
			return ProbeResponse{}, &ProbeError{Reason: f.Reason, Message: f.Error}
		}
		return ProbeResponse{}, &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	return ProbeResponse{}, readError(resp)
}
