package simweb

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// send is one raw request with the headers given; it returns the status and
// the answer's error text.
func send(t *testing.T, hs *httptest.Server, method, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := hs.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var e errorBody
	_ = json.Unmarshal(b, &e)
	return res.StatusCode, e.Error
}

// TestCrossSite: another site's page cannot drive the simulator, whether
// the browser says so in Sec-Fetch-Site or only in Origin; a form's body
// (text/plain, urlencoded) is refused even without those headers.
func TestCrossSite(t *testing.T) {
	d, _, _, hs := newTestServer(t)
	const keypad = "/api/boxes/b1/keypad"
	for name, h := range map[string]map[string]string{
		"sec-fetch-site": {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
		"origin":         {"Content-Type": "application/json", "Origin": "https://evil.example"},
		"form origin":    {"Content-Type": "text/plain", "Origin": "https://evil.example"},
	} {
		t.Run(name, func(t *testing.T) {
			status, msg := send(t, hs, "POST", keypad, `{"keys":"1#"}`, h)
			require.Equal(t, http.StatusForbidden, status, msg)
			require.Contains(t, msg, "cross-origin")
		})
	}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		t.Run("content-type "+ct, func(t *testing.T) {
			status, msg := send(t, hs, "POST", keypad, `{"keys":"1#"}`, map[string]string{"Content-Type": ct})
			require.Equal(t, http.StatusUnsupportedMediaType, status, msg)
			require.Contains(t, msg, "want application/json")
		})
	}
	// A bodiless form POST (an empty text/plain) is refused too.
	status, _ := send(t, hs, "POST", "/api/boxes/b1/slots/3/take", "", map[string]string{"Content-Type": "text/plain"})
	require.Equal(t, http.StatusUnsupportedMediaType, status)
	require.Empty(t, d.Calls(), "nothing refused reached the depot")

	// The page's own requests pass: same origin, JSON; reads from anywhere.
	status, msg := send(t, hs, "POST", keypad, `{"keys":"1#"}`, map[string]string{
		"Content-Type": "application/json; charset=utf-8", "Sec-Fetch-Site": "same-origin", "Origin": hs.URL})
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, "press b1 1#", lastCall(d))
	status, _ = send(t, hs, "DELETE", "/api/fleetio/assignments/12345", "", nil)
	require.Equal(t, http.StatusNotFound, status, "a DELETE without a body needs no Content-Type")
	status, _ = send(t, hs, "GET", "/api/state", "", map[string]string{"Sec-Fetch-Site": "cross-site"})
	require.Equal(t, http.StatusOK, status)
}

// TestHostCheck: a name rebound to 127.0.0.1 (DNS rebinding) is refused,
// the loopback names are answered, and AnyHost answers every name.
func TestHostCheck(t *testing.T) {
	_, _, _, hs := newTestServer(t)
	for _, host := range []string{"evil.example", "evil.example:8400", "127.0.0.1.evil.example", "10.0.0.2:8400"} {
		status, msg := send(t, hs, "GET", "/api/state", "", map[string]string{"Host": host})
		require.Equal(t, http.StatusForbidden, status, host)
		require.Contains(t, msg, "answers loopback addresses only (127.0.0.1, localhost, [::1]", host)
	}
	for _, host := range []string{"127.0.0.1", "127.0.0.1:8400", "localhost:8400", "LOCALHOST", "[::1]:8400", "[::1]", "127.0.0.2:8400"} {
		status, msg := send(t, hs, "GET", "/api/state", "", map[string]string{"Host": host})
		require.Equal(t, http.StatusOK, status, "%s: %s", host, msg)
	}

	d, _ := newFakeDepot(t)
	remote := httptest.NewServer(New(d, Options{AnyHost: true}))
	t.Cleanup(remote.Close)
	status, msg := send(t, remote, "GET", "/api/state", "", map[string]string{"Host": "simulator.lan:8400"})
	require.Equal(t, http.StatusOK, status, msg)
	// Cross-site writes stay refused with any host.
	status, _ = send(t, remote, "POST", "/api/broker/restart", "{}", map[string]string{"Host": "simulator.lan:8400",
		"Content-Type": "application/json", "Origin": "https://evil.example"})
	require.Equal(t, http.StatusForbidden, status)
	require.Empty(t, d.Calls())
}

// TestStateBounds: only the newest messages, assignments and bookings go
// out, and the State says how many older ones were left out.
func TestStateBounds(t *testing.T) {
	d, ids, _, hs := newTestServer(t)
	const extra = 7
	var want struct{ firstTo, newestGrant string }
	d.change(func(d *fakeDepot) {
		for i := range MaxInboxShown + extra - 1 { // the fake has one already
			d.inbox = append(d.inbox, depot.Message{At: fixedNow, Channel: "sms", To: fmt.Sprintf("+4470%04d", i)})
		}
		want.firstTo = d.inbox[extra].To
		// Bookings out of order: the newest (latest From) are kept, in the
		// bridge's order.
		d.rows = nil
		for i := range MaxBookingsShown + extra {
			from := fixedNow.Add(time.Duration((i*37)%(MaxBookingsShown+extra)) * time.Minute)
			d.rows = append(d.rows, bridge.BookingRow{BoxID: "b1", GrantID: fmt.Sprintf("g%d", i), From: from})
		}
	})
	for range MaxAssignmentsShown + extra {
		_, err := d.fleet.CreateAssignment(fleetio.VehicleAssignment{VehicleID: ids.van, ContactID: ids.ada, StartedAt: fixedNow})
		require.NoError(t, err)
	}
	all := d.fleet.Assignments()

	status, st := getState(t, hs, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, Omitted{Inbox: extra, Assignments: extra, Bookings: extra}, st.Omitted)
	require.Len(t, st.Inbox, MaxInboxShown)
	require.Equal(t, want.firstTo, st.Inbox[0].To, "the oldest left out")
	require.Len(t, st.Fleetio.Assignments, MaxAssignmentsShown)
	require.Equal(t, all[extra].ID, st.Fleetio.Assignments[0].ID)
	require.Equal(t, all[len(all)-1].ID, st.Fleetio.Assignments[MaxAssignmentsShown-1].ID)
	require.Len(t, st.Bookings, MaxBookingsShown)
	cutoff := fixedNow.Add(extra * time.Minute)
	prev := -1
	for _, r := range st.Bookings {
		require.False(t, r.From.Before(cutoff), "%s from %v: older than the ones left out", r.GrantID, r.From)
		var i int
		_, err := fmt.Sscanf(r.GrantID, "g%d", &i)
		require.NoError(t, err)
		require.Greater(t, i, prev, "the bridge's order kept")
		prev = i
	}

	// Under the bounds nothing is omitted.
	d2, _ := newFakeDepot(t)
	small := httptest.NewServer(New(d2, Options{}))
	t.Cleanup(small.Close)
	_, st = getState(t, small, "")
	require.Equal(t, Omitted{}, st.Omitted)
}

// TestBrokerUp: the State carries whether the broker is up.
func TestBrokerUp(t *testing.T) {
	d, _, _, hs := newTestServer(t)
	_, st := getState(t, hs, "")
	require.True(t, st.BrokerUp)
	d.change(func(d *fakeDepot) { d.brokerDown = true })
	_, st = getState(t, hs, "")
	require.False(t, st.BrokerUp)
}
