package simweb

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fuzzRoutes are the routes that read a body.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/api/boxes/b1/keypad"},
	{"POST", "/api/boxes/b1/slots/3/take"},
	{"PUT", "/api/boxes/b1/slots/3/fault"},
	{"POST", "/api/boxes/b1/reader"},
	{"PUT", "/api/boxes/b1/clock"},
	{"PUT", "/api/boxes/b1/network"},
	{"PUT", "/api/boxes/b1/power"},
	{"POST", "/api/fleetio/assignments"},
	{"PATCH", "/api/fleetio/assignments/1"},
	{"POST", "/api/fleetio/assignments/1/end"},
	{"POST", "/api/reservations/99/book"},
}

// FuzzActionBody: whatever the body, an action answers JSON, 200 or a 4xx
// with a reason, never a 500 or a panic (the fake depot accepts every call
// that reaches it).
func FuzzActionBody(f *testing.F) {
	for i, body := range []string{
		`{"keys": "123456#"}`, `{}`, `{"jammed": true}`, `{"fob": "01000734E0"}`, `{"raw": "AgMx"}`,
		`{"offset": "-2h"}`, `{"at": "1970-01-01T00:00:00Z"}`, `{"cut": true}`, `{"on": false}`,
		`{"vehicle_id": 1, "contact_id": 3, "started_at": "0001-01-01T00:00:00Z"}`,
		`{"contact_id": 4, "ended_at": null}`, `{"from": "2026-12-02T11:00:00Z", "contact": "sms"}`, `[`, "\x00",
	} {
		f.Add(uint8(i), body)
	}
	d, _ := newFakeDepot(f)
	s := New(d, Options{})
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		w := httptest.NewRecorder()
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(body))
		req.Host = "127.0.0.1:8400" // httptest's example.com is refused (DNS rebinding)
		req.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(w, req)
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound}, w.Code, "%s %s %q: %s", rt.method, rt.path, body, w.Body)
		var answer map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &answer))
		if w.Code != http.StatusOK {
			require.NotEmpty(t, answer["error"])
		}
	})
}
