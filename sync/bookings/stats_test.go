package bookings_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

func TestStatsCounted(t *testing.T) {
	e := newEnv(t, envOpts{})
	url := e.srv.URL + bookings.WebhookPath
	signed := func(b []byte) map[string]string {
		return map[string]string{fleetio.SignatureHeader: fleetio.Sign([]byte(secret), b)}
	}
	bad := delivery(800001, fleetio.EventAssignmentCreated, `{"id":1,"vehicle_id":1}`)
	require.Equal(t, http.StatusUnauthorized, post(t, url, bad, nil))
	ign := delivery(800002, "vehicle_updated", `{"id":1}`)
	require.Equal(t, http.StatusOK, post(t, url, ign, signed(ign)))

	e.f.FailNext(1, http.StatusBadGateway)
	from := time.Now().Add(time.Hour)
	a := e.assign(t, e.van, e.ada, from, from.Add(time.Hour))
	e.settle(t)
	_, err := e.f.DeleteAssignment(a.ID)
	require.NoError(t, err)
	e.settle(t)
	e.f.DuplicateDeliveries(true)
	e.assign(t, e.truck, e.ada, from, time.Time{}) // unlinked: recorded only
	e.settle(t)

	s := e.b.Stats()
	require.Equal(t, uint64(1), s.WebhooksRejected)
	require.Equal(t, uint64(1), s.WebhooksIgnored)
	require.GreaterOrEqual(t, s.WebhooksAccepted, uint64(4), "created, our PATCH's echo, deleted, created")
	require.GreaterOrEqual(t, s.WebhooksDuplicate, uint64(1))
	require.Equal(t, uint64(1), s.GrantsPushed)
	require.Equal(t, uint64(1), s.GrantsRevoked)
	require.Equal(t, uint64(1), s.FleetioErrors, "the 502")
	require.Equal(t, uint64(2), s.NotificationsSent, "created, cancelled")
	require.Zero(t, s.NotificationsFailed)
	require.Zero(t, s.QueueDepth)
}
