package simweb

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// fixedNow is the simulator's "now" in these tests.
var fixedNow = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func newTestServer(t *testing.T) (*fakeDepot, seedIDs, *Server, *httptest.Server) {
	t.Helper()
	d, ids := newFakeDepot(t)
	s := New(d, Options{})
	s.now = func() time.Time { return fixedNow }
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		_ = s.Close()
		hs.Close()
	})
	return d, ids, s, hs
}

// do sends body (a string, "" for none) and returns the status and the
// decoded JSON answer.
func do(t *testing.T, hs *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, hs.URL+path, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := hs.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out), "answer %q", b)
	return res.StatusCode, out
}

func lastCall(d *fakeDepot) string {
	c := d.Calls()
	if len(c) == 0 {
		return ""
	}
	return c[len(c)-1]
}

func TestPage(t *testing.T) {
	_, _, _, hs := newTestServer(t)
	for path, want := range map[string]string{
		"/":                 `id="keypad"`,
		"/static/app.js":    "EventSource",
		"/static/style.css": "grid-template-areas",
	} {
		res, err := hs.Client().Get(hs.URL + path)
		require.NoError(t, err)
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, path)
		require.Contains(t, string(b), want, path)
	}
	// The page never puts data into HTML: no innerHTML in the script.
	res, err := hs.Client().Get(hs.URL + "/static/app.js")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.NotContains(t, string(b), ".innerHTML")
	require.NotContains(t, string(b), "insertAdjacentHTML")

	status, body := do(t, hs, "GET", "/api/nope", "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body["error"], "no such route")
}

func getState(t *testing.T, hs *httptest.Server, query string) (int, State) {
	t.Helper()
	res, err := hs.Client().Get(hs.URL + "/api/state" + query)
	require.NoError(t, err)
	defer res.Body.Close()
	var st State
	if res.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(res.Body).Decode(&st))
	}
	return res.StatusCode, st
}

func TestState(t *testing.T) {
	d, ids, _, hs := newTestServer(t)
	_, err := d.fleet.CreateAssignment(fleetio.VehicleAssignment{VehicleID: ids.van, ContactID: ids.ada, StartedAt: fixedNow})
	require.NoError(t, err)

	status, st := getState(t, hs, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "b1", st.Box, "no ?box: the first")
	require.Len(t, st.Boxes, 2)
	require.Len(t, st.Events, 3)
	require.Len(t, st.Inbox, 1)
	require.Len(t, st.Fleetio.Vehicles, 2)
	require.NotNil(t, st.Fleetio.Vehicles[0].Link, "the bridge's link merged into Fleetio's vehicle")
	require.Equal(t, "k3", st.Fleetio.Vehicles[0].Link.KeyID)
	require.Equal(t, "Van 7", st.Fleetio.Vehicles[0].Name)
	require.Nil(t, st.Fleetio.Vehicles[1].Link)
	require.Len(t, st.Fleetio.Contacts, 2)
	require.Len(t, st.Fleetio.Assignments, 1)
	require.Contains(t, st.Fleetio.Assignments[0].CustomFields, fleetio.FieldAccessCode, "custom fields are shown, even unset")
	require.Len(t, st.Reservations, 1)
	require.Len(t, st.Bookings, 1)
	require.Empty(t, st.Errors)

	status, st = getState(t, hs, "?box=b2")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "b2", st.Box)
	require.NotNil(t, st.Events)
	require.Empty(t, st.Events)

	status, body := do(t, hs, "GET", "/api/state?box=nope", "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body["error"], "nope")

	// A part that fails says so; the rest is there.
	d.change(func(d *fakeDepot) {
		d.fail["vehicles"] = errors.New("bridge store closed")
		d.fail["bookings"] = errors.New("bridge store closed")
	})
	status, st = getState(t, hs, "")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, st.Errors, 2)
	require.Contains(t, st.Errors[0], "vehicle links")
	require.Contains(t, st.Errors[1], "bookings")
	require.Len(t, st.Fleetio.Vehicles, 2, "Fleetio's vehicles without their links")
	require.Nil(t, st.Fleetio.Vehicles[0].Link)
	require.NotNil(t, st.Bookings)
	require.Empty(t, st.Bookings)
	require.Len(t, st.Reservations, 1)

	// JSON lists are [] when empty, never null.
	res, err := hs.Client().Get(hs.URL + "/api/state?box=b2")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Contains(t, string(b), `"events":[]`)
	require.Contains(t, string(b), `"bookings":[]`)
}

func TestBoxActions(t *testing.T) {
	d, _, _, hs := newTestServer(t)
	for _, tc := range []struct {
		method, path, body, call string
	}{
		{"POST", "/api/boxes/b1/keypad", `{"keys": "123456#"}`, "press b1 123456#"},
		{"POST", "/api/boxes/b1/slots/3/take", `{}`, "take b1 3"},
		{"POST", "/api/boxes/b1/slots/3/take", ``, "take b1 3"},
		{"POST", "/api/boxes/b1/slots/12/put-back", `{}`, "put-back b1 12"},
		{"PUT", "/api/boxes/b1/slots/2/fault", `{"jammed": true}`, "fault b1 2 jammed=true sensor_dead=-"},
		{"PUT", "/api/boxes/b1/slots/2/fault", `{"sensor_dead": true, "jammed": false}`, "fault b1 2 jammed=false sensor_dead=true"},
		{"POST", "/api/boxes/b1/reader", `{"fob": "01 00 07 34 e0"}`, "fob b1 01000734E0"},
		{"POST", "/api/boxes/b1/reader", `{"raw": "AgMx"}`, `raw b1 "\x02\x031"`},
		{"PUT", "/api/boxes/b1/clock", `{"at": "1970-01-01T00:00:00Z"}`, "clock b1 1970-01-01T00:00:00Z false"},
		{"PUT", "/api/boxes/b1/clock", `{"offset": "-2h"}`, "clock b1 2026-12-02T08:00:00Z false"},
		{"PUT", "/api/boxes/b1/clock", `{"offset": "2h"}`, "clock b1 2026-12-02T12:00:00Z false"},
		{"PUT", "/api/boxes/b1/clock", `{"reset": true}`, "clock b1 0001-01-01T00:00:00Z true"},
		{"PUT", "/api/boxes/b1/network", `{"cut": true}`, "network b1 true reset"},
		{"PUT", "/api/boxes/b1/network", `{"cut": false}`, "network b1 false"},
		{"PUT", "/api/boxes/b1/network", `{"cut": true, "mode": "blackhole"}`, "network b1 true blackhole"},
		{"PUT", "/api/boxes/b2/power", `{"on": true}`, "power b2 true"},
		{"PUT", "/api/boxes/b1/power", `{"on": false}`, "power b1 false"},
		{"POST", "/api/boxes/b1/forged-grant", `{}`, "forge b1"},
		{"POST", "/api/broker/restart", `{}`, "broker"},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			status, body := do(t, hs, tc.method, tc.path, tc.body)
			require.Equal(t, http.StatusOK, status, body)
			require.Equal(t, true, body["ok"])
			require.Equal(t, tc.call, lastCall(d))
		})
	}

	t.Run("garbage", func(t *testing.T) {
		status, body := do(t, hs, "POST", "/api/boxes/b1/reader", `{"garbage": true}`)
		require.Equal(t, http.StatusOK, status, body)
		call := lastCall(d)
		require.True(t, strings.HasPrefix(call, "raw b1 "), call)
		require.Contains(t, call, `\x0201000734E0D3\x03`, "a frame with a bad checksum")
		require.True(t, strings.HasSuffix(call, `\x02010007"`), "half a frame at the end: %s", call)
	})
}

// TestSelftest: the page's self-test answers the depot's run (the rows,
// the exit status); an unknown or stopped box is said as for any action.
func TestSelftest(t *testing.T) {
	d, _, _, hs := newTestServer(t)
	status, body := do(t, hs, "POST", "/api/boxes/b1/selftest", `{}`)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "selftest b1", lastCall(d))
	require.EqualValues(t, 1, body["exit_code"])
	rows := body["report"].(map[string]any)["rows"].([]any)
	require.Len(t, rows, 1)
	require.Equal(t, "slot 3 lock", rows[0].(map[string]any)["name"])
	require.Equal(t, "fail", rows[0].(map[string]any)["result"])
	status, body = do(t, hs, "POST", "/api/boxes/nope/selftest", `{}`)
	require.Equal(t, http.StatusNotFound, status, body)
}

func TestBadRequests(t *testing.T) {
	d, _, _, hs := newTestServer(t)
	for _, tc := range []struct {
		method, path, body, reason string
	}{
		{"POST", "/api/boxes/b1/keypad", `{"keys": ""}`, "keys: empty"},
		{"POST", "/api/boxes/b1/keypad", `{}`, "keys: empty"},
		{"POST", "/api/boxes/b1/keypad", `{"keys": "12a#"}`, `"a" at 2 is not on the keypad`},
		{"POST", "/api/boxes/b1/keypad", `{"keys": "` + strings.Repeat("1", 65) + `"}`, "at most 64"},
		{"POST", "/api/boxes/b1/keypad", `{"keys": 12}`, "body:"},
		{"POST", "/api/boxes/b1/keypad", `{"keys": "1", "hold": 5}`, `unknown field "hold"`},
		{"POST", "/api/boxes/b1/keypad", `{"keys": "1"} {"keys": "2"}`, "more than one JSON value"},
		{"POST", "/api/boxes/b1/keypad", `{"keys": "1"`, "body:"},
		{"POST", "/api/boxes/b1/keypad", `{"keys": "` + strings.Repeat("1", MaxBody) + `"}`, "larger than"},
		{"POST", "/api/boxes/b1/slots/x/take", `{}`, `slot "x"`},
		{"POST", "/api/boxes/b1/slots/0/take", `{}`, `slot "0"`},
		{"POST", "/api/boxes/b1/slots/-1/put-back", `{}`, `slot "-1"`},
		{"POST", "/api/boxes/b1/slots/1/take", `{"now": true}`, "unknown field"},
		{"PUT", "/api/boxes/b1/slots/1/fault", `{}`, "give jammed or sensor_dead"},
		{"PUT", "/api/boxes/b1/slots/1/fault", `{"jammed": "yes"}`, "body:"},
		{"POST", "/api/boxes/b1/reader", `{}`, "exactly one of fob"},
		{"POST", "/api/boxes/b1/reader", `{"fob": "01000734E0", "garbage": true}`, "exactly one of fob"},
		{"POST", "/api/boxes/b1/reader", `{"fob": "xyz"}`, "not an EM4100 UID"},
		{"POST", "/api/boxes/b1/reader", `{"raw": "!!"}`, "body:"},
		{"POST", "/api/boxes/b1/reader", `{"raw": ""}`, "raw: 0 bytes"},
		{"PUT", "/api/boxes/b1/clock", `{}`, "exactly one of at"},
		{"PUT", "/api/boxes/b1/clock", `{"offset": "2h", "reset": true}`, "exactly one of at"},
		{"PUT", "/api/boxes/b1/clock", `{"offset": "2 hours"}`, `offset "2 hours"`},
		{"PUT", "/api/boxes/b1/clock", `{"at": "yesterday"}`, "body:"},
		{"PUT", "/api/boxes/b1/network", `{}`, "give cut"},
		{"PUT", "/api/boxes/b1/network", `{"cut": true, "mode": "unplugged"}`, "unplugged"},
		{"PUT", "/api/boxes/b1/network", `{"cut": false, "mode": "reset"}`, "not a restore"},
		{"PUT", "/api/boxes/b1/power", `{"on": null}`, "give on"},
		{"POST", "/api/broker/restart", `[]`, "body:"},
		{"POST", "/api/fleetio/assignments", `{"vehicle_id": 1}`, "give vehicle_id and contact_id"},
		{"POST", "/api/fleetio/assignments", `{"vehicle_id": 1, "contact_id": 3, "started_at": "2026-12-02T10:00:00Z", "ended_at": "2026-12-02T09:00:00Z"}`, "is before started_at"},
		{"POST", "/api/fleetio/assignments", `{"vehicle_id": 1, "contact_id": 3, "ended_at": "soon"}`, "ended_at:"},
		{"PATCH", "/api/fleetio/assignments/x", `{"contact_id": 3}`, `id "x"`},
		{"PATCH", "/api/fleetio/assignments/1", `{}`, "give contact_id, started_at or ended_at"},
		{"PATCH", "/api/fleetio/assignments/1", `{"vehicle_id": 2}`, "unknown field"},
		{"POST", "/api/fleetio/assignments/0/end", `{}`, `id "0"`},
		{"DELETE", "/api/fleetio/assignments/abc", ``, `id "abc"`},
		{"POST", "/api/reservations/x/book", `{}`, `assignment "x"`},
		{"POST", "/api/reservations/99/book", `{"contact": "pigeon"}`, `contact "pigeon"`},
		{"POST", "/api/reservations/99/book", `{"from": "2026-12-02T10:00:00Z", "until": "2026-12-02T09:00:00Z"}`, "until is before from"},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.body[:min(len(tc.body), 60)], func(t *testing.T) {
			before := len(d.Calls())
			status, body := do(t, hs, tc.method, tc.path, tc.body)
			require.Equal(t, http.StatusBadRequest, status, body)
			require.Contains(t, body["error"], tc.reason)
			require.Len(t, d.Calls(), before, "nothing reached the depot")
		})
	}
}

func TestErrorStatus(t *testing.T) {
	d, _, _, hs := newTestServer(t)
	status, body := do(t, hs, "POST", "/api/boxes/nope/keypad", `{"keys": "1"}`)
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body["error"], "no such box")

	for _, tc := range []struct {
		err    error
		status int
	}{
		{fmt.Errorf("taking: %w", depot.ErrBoxDown), http.StatusConflict},
		{fmt.Errorf("slot 13 of 12: %w", depot.ErrInvalid), http.StatusBadRequest},
		{fmt.Errorf("taking: %w", &boxsocket.Error{Status: http.StatusConflict, Message: "slot 3 is latched"}), http.StatusConflict},
		{fmt.Errorf("taking: %w", &boxsocket.Error{Status: http.StatusServiceUnavailable, Message: "busy"}), http.StatusServiceUnavailable},
		{errors.New("pty closed"), http.StatusInternalServerError},
	} {
		d.change(func(d *fakeDepot) { d.fail["take"] = tc.err })
		status, body := do(t, hs, "POST", "/api/boxes/b1/slots/3/take", `{}`)
		require.Equal(t, tc.status, status, tc.err)
		require.Equal(t, tc.err.Error(), body["error"])
	}
}

func TestFleetioActions(t *testing.T) {
	d, ids, _, hs := newTestServer(t)

	// Create with the default window: now, now + 8 h.
	status, a := do(t, hs, "POST", "/api/fleetio/assignments", fmt.Sprintf(`{"vehicle_id": %d, "contact_id": %d}`, ids.van, ids.ada))
	require.Equal(t, http.StatusOK, status, a)
	id := int64(a["id"].(float64))
	got, ok := d.fleet.Assignment(id)
	require.True(t, ok)
	require.True(t, got.StartedAt.Equal(fixedNow))
	require.NotNil(t, got.EndedAt)
	require.True(t, got.EndedAt.Equal(fixedNow.Add(DefaultAssignmentLength)))

	// Create with a window, and open-ended.
	status, a = do(t, hs, "POST", "/api/fleetio/assignments", fmt.Sprintf(`{"vehicle_id": %d, "contact_id": %d, "started_at": "2026-12-03T08:00:00Z", "ended_at": null}`, ids.car, ids.bob))
	require.Equal(t, http.StatusOK, status, a)
	open := int64(a["id"].(float64))
	got, _ = d.fleet.Assignment(open)
	require.Nil(t, got.EndedAt)
	require.True(t, got.Future)

	status, body := do(t, hs, "POST", "/api/fleetio/assignments", fmt.Sprintf(`{"vehicle_id": 999, "contact_id": %d}`, ids.ada))
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body["error"], "vehicle 999")

	// Change the driver, then the window; null ends it never.
	status, body = do(t, hs, "PATCH", fmt.Sprintf("/api/fleetio/assignments/%d", id), fmt.Sprintf(`{"contact_id": %d}`, ids.bob))
	require.Equal(t, http.StatusOK, status, body)
	got, _ = d.fleet.Assignment(id)
	require.Equal(t, ids.bob, got.ContactID)
	require.NotNil(t, got.EndedAt, "the window is left as it was")
	status, body = do(t, hs, "PATCH", fmt.Sprintf("/api/fleetio/assignments/%d", id), `{"ended_at": null}`)
	require.Equal(t, http.StatusOK, status, body)
	got, _ = d.fleet.Assignment(id)
	require.Nil(t, got.EndedAt)
	status, body = do(t, hs, "PATCH", fmt.Sprintf("/api/fleetio/assignments/%d", id), `{"started_at": "2026-12-02T11:00:00Z", "ended_at": "2026-12-02T15:00:00Z"}`)
	require.Equal(t, http.StatusOK, status, body)
	got, _ = d.fleet.Assignment(id)
	require.True(t, got.StartedAt.Equal(fixedNow.Add(time.Hour)))
	require.True(t, got.EndedAt.Equal(fixedNow.Add(5*time.Hour)))
	status, body = do(t, hs, "PATCH", fmt.Sprintf("/api/fleetio/assignments/%d", id), `{"ended_at": "2026-12-02T10:30:00Z"}`)
	require.Equal(t, http.StatusBadRequest, status, "before the kept start")
	require.Contains(t, body["error"], "before started_at")
	status, _ = do(t, hs, "PATCH", fmt.Sprintf("/api/fleetio/assignments/%d", id), `{"contact_id": 999}`)
	require.Equal(t, http.StatusNotFound, status, "an unknown driver")
	status, _ = do(t, hs, "PATCH", "/api/fleetio/assignments/999", `{"contact_id": 1}`)
	require.Equal(t, http.StatusNotFound, status)

	// End: ended_at = now; one that has not started cannot end.
	status, body = do(t, hs, "POST", fmt.Sprintf("/api/fleetio/assignments/%d/end", id), `{}`)
	require.Equal(t, http.StatusBadRequest, status, "starts at 11:00, now is 10:00")
	require.Contains(t, body["error"], "delete it")
	status, body = do(t, hs, "PATCH", fmt.Sprintf("/api/fleetio/assignments/%d", id), `{"started_at": "2026-12-02T09:00:00Z"}`)
	require.Equal(t, http.StatusOK, status, body)
	status, body = do(t, hs, "POST", fmt.Sprintf("/api/fleetio/assignments/%d/end", id), `{}`)
	require.Equal(t, http.StatusOK, status, body)
	got, _ = d.fleet.Assignment(id)
	require.True(t, got.EndedAt.Equal(fixedNow))
	require.False(t, got.Current)
	status, _ = do(t, hs, "POST", "/api/fleetio/assignments/999/end", `{}`)
	require.Equal(t, http.StatusNotFound, status)

	// Delete, twice.
	status, body = do(t, hs, "DELETE", fmt.Sprintf("/api/fleetio/assignments/%d", id), "")
	require.Equal(t, http.StatusOK, status, body)
	_, ok = d.fleet.Assignment(id)
	require.False(t, ok)
	status, body = do(t, hs, "DELETE", fmt.Sprintf("/api/fleetio/assignments/%d", id), "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body["error"], "not found")
}

func TestBook(t *testing.T) {
	d, _, _, hs := newTestServer(t)
	status, body := do(t, hs, "POST", "/api/reservations/99/book", `{}`)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "book 99", lastCall(d))
	status, body = do(t, hs, "POST", "/api/reservations/99/book", `{"from": "2026-12-02T11:00:00Z", "until": "2026-12-02T12:00:00Z", "contact": "sms"}`)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "book 99 sms", lastCall(d))
	d.mu.Lock()
	r := d.booked[1]
	d.mu.Unlock()
	require.True(t, r.From.Equal(fixedNow.Add(time.Hour)))
	require.True(t, r.Until.Equal(fixedNow.Add(2*time.Hour)))

	d.change(func(d *fakeDepot) { d.fail["book"] = fmt.Errorf("reservation 98: %w", depot.ErrInvalid) })
	status, body = do(t, hs, "POST", "/api/reservations/98/book", `{}`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body["error"], "booking assignment 98")
}

// stream opens /api/stream and hands each message on: a State's JSON, or
// "heartbeat" for a comment.
func stream(t *testing.T, hs *httptest.Server, query string) (*http.Response, <-chan string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", hs.URL+"/api/stream"+query, nil)
	require.NoError(t, err)
	res, err := hs.Client().Do(req)
	require.NoError(t, err)
	out := make(chan string, 100)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "data: "):
				out <- strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, ": heartbeat"):
				out <- "heartbeat"
			}
		}
	}()
	return res, out
}

// within is the generous bound on a stream's message arriving.
const within = 10 * time.Second

func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case m, ok := <-ch:
		require.True(t, ok, "the stream ended")
		return m
	case <-time.After(within):
		t.Fatal("no message on the stream")
		return ""
	}
}

func TestStream(t *testing.T) {
	d, _, _, hs := newTestServer(t)
	res, ch := stream(t, hs, "?box=b1")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))

	var st State
	require.NoError(t, json.Unmarshal([]byte(next(t, ch)), &st), "a State at once")
	require.Equal(t, "b1", st.Box)
	require.Len(t, st.Events, 3)

	d.change(func(d *fakeDepot) { d.boxes[0].State.Typed = 5 })
	require.NoError(t, json.Unmarshal([]byte(next(t, ch)), &st), "again after a change")
	require.Equal(t, 5, st.Boxes[0].State.Typed)

	// A burst of changes is coalesced: its last state arrives, in fewer
	// messages than changes.
	const burst = 50
	for i := range burst {
		d.change(func(d *fakeDepot) { d.boxes[0].State.Typed = 100 + i })
	}
	msgs := 0
	for st.Boxes[0].State.Typed != 100+burst-1 {
		require.NoError(t, json.Unmarshal([]byte(next(t, ch)), &st))
		msgs++
	}
	require.Less(t, msgs, burst)

	status, _ := do(t, hs, "GET", "/api/stream?box=nope", "")
	require.Equal(t, http.StatusNotFound, status)
}

func TestStreamHeartbeat(t *testing.T) {
	_, _, s, hs := newTestServer(t)
	s.heartbeatEvery = 10 * time.Millisecond
	_, ch := stream(t, hs, "")
	var st State
	require.NoError(t, json.Unmarshal([]byte(next(t, ch)), &st))
	require.Equal(t, "heartbeat", next(t, ch))
}

func TestStreamBound(t *testing.T) {
	_, _, s, hs := newTestServer(t)
	var chans []<-chan string
	for range MaxStreams {
		res, ch := stream(t, hs, "")
		require.Equal(t, http.StatusOK, res.StatusCode)
		next(t, ch)
		chans = append(chans, ch)
	}
	status, body := do(t, hs, "GET", "/api/stream", "")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, body["error"], "too many streams")

	// Close ends every stream, and refuses new ones.
	require.NoError(t, s.Close())
	for _, ch := range chans {
		select {
		case _, ok := <-ch:
			require.False(t, ok)
		case <-time.After(within):
			t.Fatal("a stream outlived Close")
		}
	}
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.streams == 0
	}, within, 5*time.Millisecond)
	status, _ = do(t, hs, "GET", "/api/stream", "")
	require.Equal(t, http.StatusServiceUnavailable, status)
}

func TestStreamFreesItsPlace(t *testing.T) {
	_, _, s, hs := newTestServer(t)
	s.maxStreams = 1
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", hs.URL+"/api/stream", nil)
	require.NoError(t, err)
	res, err := hs.Client().Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	status, _ := do(t, hs, "GET", "/api/stream", "")
	require.Equal(t, http.StatusServiceUnavailable, status)
	cancel()
	res.Body.Close()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.streams == 0
	}, within, 5*time.Millisecond, "a page that went away frees its place")
}
