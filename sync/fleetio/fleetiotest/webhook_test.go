package fleetiotest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

const secret = "whsec-789"

type received struct {
	hdr  http.Header
	body []byte
}

// receiver is a webhook endpoint that answers with status(n) for its n-th
// request (0-based) and keeps what it got.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	n      atomic.Int64
	status func(n int64) int
}

func newReceiver(t *testing.T, status func(n int64) int) *receiver {
	t.Helper()
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, received{hdr: req.Header.Clone(), body: b})
		r.mu.Unlock()
		w.WriteHeader(r.status(r.n.Add(1) - 1))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func ok(int64) int { return http.StatusOK }

func flush(t *testing.T, f *fleetiotest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, f.Flush(ctx))
}

func decode(t *testing.T, b []byte) (fleetio.Webhook, fleetio.VehicleAssignment) {
	t.Helper()
	var w fleetio.Webhook
	require.NoError(t, json.Unmarshal(b, &w))
	var a fleetio.VehicleAssignment
	require.NoError(t, json.Unmarshal(w.Payload, &a))
	return w, a
}

var fast = []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}

func TestWebhookSignedShape(t *testing.T) {
	rcv := newReceiver(t, ok)
	e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, WebhookAuthorization: "Basic c2I6cHc=", RetryIntervals: fast, TriggeredBy: "manager@depot.example"})
	a := e.assign(t, e.van, e.ada, time.Hour, nil)
	end := t0.Add(3 * time.Hour)
	_, err := e.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.EndedAt = &end })
	require.NoError(t, err)
	_, err = e.f.DeleteAssignment(a.ID)
	require.NoError(t, err)
	flush(t, e.f)

	got := rcv.received()
	require.Len(t, got, 3)
	wantEvents := []string{fleetio.EventAssignmentCreated, fleetio.EventAssignmentUpdated, fleetio.EventAssignmentDeleted}
	for i, r := range got {
		// The signature is the lower-case hex HMAC-SHA256 of the raw body.
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(r.body)
		want := hex.EncodeToString(m.Sum(nil))
		require.Equal(t, want, r.hdr.Get("X-Fleetio-Webhook-Signature"))
		require.Equal(t, "application/json", r.hdr.Get("Content-Type"))
		require.Equal(t, "Basic c2I6cHc=", r.hdr.Get("Authorization"))

		var raw map[string]any
		require.NoError(t, json.Unmarshal(r.body, &raw))
		require.ElementsMatch(t, []string{"id", "event", "timestamp", "triggered_by", "payload"}, keys(raw))
		require.Equal(t, wantEvents[i], raw["event"])
		require.Equal(t, "manager@depot.example", raw["triggered_by"])
		require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-05:00$`, raw["timestamp"])

		w, pa := decode(t, r.body)
		require.EqualValues(t, i+1, w.ID)
		require.Equal(t, a.ID, pa.ID)
		require.Equal(t, e.van.ID, pa.VehicleID)
		require.True(t, pa.Future)
	}
	_, upd := decode(t, got[1].body)
	require.NotNil(t, upd.EndedAt)
	require.True(t, upd.EndedAt.Equal(end))
	require.True(t, upd.UpdatedAt.After(a.UpdatedAt))

	dl := e.f.Deliveries()
	require.Len(t, dl, 3)
	for _, d := range dl {
		require.True(t, d.Delivered)
		require.Len(t, d.Attempts, 1)
		require.Equal(t, fleetiotest.Sign(secret, d.Body), d.Signature)
	}
}

func TestWebhookPatchTriggersUpdate(t *testing.T) {
	rcv := newReceiver(t, ok)
	e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: fast})
	a := e.assign(t, e.van, e.ada, 0, nil)
	resp, b := e.do(t, http.MethodPatch, fmt.Sprintf("/v1/vehicle_assignments/%d", a.ID), `{"custom_fields":{"keycafe_access_code":"483920"}}`, nil)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	flush(t, e.f)
	got := rcv.received()
	require.Len(t, got, 2)
	w, pa := decode(t, got[0].body)
	require.Nil(t, w.TriggeredBy, "seeded changes without TriggeredBy send null")
	w, pa = decode(t, got[1].body)
	require.Equal(t, fleetio.EventAssignmentUpdated, w.Event)
	require.NotNil(t, w.TriggeredBy)
	require.Equal(t, "fleet.manager@example.com", *w.TriggeredBy)
	require.Equal(t, "483920", pa.CustomFields[fleetio.FieldAccessCode])
}

func TestWebhookRetries(t *testing.T) {
	t.Run("a 500-ing receiver gets the same delivery again", func(t *testing.T) {
		rcv := newReceiver(t, func(n int64) int {
			if n < 2 {
				return http.StatusInternalServerError
			}
			return http.StatusNoContent
		})
		e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: fast})
		e.assign(t, e.van, e.ada, 0, nil)
		flush(t, e.f)
		got := rcv.received()
		require.Len(t, got, 3)
		for _, r := range got[1:] {
			require.Equal(t, got[0].body, r.body, "a retry sends the same bytes")
			require.Equal(t, got[0].hdr.Get(fleetio.SignatureHeader), r.hdr.Get(fleetio.SignatureHeader))
		}
		d := e.f.Deliveries()[0]
		require.True(t, d.Delivered)
		require.False(t, d.GaveUp)
		require.Equal(t, []int{500, 500, 204}, []int{d.Attempts[0].Status, d.Attempts[1].Status, d.Attempts[2].Status})
	})
	t.Run("gives up when the schedule runs out", func(t *testing.T) {
		rcv := newReceiver(t, func(int64) int { return http.StatusBadGateway })
		e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: fast})
		e.assign(t, e.van, e.ada, 0, nil)
		flush(t, e.f)
		require.Len(t, rcv.received(), 1+len(fast))
		d := e.f.Deliveries()[0]
		require.True(t, d.GaveUp)
		require.False(t, d.Delivered)
	})
	t.Run("a receiver that does not answer in time", func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int64
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			w.WriteHeader(200)
		}))
		t.Cleanup(slow.Close)
		t.Cleanup(func() { close(release) })
		e := newEnv(t, fleetiotest.Options{WebhookURL: slow.URL, WebhookSecret: secret, RetryIntervals: fast, WebhookTimeout: 100 * time.Millisecond})
		e.assign(t, e.van, e.ada, 0, nil)
		flush(t, e.f)
		d := e.f.Deliveries()[0]
		require.True(t, d.Delivered)
		require.Len(t, d.Attempts, 2)
		require.Zero(t, d.Attempts[0].Status)
		require.NotEmpty(t, d.Attempts[0].Err)
	})
	t.Run("a retried delivery arrives after later ones", func(t *testing.T) {
		rcv := newReceiver(t, func(n int64) int {
			if n == 0 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: []time.Duration{200 * time.Millisecond}})
		e.assign(t, e.van, e.ada, 0, nil)
		e.assign(t, e.truck, e.bob, 0, nil)
		flush(t, e.f)
		var order []int64
		for _, r := range rcv.received() {
			w, _ := decode(t, r.body)
			order = append(order, w.ID)
		}
		require.Equal(t, []int64{1, 2, 1}, order)
	})
}

func TestWebhookDuplicatesAndOrder(t *testing.T) {
	t.Run("duplicates", func(t *testing.T) {
		rcv := newReceiver(t, ok)
		e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: fast})
		e.f.DuplicateDeliveries(true)
		e.assign(t, e.van, e.ada, 0, nil)
		flush(t, e.f)
		got := rcv.received()
		require.Len(t, got, 2)
		require.Equal(t, got[0].body, got[1].body)
		d := e.f.Deliveries()
		require.Len(t, d, 1)
		require.Len(t, d[0].Attempts, 2)
		require.True(t, d[0].Attempts[1].Duplicate)
	})
	for _, tc := range []struct {
		name  string
		order fleetiotest.Order
		want  []int64
	}{
		{"in order", fleetiotest.InOrder, []int64{1, 2, 3}},
		{"reversed", fleetiotest.Reversed, []int64{3, 2, 1}},
	} {
		t.Run("pause and resume "+tc.name, func(t *testing.T) {
			rcv := newReceiver(t, ok)
			e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: fast})
			e.f.PauseDeliveries()
			a := e.assign(t, e.van, e.ada, 0, nil)
			_, err := e.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.ContactID = e.bob.ID })
			require.NoError(t, err)
			_, err = e.f.DeleteAssignment(a.ID)
			require.NoError(t, err)

			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, e.f.Flush(ctx), context.DeadlineExceeded, "held deliveries are pending")
			require.Empty(t, rcv.received())

			e.f.ResumeDeliveries(tc.order)
			flush(t, e.f)
			var order []int64
			for _, r := range rcv.received() {
				w, _ := decode(t, r.body)
				order = append(order, w.ID)
			}
			require.Equal(t, tc.want, order)
		})
	}
	t.Run("shuffled sends every one", func(t *testing.T) {
		rcv := newReceiver(t, ok)
		e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: fast})
		e.f.PauseDeliveries()
		for range 5 {
			e.assign(t, e.van, e.ada, 0, nil)
		}
		e.f.ResumeDeliveries(fleetiotest.Shuffled)
		flush(t, e.f)
		require.Len(t, rcv.received(), 5)
	})
	t.Run("delay", func(t *testing.T) {
		rcv := newReceiver(t, ok)
		e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: fast})
		e.f.SetDeliveryDelay(100 * time.Millisecond)
		start := time.Now()
		e.assign(t, e.van, e.ada, 0, nil)
		flush(t, e.f)
		require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
		require.Len(t, rcv.received(), 1)
	})
	t.Run("no URL records without sending", func(t *testing.T) {
		e := newEnv(t, fleetiotest.Options{WebhookSecret: secret})
		e.assign(t, e.van, e.ada, 0, nil)
		flush(t, e.f)
		d := e.f.Deliveries()
		require.Len(t, d, 1)
		require.Empty(t, d[0].Attempts)
		rcv := newReceiver(t, ok)
		e.f.SetWebhookURL(rcv.URL)
		e.assign(t, e.van, e.ada, 0, nil)
		flush(t, e.f)
		require.Len(t, rcv.received(), 1)
	})
}

func TestCloseWithPendingRetries(t *testing.T) {
	rcv := newReceiver(t, func(int64) int { return 500 })
	f := fleetiotest.New(fleetiotest.Options{APIKey: apiKey, AccountToken: account, WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: []time.Duration{time.Hour}})
	v, err := f.AddVehicle(fleetio.Vehicle{Name: "v"})
	require.NoError(t, err)
	c, err := f.AddContact(fleetio.Contact{Name: "c"})
	require.NoError(t, err)
	_, err = f.CreateAssignment(fleetio.VehicleAssignment{VehicleID: v.ID, ContactID: c.ID, StartedAt: t0})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(rcv.received()) == 1 }, 5*time.Second, 5*time.Millisecond)
	done := make(chan struct{})
	go func() { _ = f.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung with a retry pending")
	}
	flush(t, f) // a closed fake has nothing pending
}
