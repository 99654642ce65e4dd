package bridge

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// GET /v1/bookings says whether each booking's grant is live at its box,
// and a box's status reaching the service's cloud makes it so (the
// integration's hook is registered).
func TestBookingsAnswerLiveReceipt(t *testing.T) {
	b := startTest(t, Options{})
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, b.Cloud().RegisterBox("depot-1", boxKey.PublicKey().Bytes()))
	_, err = b.Cloud().PutKey("depot-1", box.Key{ID: "van-7", FobUID: "0100073400", Slot: 3})
	require.NoError(t, err)
	rev, err := b.Cloud().PutGrant("depot-1", box.Grant{ID: "fleetio-77", Kind: box.KindBooking, KeyIDs: []string{"van-7"},
		Source: bookings.GrantSource}, "48213579")
	require.NoError(t, err)
	now := time.Now().UTC().Truncate(time.Second)
	require.NoError(t, b.bookingsStore.PutBooking(bookings.Booking{AssignmentID: 77, VehicleID: 1234, BoxID: "depot-1", KeyID: "van-7",
		GrantID: "fleetio-77", From: now.Add(time.Hour), State: bookings.BookingActive,
		GrantRev: rev, GrantAt: now, BoxRev: rev - 1}, ""))

	booking := func() Booking {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, b.AdminURL()+"/v1/bookings", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.AdminToken())
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		var rows []BookingRow
		require.NoError(t, json.Unmarshal(body, &rows))
		for _, r := range rows {
			if r.Booking != nil && r.Booking.AssignmentID == 77 {
				return *r.Booking
			}
		}
		t.Fatalf("booking 77 not in %s", body)
		return Booking{}
	}
	bk := booking()
	require.True(t, bk.LiveAt.IsZero())
	require.Equal(t, rev, bk.GrantRevision)
	require.Equal(t, rev-1, bk.BoxRevision)
	require.True(t, bk.GrantAt.Equal(now))

	require.NoError(t, b.Cloud().ReceiveStatus("depot-1", wire.Status{V: wire.Version, Box: "depot-1", Online: true, Revision: rev}))
	bk = booking()
	require.False(t, bk.LiveAt.IsZero(), "live once the box says it holds the grant's revision")
	require.Equal(t, rev, bk.BoxRevision)
}
