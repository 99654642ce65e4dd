package bookings_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

func delivery(id int64, event string, payload string) []byte {
	return fmt.Appendf(nil, `{"id":%d,"event":%q,"timestamp":"2026-11-03T10:15:38.741-05:00","triggered_by":null,"payload":%s}`,
		id, event, payload)
}

func TestWebhookAnswers(t *testing.T) {
	e := newEnv(t, envOpts{})
	url := e.srv.URL + bookings.WebhookPath
	assignment := `{"id":424242,"vehicle_id":99999,"contact_id":1,"started_at":"2026-11-03T10:00:00.000-05:00"}`
	signed := func(b []byte) map[string]string {
		return map[string]string{fleetio.SignatureHeader: fleetio.Sign([]byte(secret), b), "Content-Type": "application/json"}
	}
	good := delivery(900001, fleetio.EventAssignmentCreated, assignment)
	huge := delivery(900002, fleetio.EventAssignmentCreated, `{"id":1,"vehicle_id":1,"pad":"`+string(bytes.Repeat([]byte("x"), 2<<20))+`"}`)
	for _, tc := range []struct {
		name   string
		body   []byte
		hdr    map[string]string
		status int
		stored bool
	}{
		{"bad signature", good, map[string]string{fleetio.SignatureHeader: fleetio.Sign([]byte("wrong"), good)}, http.StatusUnauthorized, false},
		{"no signature", good, nil, http.StatusUnauthorized, false},
		{"oversized", huge, signed(huge), http.StatusRequestEntityTooLarge, false},
		{"malformed JSON", []byte(`{"id":5,"event":`), signed([]byte(`{"id":5,"event":`)), http.StatusBadRequest, false},
		{"no delivery id", delivery(0, "x", "{}"), signed(delivery(0, "x", "{}")), http.StatusBadRequest, false},
		{"assignment event without assignment", delivery(900003, fleetio.EventAssignmentUpdated, `{"name":"x"}`),
			signed(delivery(900003, fleetio.EventAssignmentUpdated, `{"name":"x"}`)), http.StatusBadRequest, false},
		{"unknown event", delivery(900004, "vehicle_updated", `{"id":1}`), signed(delivery(900004, "vehicle_updated", `{"id":1}`)), http.StatusOK, false},
		{"good", good, signed(good), http.StatusOK, true},
		{"duplicate", good, signed(good), http.StatusOK, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.status, post(t, url, tc.body, tc.hdr))
			var id int64
			if w, err := fleetio.ParseWebhook(tc.body); err == nil {
				id = w.ID
			}
			_, err := e.store.Delivery(id)
			if tc.stored {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, bookings.ErrNotFound)
			}
		})
	}
	// The stored one was processed: an unlinked vehicle whose assignment is
	// not in Fleetio (read back: gone) makes nothing.
	require.Eventually(t, func() bool { return e.store.QueueDepth() == 0 }, 5e9, 5e6)
	d, err := e.store.Delivery(900001)
	require.NoError(t, err)
	require.Equal(t, bookings.DeliveryDone, d.State)

	code, _ := get(t, url)
	require.Equal(t, http.StatusMethodNotAllowed, code)

	t.Run("authorization", func(t *testing.T) {
		st, err := e.store.Settings()
		require.NoError(t, err)
		st.Authorization = "Bearer fixed-value"
		require.NoError(t, e.store.SetSettings(st))
		b := delivery(900010, fleetio.EventAssignmentCreated, assignment)
		h := signed(b)
		require.Equal(t, http.StatusUnauthorized, post(t, url, b, h))
		h["Authorization"] = "Bearer fixed-value"
		require.Equal(t, http.StatusOK, post(t, url, b, h))
	})
	t.Run("not connected", func(t *testing.T) {
		require.NoError(t, e.store.ForgetSettings())
		b := delivery(900011, fleetio.EventAssignmentCreated, assignment)
		require.Equal(t, http.StatusServiceUnavailable, post(t, url, b, signed(b)))
	})
}

// FuzzWebhook posts signed bodies of any shape: the answer is 200 or 400,
// never a 500 or a panic.
func FuzzWebhook(f *testing.F) {
	f.Add(delivery(1, fleetio.EventAssignmentCreated, `{"id":2,"vehicle_id":3}`))
	f.Add([]byte(`{"id":1,"event":"vehicle_assignment_deleted","payload":{"vehicle_assignment":{"id":9}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":1e30}`))
	e := newEnv(f, envOpts{})
	url := e.srv.URL + bookings.WebhookPath
	f.Fuzz(func(t *testing.T, body []byte) {
		code := post(t, url, body, map[string]string{fleetio.SignatureHeader: fleetio.Sign([]byte(secret), body)})
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, code)
	})
}
