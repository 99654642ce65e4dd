package fleetiotest_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// changeWait bounds the wait for a Changed channel; the changes here are
// made synchronously or by a delivery on loopback, so this is generous.
const changeWait = 10 * time.Second

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestChangedOnRecords(t *testing.T) {
	e := newEnv(t, fleetiotest.Options{}) // no webhook URL: no attempts in the background
	a := e.assign(t, e.van, e.ada, 0, nil)

	cases := []struct {
		name   string
		change func(t *testing.T)
	}{
		{"vehicle added", func(t *testing.T) {
			_, err := e.f.AddVehicle(fleetio.Vehicle{Name: "Van 9"})
			require.NoError(t, err)
		}},
		{"contact added", func(t *testing.T) {
			_, err := e.f.AddContact(fleetio.Contact{FirstName: "Cy", Email: "cy@example.com"})
			require.NoError(t, err)
		}},
		{"user set", func(t *testing.T) {
			_, err := e.f.AddUser(fleetio.User{Email: "admin@example.com"})
			require.NoError(t, err)
		}},
		{"custom field defined", func(t *testing.T) { e.f.DefineCustomField(fleetio.FieldAccessCode, false) }},
		{"assignment created", func(t *testing.T) { e.assign(t, e.truck, e.bob, time.Hour, nil) }},
		{"assignment updated", func(t *testing.T) {
			_, err := e.f.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) { a.ContactID = e.bob.ID })
			require.NoError(t, err)
		}},
		{"custom fields patched", func(t *testing.T) {
			resp, b := e.do(t, http.MethodPatch, fmt.Sprintf("/v1/vehicle_assignments/%d", a.ID),
				`{"custom_fields":{"`+fleetio.FieldAccessCode+`":"483920"}}`, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
		}},
		{"assignment deleted", func(t *testing.T) {
			_, err := e.f.DeleteAssignment(a.ID)
			require.NoError(t, err)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := e.f.Changed()
			require.True(t, ch == e.f.Changed(), "callers waiting for the same change share a channel")
			e.get(t, "/v1/vehicles", http.StatusOK)
			require.False(t, isClosed(ch), "a read is not a change")
			tc.change(t)
			require.True(t, isClosed(ch), "closed by the change itself, before the call returns")
			require.False(t, isClosed(e.f.Changed()), "a fresh call waits for the next change")
		})
	}

	t.Run("refused change", func(t *testing.T) {
		ch := e.f.Changed()
		_, err := e.f.UpdateAssignment(a.ID+1000, func(*fleetio.VehicleAssignment) {})
		require.ErrorIs(t, err, fleetiotest.ErrNotFound)
		require.False(t, isClosed(ch), "nothing changed")
	})
}

// TestChangedOnDeliveries: the delivery log changes when an attempt is made
// and when a delivery is given up, apart from the record changes that queue
// the deliveries.
func TestChangedOnDeliveries(t *testing.T) {
	gate := make(chan struct{})
	in := make(chan struct{}, 1)
	statuses := []int{http.StatusInternalServerError, http.StatusOK, http.StatusServiceUnavailable, http.StatusBadGateway}
	recv := newReceiver(t, func(n int64) int {
		in <- struct{}{}
		<-gate
		return statuses[n]
	})
	e := newEnv(t, fleetiotest.Options{
		WebhookURL: recv.URL, WebhookSecret: secret,
		RetryIntervals: []time.Duration{time.Millisecond},
	})

	// step lets the receiver answer the attempt in flight and waits for the
	// change that the fake's record of it makes.
	step := func(t *testing.T) []fleetiotest.Delivery {
		t.Helper()
		select {
		case <-in:
		case <-time.After(changeWait):
			t.Fatal("no delivery attempt arrived")
		}
		ch := e.f.Changed()
		gate <- struct{}{}
		select {
		case <-ch:
		case <-time.After(changeWait):
			t.Fatal("Changed was not closed by the attempt")
		}
		return e.f.Deliveries()
	}

	a := e.assign(t, e.van, e.ada, 0, nil) // attempt 1 fails, attempt 2 delivers
	got := step(t)
	require.Len(t, got, 1)
	require.Len(t, got[0].Attempts, 1)
	require.Equal(t, http.StatusInternalServerError, got[0].Attempts[0].Status)
	got = step(t)
	require.Len(t, got[0].Attempts, 2)
	require.True(t, got[0].Delivered)

	_, err := e.f.DeleteAssignment(a.ID) // attempt 1 and its one retry fail: given up
	require.NoError(t, err)
	got = step(t)
	require.Len(t, got, 2)
	require.False(t, got[1].GaveUp)
	got = step(t)
	require.True(t, got[1].GaveUp, "the one retry failed too")
	flush(t, e.f)
}
