package fleetiotest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// The control API plays the fleet manager: each change is an assignment
// the API shows and a webhook delivery the log lists.
func TestControlHandler(t *testing.T) {
	var hooks atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hooks.Add(1) }))
	defer rcv.Close()
	e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: "s", RetryIntervals: []time.Duration{10 * time.Millisecond}})
	ctl := httptest.NewServer(e.f.ControlHandler())
	defer ctl.Close()

	call := func(method, path, key, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, ctl.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("Authorization", "Token "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
	errorOf := func(b []byte) string {
		var body struct{ Error string }
		require.NoError(t, json.Unmarshal(b, &body), "%s", b)
		return body.Error
	}

	start := t0.Format(time.RFC3339)
	status, b := call("POST", "/_fake/vehicle_assignments", apiKey,
		fmt.Sprintf(`{"vehicle_id":%d,"contact_id":%d,"started_at":%q,"ended_at":null}`, e.van.ID, e.ada.ID, start))
	require.Equal(t, http.StatusCreated, status, "%s", b)
	var a fleetio.VehicleAssignment
	require.NoError(t, json.Unmarshal(b, &a))
	require.Equal(t, e.van.ID, a.VehicleID)
	require.Equal(t, e.ada.ID, a.ContactID)
	require.True(t, a.Current)
	require.Nil(t, a.EndedAt)

	end := t0.Add(time.Hour)
	status, b = call("PATCH", fmt.Sprintf("/_fake/vehicle_assignments/%d", a.ID), apiKey, fmt.Sprintf(`{"ended_at":%q}`, end.Format(time.RFC3339)))
	require.Equal(t, http.StatusOK, status, "%s", b)
	got, ok := e.f.Assignment(a.ID)
	require.True(t, ok)
	require.NotNil(t, got.EndedAt)
	require.True(t, got.EndedAt.Equal(end))

	status, b = call("DELETE", fmt.Sprintf("/_fake/vehicle_assignments/%d", a.ID), apiKey, "")
	require.Equal(t, http.StatusOK, status, "%s", b)
	_, ok = e.f.Assignment(a.ID)
	require.False(t, ok)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.f.Flush(ctx))
	require.Equal(t, int64(3), hooks.Load())
	status, b = call("GET", "/_fake/deliveries", apiKey, "")
	require.Equal(t, http.StatusOK, status, "%s", b)
	var dl []struct {
		ID        int64           `json:"id"`
		Event     string          `json:"event"`
		Body      json.RawMessage `json:"body"`
		Attempts  []any           `json:"attempts"`
		Delivered bool            `json:"delivered"`
		GaveUp    bool            `json:"gave_up"`
	}
	require.NoError(t, json.Unmarshal(b, &dl))
	require.Len(t, dl, 3)
	for i, ev := range []string{"vehicle_assignment_created", "vehicle_assignment_updated", "vehicle_assignment_deleted"} {
		require.Equal(t, ev, dl[i].Event)
		require.True(t, dl[i].Delivered)
		require.False(t, dl[i].GaveUp)
		require.Len(t, dl[i].Attempts, 1)
		require.True(t, json.Valid(dl[i].Body))
	}

	// The webhook can be pointed elsewhere at run time; a bad URL is refused.
	status, b = call("PUT", "/_fake/webhook", apiKey, `{"url":"ftp://x"}`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, errorOf(b), `url "ftp://x"`)
	status, b = call("PUT", "/_fake/webhook", apiKey, `{"url":"`+rcv.URL+`/again"}`)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"url":"`+rcv.URL+`/again"}`, string(b))
	status, _ = call("PUT", "/_fake/webhook", apiKey, `{"url":""}`)
	require.Equal(t, http.StatusOK, status)

	// Mistakes: each a status and an {"error"} naming it.
	for _, tc := range []struct {
		name, method, path, key, body string
		status                        int
		err                           string
	}{
		{"no key", "GET", "/_fake/deliveries", "", "", http.StatusUnauthorized, "Unauthorized"},
		{"wrong key", "POST", "/_fake/vehicle_assignments", "nope", `{}`, http.StatusUnauthorized, "Unauthorized"},
		{"unknown field", "POST", "/_fake/vehicle_assignments", apiKey, `{"vehicle_id":1,"colour":"red"}`, http.StatusBadRequest, "body: "},
		{"bad ended_at", "POST", "/_fake/vehicle_assignments", apiKey, `{"ended_at":"soon"}`, http.StatusBadRequest, "ended_at: "},
		{"unknown vehicle", "POST", "/_fake/vehicle_assignments", apiKey, `{"vehicle_id":999999,"contact_id":1}`, http.StatusUnprocessableEntity, ""},
		{"patch unknown", "PATCH", "/_fake/vehicle_assignments/999999", apiKey, `{}`, http.StatusNotFound, "assignment 999999: "},
		{"patch not a number", "PATCH", "/_fake/vehicle_assignments/six", apiKey, `{}`, http.StatusNotFound, `assignment id "six": not a number`},
		{"delete unknown", "DELETE", "/_fake/vehicle_assignments/999999", apiKey, "", http.StatusNotFound, ""},
		{"webhook unknown field", "PUT", "/_fake/webhook", apiKey, `{"uri":"http://x"}`, http.StatusBadRequest, "body: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := call(tc.method, tc.path, tc.key, tc.body)
			require.Equal(t, tc.status, status, "%s", b)
			require.Contains(t, errorOf(b), tc.err)
		})
	}
}
