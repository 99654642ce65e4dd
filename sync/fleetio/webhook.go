package fleetio

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook verification errors; match them with errors.Is. A caller answers
// 401 to all of them and stores nothing.
var (
	ErrNoSecret         = errors.New("fleetio webhook: no secret configured")
	ErrMissingSignature = errors.New("fleetio webhook: missing " + SignatureHeader)
	ErrBadSignature     = errors.New("fleetio webhook: signature does not match")
	ErrBadAuthorization = errors.New("fleetio webhook: Authorization header does not match")
)

// Sign returns the lower-case hex HMAC-SHA256 of body keyed with secret:
// the value Fleetio puts in X-Fleetio-Webhook-Signature.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyWebhook checks signatureHeader against the HMAC-SHA256 of the raw
// body (as received, before any parsing: re-encoded JSON would not match).
// Fleetio sends lower-case hex; upper case and a "sha256=" prefix are
// accepted too. The comparison is constant-time (hmac.Equal) so that the
// time to refuse says nothing about how much of a forged value was right.
// Errors never contain the expected signature.
func VerifyWebhook(secret, body []byte, signatureHeader string) error {
	if len(secret) == 0 {
		// An empty key would make every forger's HMAC valid.
		return ErrNoSecret
	}
	got, err := ParseSignatureHeader(signatureHeader)
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), got) {
		return ErrBadSignature
	}
	return nil
}

// ParseSignatureHeader checks the form of an X-Fleetio-Webhook-Signature
// value without the body: 64 hex digits (either case, optionally after
// "sha256=", surrounding space ignored). A receiver calls it before it reads
// a body, so that a request that cannot be a delivery costs no body read.
// It returns the decoded digest; errors are ErrMissingSignature or
// ErrBadSignature.
func ParseSignatureHeader(signatureHeader string) ([]byte, error) {
	sig := strings.TrimSpace(signatureHeader)
	if sig == "" {
		return nil, ErrMissingSignature
	}
	if len(sig) > 7 && strings.EqualFold(sig[:7], "sha256=") {
		sig = sig[7:]
	}
	if len(sig) != 2*sha256.Size {
		return nil, fmt.Errorf("%w: %d characters, want %d hex digits", ErrBadSignature, len(sig), 2*sha256.Size)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: not hex", ErrBadSignature)
	}
	return got, nil
}

// VerifyAuthorization checks the fixed Authorization value a webhook may be
// configured with. want "" means none is configured: anything passes. Both
// sides are hashed first so that the constant-time compare does not leak
// the configured value's length either.
func VerifyAuthorization(want, got string) error {
	if want == "" {
		return nil
	}
	w := sha256.Sum256([]byte(want))
	g := sha256.Sum256([]byte(strings.TrimSpace(got)))
	if subtle.ConstantTimeCompare(w[:], g[:]) != 1 {
		return ErrBadAuthorization
	}
	return nil
}

// WebhookVerifier holds a webhook's secret and its optional fixed
// Authorization value.
type WebhookVerifier struct {
	Secret        []byte
	Authorization string // "" : not checked
}

// Verify checks a delivery's headers against its raw body: the fixed
// Authorization value (if configured) and the signature.
func (v WebhookVerifier) Verify(h http.Header, body []byte) error {
	// Check both, so that timing does not tell which failed first.
	authErr := VerifyAuthorization(v.Authorization, h.Get("Authorization"))
	sigErr := VerifyWebhook(v.Secret, body, h.Get(SignatureHeader))
	if sigErr != nil {
		return sigErr
	}
	return authErr
}

// ParseWebhook decodes a delivery's body. It wants an object with a
// positive id (the delivery id, used to de-duplicate), a non-empty event
// and an object payload; timestamp is optional but must parse if present;
// triggered_by is a string or null. Unknown fields are ignored.
func ParseWebhook(body []byte) (Webhook, error) {
	var raw struct {
		ID          json.RawMessage `json:"id"`
		Event       json.RawMessage `json:"event"`
		Timestamp   json.RawMessage `json:"timestamp"`
		TriggeredBy json.RawMessage `json:"triggered_by"`
		Payload     json.RawMessage `json:"payload"`
	}
	var w Webhook
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return w, errors.New("fleetio webhook: empty body")
	}
	if b[0] != '{' {
		return w, errors.New("fleetio webhook: body is not a JSON object")
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return w, fmt.Errorf("fleetio webhook: malformed JSON: %w", err)
	}
	id, err := parseID(raw.ID)
	if err != nil {
		return w, fmt.Errorf("fleetio webhook: field id: %w", err)
	}
	w.ID = id
	if err := json.Unmarshal(orNull(raw.Event), &w.Event); err != nil {
		return w, fmt.Errorf("fleetio webhook: field event: want a string: %w", err)
	}
	w.Event = strings.TrimSpace(w.Event)
	if w.Event == "" {
		return w, errors.New("fleetio webhook: field event: missing or empty")
	}
	if s := string(orNull(raw.Timestamp)); s != "null" {
		var ts string
		if err := json.Unmarshal(raw.Timestamp, &ts); err != nil {
			return w, fmt.Errorf("fleetio webhook: field timestamp: want a string: %w", err)
		}
		if ts != "" {
			t, err := ParseTime(ts)
			if err != nil {
				return w, fmt.Errorf("fleetio webhook: field timestamp: %w", err)
			}
			w.Timestamp = t
		}
	}
	if s := string(orNull(raw.TriggeredBy)); s != "null" {
		var tb string
		if err := json.Unmarshal(raw.TriggeredBy, &tb); err != nil {
			return w, fmt.Errorf("fleetio webhook: field triggered_by: want a string or null: %w", err)
		}
		w.TriggeredBy = &tb
	}
	p := bytes.TrimSpace(raw.Payload)
	if len(p) == 0 || string(p) == "null" {
		return w, errors.New("fleetio webhook: field payload: missing")
	}
	if p[0] != '{' {
		return w, errors.New("fleetio webhook: field payload: want a JSON object")
	}
	w.Payload = append(json.RawMessage(nil), p...)
	return w, nil
}

func orNull(r json.RawMessage) json.RawMessage {
	r = bytes.TrimSpace(r)
	if len(r) == 0 {
		return json.RawMessage("null")
	}
	return r
}

// parseID accepts a JSON integer or a string of one (liberal: the shape of
// ids in deliveries is documented only by one example).
func parseID(r json.RawMessage) (int64, error) {
	r = orNull(r)
	if string(r) == "null" {
		return 0, errors.New("missing")
	}
	s := string(r)
	if r[0] == '"' {
		if err := json.Unmarshal(r, &s); err != nil {
			return 0, fmt.Errorf("want an integer: %w", err)
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %.40s", s)
	}
	if n <= 0 {
		return 0, fmt.Errorf("want a positive integer, got %d", n)
	}
	return n, nil
}

// timeLayouts are the forms Fleetio timestamps are accepted in: RFC 3339
// with an offset (what Fleetio documents, in the account's time zone), and
// the looser forms Rails emits elsewhere (offset without a colon, a space
// instead of "T").
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02 15:04:05.999999999 Z0700",
}

// ParseTime reads a Fleetio timestamp, keeping its offset (no wider than
// ±14 h). A time without
// an offset is refused: guessing the account's zone would shift a booking.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			// Real zones lie within UTC-12..UTC+14; time.Parse takes up to
			// +24:00, which JSON encoding then refuses.
			if _, off := t.Zone(); off < -14*3600 || off > 14*3600 {
				return time.Time{}, fmt.Errorf("%.64q: offset outside -12:00..+14:00", s)
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%.64q is not a time with an offset (want e.g. 2017-11-03T10:15:38.741-05:00)", s)
}

// ParseAssignment decodes a webhook payload holding a vehicle assignment.
// Besides the bare object it accepts one wrapped as
// {"vehicle_assignment": {...}} (unconfirmed shape). The id must be
// positive.
func ParseAssignment(payload json.RawMessage) (VehicleAssignment, error) {
	var a VehicleAssignment
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || p[0] != '{' {
		return a, errors.New("fleetio assignment: payload is not a JSON object")
	}
	var wrap struct {
		ID json.RawMessage `json:"id"`
		VA json.RawMessage `json:"vehicle_assignment"`
	}
	if err := json.Unmarshal(p, &wrap); err != nil {
		return a, fmt.Errorf("fleetio assignment: malformed JSON: %w", err)
	}
	if len(wrap.ID) == 0 && len(bytes.TrimSpace(wrap.VA)) > 0 && bytes.TrimSpace(wrap.VA)[0] == '{' {
		p = bytes.TrimSpace(wrap.VA)
	}
	if err := json.Unmarshal(p, &a); err != nil {
		return VehicleAssignment{}, fmt.Errorf("fleetio assignment: %w", err)
	}
	if a.ID <= 0 {
		return VehicleAssignment{}, fmt.Errorf("fleetio assignment: id %d: missing or not positive", a.ID)
	}
	return a, nil
}
