package bridge

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The service's listeners carry the limits listeners.go sets.
func TestServiceListenerLimits(t *testing.T) {
	b := startTest(t, Options{})
	for _, tc := range []struct {
		name string
		srv  *http.Server
		l    httpLimits
	}{{"public", b.publicSrv, publicLimits}, {"admin", b.adminSrv, adminLimits}} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.l.ReadHeader, tc.srv.ReadHeaderTimeout)
			require.Equal(t, tc.l.Read, tc.srv.ReadTimeout)
			require.Equal(t, tc.l.Write, tc.srv.WriteTimeout)
			require.Equal(t, tc.l.Idle, tc.srv.IdleTimeout)
			require.Equal(t, tc.l.MaxHeaderBytes, tc.srv.MaxHeaderBytes)
			require.NotZero(t, tc.srv.ReadHeaderTimeout)
			require.NotZero(t, tc.srv.ReadTimeout)
			require.NotZero(t, tc.srv.IdleTimeout)
			require.NotZero(t, tc.srv.MaxHeaderBytes)
		})
	}
}

// serveWith runs a server made by l on a loopback port.
func serveWith(t *testing.T, l httpLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := l.server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintln(w, "ok")
	}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// A client that never finishes its headers, or its body, is cut off by
// the server; one whose headers are too large is refused. (The public
// limits, with the timeouts shortened so the test does not wait 10 s.)
func TestPublicListenerCutsSlowClients(t *testing.T) {
	l := publicLimits
	l.ReadHeader, l.Read = 300*time.Millisecond, 600*time.Millisecond
	addr := serveWith(t, l)

	cutAfter := func(t *testing.T, first string, min time.Duration) {
		t.Helper()
		start := time.Now() // before the server's clock starts: at its accept
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, first)
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = io.ReadAll(c) // the server closes without an answer
		require.NoError(t, err, "the server closed the connection (not our 10 s deadline)")
		require.GreaterOrEqual(t, time.Since(start), min)
	}
	t.Run("slow header", func(t *testing.T) {
		cutAfter(t, "POST /webhooks/fleetio HTTP/1.1\r\nHost: bridge\r\nX-Fleetio-Webh", l.ReadHeader)
	})
	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "POST /webhooks/fleetio HTTP/1.1\r\nHost: bridge\r\nContent-Length: 100\r\n\r\n{")
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = io.ReadAll(c)
		require.NoError(t, err, "the server closed the connection within its read timeout")
	})
	t.Run("header too large", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: bridge\r\nX-Pad: %s\r\n\r\n", strings.Repeat("a", 2*l.MaxHeaderBytes))
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	})
	t.Run("a normal request still works", func(t *testing.T) {
		resp, err := http.Post("http://"+addr+"/webhooks/fleetio", "application/json", strings.NewReader(`{"id":1}`))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
}
