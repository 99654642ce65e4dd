package bookings_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// TestQueuedWhileFleetioDown: deliveries are answered and kept while
// Fleetio's API fails; they are processed once it is back, and a delivery
// stored by one bridge is processed by the next (the queue is the store's).
func TestQueuedWhileFleetioDown(t *testing.T) {
	e := newEnv(t, envOpts{})
	// Stop the worker: deliveries are only stored.
	e.cancel()
	<-e.done
	e.f.FailNext(3, http.StatusBadGateway) // one for this worker, two for the next
	a := e.assign(t, e.van, e.ada, time.Now().Add(time.Hour), time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.f.Flush(ctx))
	require.Equal(t, 1, e.store.QueueDepth())
	for _, d := range e.f.Deliveries() {
		require.True(t, d.Delivered, "answered 2xx although Fleetio is down")
	}

	// A worker while Fleetio is down: the grant is made from the
	// payload; the confirm (read-back, write-back) is retried, nothing
	// lost.
	_, err := e.b.ProcessDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, e.store.QueueDepth())
	wd, err := e.store.Delivery(e.f.Deliveries()[0].ID)
	require.NoError(t, err)
	require.Equal(t, bookings.DeliveryDone, wd.State)
	_, ok := e.grant(t, bookings.GrantID(a.ID))
	require.True(t, ok, "the grant does not wait for Fleetio")
	bk, _, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.True(t, bk.PendingConfirm)
	d, err := e.store.Delivery(bk.ConfirmID)
	require.NoError(t, err)
	require.Equal(t, bookings.DeliveryQueued, d.State)
	require.Equal(t, 1, d.Attempts)
	require.False(t, d.NextAttempt.IsZero())
	require.Contains(t, d.LastError, "502")

	// A new bridge on the same store takes the queue; Fleetio comes back.
	b2, err := bookings.New(bookings.Options{Store: e.store, Cloud: e.cloud, Notifier: e.notes, AccessBaseURL: e.srv.URL,
		NewClient: func(s bookings.Settings) (*fleetio.Client, error) {
			return fleetio.New(fleetio.Options{BaseURL: s.BaseURL, APIKey: s.APIKey, AccountToken: s.AccountToken, MaxRetries: -1})
		},
		MinRetry: 10 * time.Millisecond, MaxRetry: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	go b2.Run(ctx)
	require.Eventually(t, func() bool {
		d, err := e.store.Delivery(d.ID)
		return err == nil && d.State == bookings.DeliveryDone
	}, 10*time.Second, 5*time.Millisecond)
	got, _ := e.f.Assignment(a.ID)
	require.Len(t, field(got, fleetio.FieldAccessCode), 6, "the owed write-back done by the next bridge")
}

// BenchmarkWebhookAccept measures webhooks accepted per second: verify,
// parse, store durably (one bbolt commit each), answer.
func BenchmarkWebhookAccept(b *testing.B) {
	e := newEnv(b, envOpts{})
	e.cancel()
	<-e.done
	h := e.b.Webhook()
	payload := `{"id":77,"vehicle_id":1,"contact_id":1,"started_at":"2026-11-03T10:00:00.000-05:00","ended_at":null,"custom_fields":{}}`
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		body := delivery(int64(i+1), fleetio.EventAssignmentUpdated, payload)
		req := httptest.NewRequest(http.MethodPost, bookings.WebhookPath, stringsReader(body))
		req.Header.Set(fleetio.SignatureHeader, fleetio.Sign([]byte(secret), body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "webhooks/s")
}
