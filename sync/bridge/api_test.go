package bridge

import (
	"crypto/ecdh"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
)

// No admin answer carries a secret: not a booking's sealed PIN, not a
// grant's code, not Fleetio's API key, account token or webhook secret,
// not a box's password. The stores hold all of them; the answers are the
// API's own types (api.go).
func TestAdminAnswersCarryNoSecrets(t *testing.T) {
	b := startTest(t, Options{})
	const (
		code      = "48213579"
		boxPW     = "depot-1-mqtt-secret"
		apiKey    = "fleetio-api-key-secret"
		acctToken = "fleetio-account-token-secret"
		hookKey   = "fleetio-webhook-secret"
		authz     = "Bearer fleetio-authorization-secret"
	)
	sealed := []byte("sealed-pin-bytes-secret")

	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, b.Cloud().RegisterBox("depot-1", boxKey.PublicKey().Bytes()))
	require.NoError(t, b.accounts.SetPassword("depot-1", boxPW))
	_, err = b.Cloud().PutKey("depot-1", box.Key{ID: "van-7", FobUID: "0100073400", Slot: 3})
	require.NoError(t, err)
	for _, g := range []string{"booking-1", "booking-2"} {
		_, err = b.Cloud().PutGrant("depot-1", box.Grant{ID: g, Kind: box.KindBooking, KeyIDs: []string{"van-7"},
			Source: bookings.GrantSource}, code[:6]+g[len(g)-1:]+"9")
		require.NoError(t, err)
	}
	st := b.bookingsStore
	// A Fleetio that knows no assignment: disconnect's best-effort clearing
	// of Fleetio's fields gets its answer (404, not retried) at once.
	fleet := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(fleet.Close)
	require.NoError(t, st.SetSettings(bookings.Settings{APIKey: apiKey, AccountToken: acctToken, WebhookSecret: hookKey,
		Authorization: authz, BaseURL: fleet.URL}))
	require.NoError(t, st.PutLink(bookings.Link{VehicleID: 1234, BoxID: "depot-1", KeyID: "van-7", Mode: bookings.ModePrompt}))
	now := time.Now()
	for i, from := range []time.Time{now.Add(-time.Hour), now.Add(time.Hour)} { // in progress (kept), not started (revoked)
		require.NoError(t, st.PutBooking(bookings.Booking{AssignmentID: int64(77 + i), VehicleID: 1234, BoxID: "depot-1", KeyID: "van-7",
			GrantID: []string{"booking-1", "booking-2"}[i], From: from, Until: now.Add(2 * time.Hour), State: bookings.BookingActive,
			SealedPIN: sealed, PendingWriteBack: true}, "access-token-secret"))
	}
	require.NoError(t, st.PutReservation(bookings.Reservation{AssignmentID: 90, VehicleID: 1234, BoxID: "depot-1", KeyID: "van-7", From: now}))

	call := func(method, path string) string {
		t.Helper()
		req, err := http.NewRequest(method, b.AdminURL()+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.AdminToken())
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, path, body)
		return string(body)
	}
	answers := map[string]string{}
	for _, p := range []string{"/v1/signing-key", "/v1/boxes", "/v1/boxes/depot-1/records", "/v1/boxes/depot-1/events",
		"/v1/bookings", "/v1/fleetio/status", "/v1/fleetio/reservations", "/v1/fleetio/drivers"} {
		answers["GET "+p] = call(http.MethodGet, p)
	}
	// The checks below mean something only if the bookings are there.
	require.Contains(t, answers["GET /v1/bookings"], `"assignment_id":77`)
	require.Contains(t, answers["GET /v1/fleetio/reservations"], `"assignment_id":90`)
	answers["POST /v1/fleetio/disconnect"] = call(http.MethodPost, "/v1/fleetio/disconnect")
	require.Contains(t, answers["POST /v1/fleetio/disconnect"], `"assignment_id":78`)

	for what, body := range answers {
		for _, secret := range []string{"sealed", "c2VhbGVk" /* base64 of "sealed" */, code[:6], boxPW, apiKey, acctToken,
			hookKey, "fleetio-authorization-secret", "access-token-secret", "password_hash", b.AdminToken()} {
			require.NotContains(t, body, secret, what)
		}
	}
}
