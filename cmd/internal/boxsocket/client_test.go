package boxsocket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// serve runs h on a Unix socket and returns a client of it.
func serve(t *testing.T, h http.Handler) *Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "bsock")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c := Dial(path)
	t.Cleanup(c.Close)
	return c
}

func TestClientErrors(t *testing.T) {
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			WriteError(w, http.StatusConflict, "the box says no")
		case "/v1/slots":
			http.Error(w, "plain text", http.StatusBadGateway)
		case "/v1/keys":
			_, _ = w.Write([]byte("not json"))
		}
	}))
	_, err := c.Status(t.Context())
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, &Error{Status: http.StatusConflict, Message: "the box says no"}, e)
	require.Equal(t, "smartboxd socket: 409 Conflict: the box says no", e.Error())
	require.True(t, IsStatus(err, http.StatusConflict))
	require.False(t, IsStatus(err, http.StatusBadRequest))

	_, err = c.Slots(t.Context())
	require.ErrorAs(t, err, &e)
	require.Equal(t, "plain text", e.Message)

	_, err = c.Keys(t.Context())
	require.ErrorContains(t, err, "decoding the answer")

	dead := Dial(filepath.Join(t.TempDir(), "none.sock"))
	_, err = dead.Status(t.Context())
	require.ErrorContains(t, err, "none.sock")
}

func TestClientRequests(t *testing.T) {
	var got []string
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body strings.Builder
		if r.Body != nil {
			b := make([]byte, MaxRequestBody)
			n, _ := r.Body.Read(b)
			body.Write(b[:n])
		}
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+body.String())
		if r.URL.Path == "/v1/events" {
			WriteJSON(w, http.StatusOK, []any{})
			return
		}
		WriteJSON(w, http.StatusOK, struct{}{})
	}))
	ctx := t.Context()
	yes := true
	require.NoError(t, c.Press(ctx, "123#", 0))
	require.NoError(t, c.Take(ctx, 3))
	require.NoError(t, c.PutBack(ctx, 4))
	require.NoError(t, c.SetFault(ctx, 5, SlotFault{Jammed: &yes}))
	require.NoError(t, c.Reader(ctx, ReaderRequest{Raw: []byte{1}}))
	require.NoError(t, c.SetClock(ctx, ClockRequest{Reset: true}))
	evs, err := c.Events(ctx, 7, 20)
	require.NoError(t, err)
	require.Empty(t, evs)
	require.Equal(t, []string{
		`POST /v1/sim/keypad {"keys":"123#"}`,
		`POST /v1/sim/slots/3/take `,
		`POST /v1/sim/slots/4/put-back `,
		`PUT /v1/sim/slots/5/fault {"jammed":true}`,
		`POST /v1/sim/reader {"raw":"AQ=="}`,
		`PUT /v1/sim/clock {"reset":true}`,
		`GET /v1/events?after=7&limit=20 `,
	}, got)
}

func TestClientWatch(t *testing.T) {
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.URL.Query().Get("after"); a != "3" {
			WriteError(w, http.StatusBadRequest, "after "+a)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": heartbeat\n\n")
		for i := range 3 {
			fmt.Fprintf(w, "data: {\"typed\":%d}\n\n", i)
		}
	}))
	var typed []int
	err := c.Watch(t.Context(), 3, func(w Watch) error {
		typed = append(typed, w.Typed)
		return nil
	})
	require.ErrorContains(t, err, "the daemon ended the stream")
	require.Equal(t, []int{0, 1, 2}, typed)

	stop := errors.New("enough")
	n := 0
	err = c.Watch(t.Context(), 3, func(Watch) error {
		n++
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n)
}

func TestClientWatchContext(t *testing.T) {
	first := make(chan struct{})
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, 0, func(Watch) error {
			close(first)
			return nil
		})
	}()
	<-first
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

func TestClientWatchRefused(t *testing.T) {
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusBadRequest, `after "x": bad`)
	}))
	err := c.Watch(t.Context(), 0, func(Watch) error { return nil })
	require.True(t, IsStatus(err, http.StatusBadRequest), "%v", err)
}

func TestDecodeBody(t *testing.T) {
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var k KeypadRequest
		if DecodeBody(w, r, &k) {
			WriteJSON(w, http.StatusOK, k)
		}
	}))
	for _, tc := range []struct{ body, want string }{
		{`{"keys":"1"}`, ""},
		{``, "empty"},
		{`{"keys":"1"} x`, "more than one"},
		{`{"keys":"1"}}`, "trailing data"},
		{`{"nope":1}`, `unknown field "nope"`},
		{`{"keys":"` + strings.Repeat("1", MaxRequestBody) + `"}`, "over 4096 bytes"},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://smartboxd/x", strings.NewReader(tc.body))
		require.NoError(t, err)
		resp, err := c.http.Do(req)
		require.NoError(t, err)
		err = readError(resp)
		resp.Body.Close()
		if tc.want == "" {
			require.Equal(t, http.StatusOK, resp.StatusCode)
			continue
		}
		require.True(t, IsStatus(err, http.StatusBadRequest), "%q: %v", tc.body, err)
		require.ErrorContains(t, err, tc.want, "%q", tc.body)
	}
}
