package fleetiotest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// TestWithClient runs sync/fleetio's client against the fake: the two were
// written apart from fleetio-facts.md, so agreement here is a real check.
func TestWithClient(t *testing.T) {
	var bodies [][]byte
	var sigs []string
	rcv := newReceiver(t, ok)
	e := newEnv(t, fleetiotest.Options{WebhookURL: rcv.URL, WebhookSecret: secret, RetryIntervals: fast})
	for i := range 120 {
		e.assign(t, e.van, e.ada, time.Duration(i)*time.Minute, nil)
	}
	last := e.assign(t, e.truck, e.bob, 0, nil)
	e.f.SetRetryAfter(0)
	e.f.FailNext(1, http.StatusTooManyRequests)
	e.f.FailNext(1, http.StatusBadGateway)

	c, err := fleetio.New(fleetio.Options{BaseURL: e.api, APIKey: apiKey, AccountToken: account})
	require.NoError(t, err)
	ctx := context.Background()
	me, err := c.Me(ctx)
	require.NoError(t, err)
	require.Equal(t, "fleet.manager@example.com", me.Email)

	all, err := c.ListVehicleAssignments(ctx, fleetio.AssignmentFilter{VehicleID: e.van.ID})
	require.NoError(t, err)
	require.Len(t, all, 120)
	since, err := c.ListVehicleAssignments(ctx, fleetio.AssignmentFilter{UpdatedSince: last.UpdatedAt})
	require.NoError(t, err)
	require.Len(t, since, 1)
	got, err := c.FindVehicleAssignment(ctx, e.truck.ID, last.ID)
	require.NoError(t, err)
	require.Equal(t, "Bob Smith", got.ContactFullName)
	ct, err := c.FindContactByEmail(ctx, "bob@example.com")
	require.NoError(t, err)
	require.Equal(t, e.bob.ID, ct.ID)

	a, err := c.PatchAssignmentCustomFields(ctx, last.ID, map[string]any{fleetio.FieldAccessCode: "483920"})
	require.NoError(t, err)
	require.Equal(t, "483920", a.CustomFields[fleetio.FieldAccessCode])

	flush(t, e.f)
	for _, r := range rcv.received() {
		bodies = append(bodies, r.body)
		sigs = append(sigs, r.hdr.Get(fleetio.SignatureHeader))
	}
	require.Len(t, bodies, 122)
	for i, b := range bodies {
		require.NoError(t, fleetio.VerifyWebhook([]byte(secret), b, sigs[i]))
		w, err := fleetio.ParseWebhook(b)
		require.NoError(t, err)
		_, err = fleetio.ParseAssignment(w.Payload)
		require.NoError(t, err)
	}
	require.Error(t, fleetio.VerifyWebhook([]byte("wrong"), bodies[0], sigs[0]))
}
