package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
)

// socketBodyRoute is one socket route that reads a body or a query; %s
// in path is the fuzzed slot number (or query value).
type socketBodyRoute struct {
	method, path string
}

// socketBodyRoutes are the socket's routes that read what the caller
// sends, but the keypad and the reader: those hold keys and fobs for real
// time (up to MaxKeyHold per key, MaxFobHold), too long per input; their
// bodies' decoding is FuzzDecodeBody's (cmd/internal/boxsocket).
var socketBodyRoutes = []socketBodyRoute{
	{http.MethodPost, "/v1/slots/%s/release"},
	{http.MethodPut, "/v1/sim/slots/%s/fault"},
	{http.MethodPut, "/v1/sim/clock"},
	{http.MethodGet, "/v1/events?after=%s&limit=5"},
	{http.MethodGet, "/v1/events?limit=%s"},
}

// FuzzSocketRequest sends fuzzed bodies and slot numbers to the routes of a
// running sim daemon's local socket, through its real handler: the answer
// is 2xx or 4xx with a JSON error message, never 5xx nor a panic, whatever
// a technician's tool (or anyone who can open the socket) sends.
func FuzzSocketRequest(f *testing.F) {
	dir := f.TempDir()
	seedStore(f, dir, "demo-box")
	d, err := newDaemon(simConfig(f, dir), daemonOptions{Log: slog.New(slog.DiscardHandler), Software: "fuzz"})
	require.NoError(f, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	f.Cleanup(func() {
		cancel()
		require.NoError(f, <-done)
	})
	d.ctrl.Flush() // running: box_started committed
	h := d.socketRoutes()

	f.Add(uint8(0), "1", []byte(`{"by":"ann","reason":"driver lost the PIN"}`))
	f.Add(uint8(0), "13", []byte(`{"by":"ann","reason":"no such slot"}`))
	f.Add(uint8(0), "2", []byte(`{"by":"ann\u0007","reason":"bell"}`))
	f.Add(uint8(1), "3", []byte(`{"jammed":true}`))
	f.Add(uint8(1), "3", []byte(`{"jammed":false,"sensor_dead":false}`))
	f.Add(uint8(1), "0", []byte(`{}`))
	f.Add(uint8(2), "", []byte(`{"at":"1970-01-01T00:00:00Z"}`))
	f.Add(uint8(2), "", []byte(`{"reset":true}`))
	f.Add(uint8(2), "", []byte(`{"at":"9999-12-31T23:59:59Z"}`))
	f.Add(uint8(3), "18446744073709551615", []byte(nil))
	f.Add(uint8(4), "501", []byte(nil))
	f.Fuzz(func(t *testing.T, route uint8, arg string, body []byte) {
		rt := socketBodyRoutes[int(route)%len(socketBodyRoutes)]
		target := rt.path
		if strings.Contains(target, "%s") {
			esc := url.PathEscape(arg)
			if strings.Contains(target, "?") {
				esc = url.QueryEscape(arg)
			}
			target = strings.Replace(target, "%s", esc, 1)
		}
		req := httptest.NewRequest(rt.method, target, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		got, _ := io.ReadAll(res.Body)
		code := res.StatusCode
		if code == http.StatusMovedPermanently || code == http.StatusTemporaryRedirect {
			return // the mux cleaning a path ("..", "//"): no handler ran
		}
		if (code < 200 || code > 299) && (code < 400 || code > 499) {
			t.Fatalf("%s %s: status %d: %s", rt.method, target, code, got)
		}
		require.True(t, json.Valid(got), "%s %s: status %d, not JSON: %q", rt.method, target, code, got)
		if code >= 400 {
			var e boxsocket.ErrorResponse
			require.NoError(t, json.Unmarshal(got, &e))
			require.NotEmpty(t, e.Error, "%s %s: status %d without a message", rt.method, target, code)
		}
	})
}
