package fleetio

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const sampleDelivery = `{"id": 1, "event": "vehicle_assignment_updated", "timestamp": "2017-11-03T10:15:38.741-05:00", ` +
	`"triggered_by": "user@example.com", "payload": {"id": 501, "created_at": "2017-11-01T08:00:00.000-05:00", ` +
	`"updated_at": "2017-11-03T10:15:38.000-05:00", "vehicle_id": 11, "contact_id": 22, ` +
	`"started_at": "2017-11-04T07:00:00-05:00", "ended_at": "2017-11-04T19:00:00-05:00", "current": false, "future": true, ` +
	`"custom_fields": {"keycafe_access_code": null, "keycafe_access_link": "", "keycafe_access_instructions": null}, ` +
	`"contact_full_name": "Dana Driver", "contact": {"id": 22, "email": "dana@example.com", "name": "Dana Driver", "group_id": 3}, ` +
	`"vehicle": {"id": 11, "name": "Van 3", "license_plate": "KEY-123", "vin": "1FTBW2CM0HKA12345", "year": 2019, "make": "Ford", "model": "Transit"}}}`

func TestSignKnownAnswer(t *testing.T) {
	// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
	require.Equal(t, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		Sign([]byte("Jefe"), []byte("what do ya want for nothing?")))
}

func TestVerifyWebhook(t *testing.T) {
	secret := []byte("whsec_0123456789")
	body := []byte(sampleDelivery)
	good := Sign(secret, body)
	other := Sign([]byte("another secret"), body)
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		sig    string
		want   error
	}{
		{"good", secret, body, good, nil},
		{"upper-case hex", secret, body, strings.ToUpper(good), nil},
		{"surrounding space", secret, body, " " + good + "\t", nil},
		{"sha256= prefix", secret, body, "sha256=" + good, nil},
		{"empty body signed", secret, nil, Sign(secret, nil), nil},
		{"wrong secret", secret, body, other, ErrBadSignature},
		{"body changed", secret, append([]byte(sampleDelivery), ' '), good, ErrBadSignature},
		{"one digit flipped", secret, body, flip(good), ErrBadSignature},
		{"truncated", secret, body, good[:63], ErrBadSignature},
		{"too long", secret, body, good + "00", ErrBadSignature},
		{"not hex", secret, body, strings.Repeat("zz", 32), ErrBadSignature},
		{"base64 instead of hex", secret, body, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=", ErrBadSignature},
		{"empty header", secret, body, "", ErrMissingSignature},
		{"blank header", secret, body, "   ", ErrMissingSignature},
		{"no secret", nil, body, Sign(nil, body), ErrNoSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyWebhook(tt.secret, tt.body, tt.sig)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			require.NotContains(t, err.Error(), good, "the expected signature is never revealed")
		})
	}
}

// ParseSignatureHeader sorts headers by form alone, before any body: what
// VerifyWebhook refuses for its form is refused here with the same error.
func TestParseSignatureHeader(t *testing.T) {
	good := Sign([]byte("k"), []byte(sampleDelivery))
	for _, tt := range []struct {
		name, sig string
		want      error
	}{
		{"lower-case hex", good, nil},
		{"upper-case hex", strings.ToUpper(good), nil},
		{"sha256= prefix and space", " sha256=" + good + " ", nil},
		{"missing", "", ErrMissingSignature},
		{"blank", " \t", ErrMissingSignature},
		{"truncated", good[:63], ErrBadSignature},
		{"too long", good + "0", ErrBadSignature},
		{"not hex", strings.Repeat("g", 64), ErrBadSignature},
		{"prefix only", "sha256=", ErrBadSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseSignatureHeader(tt.sig)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, good, hex.EncodeToString(d))
		})
	}
}

func flip(h string) string {
	b := []byte(h)
	if b[10] == '0' {
		b[10] = '1'
	} else {
		b[10] = '0'
	}
	return string(b)
}

func TestVerifyAuthorization(t *testing.T) {
	tests := []struct {
		name, want, got string
		ok              bool
	}{
		{"not configured", "", "anything", true},
		{"not configured, absent", "", "", true},
		{"match", "Bearer s3cret", "Bearer s3cret", true},
		{"match with spaces", "Bearer s3cret", " Bearer s3cret ", true},
		{"mismatch", "Bearer s3cret", "Bearer s3cre", false},
		{"absent", "Bearer s3cret", "", false},
		{"case matters", "Bearer s3cret", "bearer s3cret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyAuthorization(tt.want, tt.got)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrBadAuthorization)
				require.NotContains(t, err.Error(), tt.want)
			}
		})
	}
}

func TestWebhookVerifier(t *testing.T) {
	v := WebhookVerifier{Secret: []byte("k"), Authorization: "Basic Zm9vOmJhcg=="}
	body := []byte(sampleDelivery)
	h := http.Header{}
	h.Set(SignatureHeader, Sign(v.Secret, body))
	h.Set("Authorization", v.Authorization)
	require.NoError(t, v.Verify(h, body))

	h.Set("Authorization", "Basic nope")
	require.ErrorIs(t, v.Verify(h, body), ErrBadAuthorization)

	h.Set("Authorization", v.Authorization)
	h.Set(SignatureHeader, Sign([]byte("x"), body))
	require.ErrorIs(t, v.Verify(h, body), ErrBadSignature)

	h.Del(SignatureHeader)
	require.ErrorIs(t, v.Verify(h, body), ErrMissingSignature)
}

func TestParseWebhook(t *testing.T) {
	w, err := ParseWebhook([]byte(sampleDelivery))
	require.NoError(t, err)
	require.Equal(t, int64(1), w.ID)
	require.Equal(t, EventAssignmentUpdated, w.Event)
	require.NotNil(t, w.TriggeredBy)
	require.Equal(t, "user@example.com", *w.TriggeredBy)
	require.True(t, w.Timestamp.Equal(time.Date(2017, 11, 3, 15, 15, 38, 741e6, time.UTC)))
	_, off := w.Timestamp.Zone()
	require.Equal(t, -5*3600, off, "the account's offset is kept")

	a, err := ParseAssignment(w.Payload)
	require.NoError(t, err)
	require.Equal(t, int64(501), a.ID)
	require.Equal(t, int64(11), a.VehicleID)
	require.Equal(t, int64(22), a.ContactID)
	require.NotNil(t, a.EndedAt)
	require.Equal(t, 12*time.Hour, a.EndedAt.Sub(a.StartedAt))
	require.True(t, a.Future)
	require.Equal(t, "", a.CustomFields[FieldAccessLink])
	require.Nil(t, a.CustomFields[FieldAccessCode])
	require.Equal(t, int64(3), a.Contact.GroupID)
	require.Equal(t, "Transit", a.Vehicle.Model)

	// A Webhook marshalled by us (the fake does so) parses back the same.
	b, err := json.Marshal(w)
	require.NoError(t, err)
	w2, err := ParseWebhook(b)
	require.NoError(t, err)
	require.True(t, w.Timestamp.Equal(w2.Timestamp))
	w2.Timestamp = w.Timestamp
	require.JSONEq(t, string(w.Payload), string(w2.Payload))
	w2.Payload = w.Payload
	require.Equal(t, w, w2)
}

func TestParseWebhookLiberalAndBad(t *testing.T) {
	const p = `"payload": {"id": 5}`
	tests := []struct {
		name string
		body string
		err  string // "" : accepted
		chk  func(t *testing.T, w Webhook)
	}{
		{"triggered_by null", `{"id": 2, "event": "vehicle_assignment_created", "timestamp": "2025-01-02T03:04:05Z", "triggered_by": null, ` + p + `}`, "",
			func(t *testing.T, w Webhook) { require.Nil(t, w.TriggeredBy) }},
		{"id as string", `{"id": "42", "event": "e", ` + p + `}`, "",
			func(t *testing.T, w Webhook) {
				require.Equal(t, int64(42), w.ID)
				require.True(t, w.Timestamp.IsZero())
			}},
		{"offset without colon", `{"id": 3, "event": "e", "timestamp": "2017-11-03T10:15:38.741-0500", ` + p + `}`, "",
			func(t *testing.T, w Webhook) { _, off := w.Timestamp.Zone(); require.Equal(t, -5*3600, off) }},
		{"space separated", `{"id": 3, "event": "e", "timestamp": "2017-11-03 10:15:38 -0500", ` + p + `}`, "", nil},
		{"unknown fields", `{"id": 3, "event": "e", "extra": [1,2], ` + p + `}`, "", nil},
		{"unknown event kept", `{"id": 3, "event": "fuel_entry_created", ` + p + `}`, "",
			func(t *testing.T, w Webhook) { require.Equal(t, "fuel_entry_created", w.Event) }},
		{"empty", ``, "empty body", nil},
		{"blank", " \n", "empty body", nil},
		{"array", `[1]`, "not a JSON object", nil},
		{"malformed", `{"id": 1,`, "malformed JSON", nil},
		{"trailing garbage", `{"id": 1, "event": "e", ` + p + `} x`, "malformed JSON", nil},
		{"no id", `{"event": "e", ` + p + `}`, "field id: missing", nil},
		{"zero id", `{"id": 0, "event": "e", ` + p + `}`, "field id: want a positive integer", nil},
		{"float id", `{"id": 1.5, "event": "e", ` + p + `}`, "field id: want an integer", nil},
		{"huge id", `{"id": 99999999999999999999, "event": "e", ` + p + `}`, "field id: want an integer", nil},
		{"no event", `{"id": 1, ` + p + `}`, "field event: missing", nil},
		{"event not string", `{"id": 1, "event": 7, ` + p + `}`, "field event: want a string", nil},
		{"timestamp without offset", `{"id": 1, "event": "e", "timestamp": "2017-11-03T10:15:38", ` + p + `}`, "field timestamp", nil},
		{"offset out of range", `{"id": 1, "event": "e", "timestamp": "2017-11-03T10:15:38+24:00", ` + p + `}`, "offset outside", nil},
		{"timestamp number", `{"id": 1, "event": "e", "timestamp": 1509722138, ` + p + `}`, "field timestamp: want a string", nil},
		{"triggered_by object", `{"id": 1, "event": "e", "triggered_by": {}, ` + p + `}`, "field triggered_by", nil},
		{"no payload", `{"id": 1, "event": "e"}`, "field payload: missing", nil},
		{"payload null", `{"id": 1, "event": "e", "payload": null}`, "field payload: missing", nil},
		{"payload string", `{"id": 1, "event": "e", "payload": "x"}`, "field payload: want a JSON object", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWebhook([]byte(tt.body))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			if tt.chk != nil {
				tt.chk(t, w)
			}
		})
	}
}

func TestParseAssignment(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		id      int64
		err     string
	}{
		{"bare", `{"id": 7, "vehicle_id": 1, "started_at": "2025-01-01T00:00:00+01:00", "ended_at": null}`, 7, ""},
		{"wrapped", `{"vehicle_assignment": {"id": 8, "vehicle_id": 1}}`, 8, ""},
		{"no id", `{"vehicle_id": 1}`, 0, "missing or not positive"},
		{"not object", `[]`, 0, "not a JSON object"},
		{"empty", ``, 0, "not a JSON object"},
		{"bad time", `{"id": 7, "started_at": "yesterday"}`, 0, "fleetio assignment"},
		{"id as text", `{"id": "7"}`, 0, "fleetio assignment"},
		{"malformed", `{"id": 7`, 0, "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAssignment(json.RawMessage(tt.payload))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.id, a.ID)
			require.Nil(t, a.EndedAt)
		})
	}
}

func FuzzParseWebhook(f *testing.F) {
	f.Add([]byte(sampleDelivery))
	f.Add([]byte(`{"id": "42", "event": "e", "timestamp": "2017-11-03 10:15:38 -0500", "triggered_by": null, "payload": {"id": 5}}`))
	f.Add([]byte(`{"id": 1, "event": "e", "payload": {"vehicle_assignment": {"id": 2}}}`))
	f.Add([]byte(`{"id": -1}`))
	f.Add([]byte(`{"id": 1, "event": "e", "timestamp": "2017-11-03T10:15:38+14:00", "payload": {}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := ParseWebhook(body)
		if err != nil {
			require.Zero(t, w.Payload, "no payload from a refused delivery")
			return
		}
		require.Positive(t, w.ID)
		require.NotEmpty(t, w.Event)
		require.True(t, json.Valid(w.Payload))
		// What we accept survives a round trip through our own encoding.
		b, err := json.Marshal(w)
		require.NoError(t, err)
		w2, err := ParseWebhook(b)
		require.NoError(t, err)
		require.Equal(t, w.ID, w2.ID)
		require.Equal(t, w.Event, w2.Event)
		require.True(t, w.Timestamp.Equal(w2.Timestamp))
		_, _ = ParseAssignment(w.Payload) // must not panic
	})
}

func FuzzVerifyWebhook(f *testing.F) {
	f.Add([]byte("whsec"), []byte(sampleDelivery), "")
	f.Add([]byte("k"), []byte("{}"), strings.Repeat("A", 64))
	f.Add([]byte{}, []byte("x"), "sha256=00")
	f.Fuzz(func(t *testing.T, secret, body []byte, sig string) {
		err := VerifyWebhook(secret, body, sig)
		if len(secret) == 0 {
			require.ErrorIs(t, err, ErrNoSecret)
			return
		}
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		want := m.Sum(nil)
		// Whatever was sent, only the right MAC passes.
		s := strings.TrimSpace(sig)
		if len(s) > 7 && strings.EqualFold(s[:7], "sha256=") {
			s = s[7:]
		}
		got, decErr := hex.DecodeString(s)
		correct := decErr == nil && hmac.Equal(got, want)
		require.Equal(t, correct, err == nil, "sig %q", sig)
		if err != nil {
			require.True(t, errors.Is(err, ErrBadSignature) || errors.Is(err, ErrMissingSignature))
		}
		// The signature we make always passes, in either case.
		good := Sign(secret, body)
		require.NoError(t, VerifyWebhook(secret, body, good))
		require.NoError(t, VerifyWebhook(secret, body, strings.ToUpper(good)))
		if len(body) > 0 {
			require.ErrorIs(t, VerifyWebhook(secret, body[1:], good), ErrBadSignature)
		}
	})
}
