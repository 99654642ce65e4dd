package bookings_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// readCounter is a request body that records every Read.
type readCounter struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

func (c *readCounter) Close() error { return nil }

// A request that cannot be a delivery is refused from its headers alone:
// the handler never reads its body.
func TestWebhookRefusedBeforeBody(t *testing.T) {
	e := newEnv(t, envOpts{})
	h := e.b.Webhook()
	body := delivery(910001, fleetio.EventAssignmentCreated, `{"id":910002,"vehicle_id":1,"contact_id":1}`)
	good := fleetio.Sign([]byte(secret), body)
	serve := func(hdr map[string]string, contentLength int64) (int, http.Header, int64) {
		rc := &readCounter{r: strings.NewReader(string(body))}
		req := httptest.NewRequest(http.MethodPost, bookings.WebhookPath, nil)
		req.Body, req.ContentLength = rc, contentLength
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Header(), rc.reads.Load()
	}
	n := int64(len(body))
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		length int64
		status int
	}{
		{"no signature header", nil, n, http.StatusUnauthorized},
		{"blank signature header", map[string]string{fleetio.SignatureHeader: "  "}, n, http.StatusUnauthorized},
		{"signature not hex", map[string]string{fleetio.SignatureHeader: strings.Repeat("z", 64)}, n, http.StatusUnauthorized},
		{"signature too short", map[string]string{fleetio.SignatureHeader: good[:40]}, n, http.StatusUnauthorized},
		{"signature prefix only", map[string]string{fleetio.SignatureHeader: "sha256="}, n, http.StatusUnauthorized},
		{"declared length over the limit", map[string]string{fleetio.SignatureHeader: good}, bookings.DefaultMaxBody + 1, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, reads := serve(tc.hdr, tc.length)
			require.Equal(t, tc.status, status)
			require.Zero(t, reads, "the body was read")
			require.Equal(t, "close", hdr.Get("Connection"), "the rest of the body is not waited for")
		})
	}
	t.Run("undeclared length over the limit", func(t *testing.T) {
		// Chunked: no Content-Length to judge by; reading stops at the limit.
		rc := &readCounter{r: strings.NewReader(strings.Repeat("x", 4*bookings.DefaultMaxBody))}
		req := httptest.NewRequest(http.MethodPost, bookings.WebhookPath, nil)
		req.Body, req.ContentLength = rc, -1
		req.Header.Set(fleetio.SignatureHeader, good)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		require.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
	})
	t.Run("well-formed signature: the body is read", func(t *testing.T) {
		status, _, reads := serve(map[string]string{fleetio.SignatureHeader: good}, n)
		require.Equal(t, http.StatusOK, status)
		require.NotZero(t, reads)
	})
	t.Run("wrong Authorization", func(t *testing.T) {
		st, err := e.store.Settings()
		require.NoError(t, err)
		st.Authorization = "Bearer fixed"
		require.NoError(t, e.store.SetSettings(st))
		status, _, reads := serve(map[string]string{fleetio.SignatureHeader: good, "Authorization": "Bearer guess"}, n)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Zero(t, reads)
	})
	t.Run("not connected", func(t *testing.T) {
		require.NoError(t, e.store.ForgetSettings())
		status, _, reads := serve(map[string]string{fleetio.SignatureHeader: good}, n)
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Zero(t, reads)
	})
	require.EqualValues(t, 8, e.b.Stats().WebhooksRejected)
}

// slowPost sends a POST's headers and the first byte of its body, and
// leaves the rest to the caller.
func slowPost(t *testing.T, addr string, bodyLen int, sig string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s: %s\r\n\r\n{",
		bookings.WebhookPath, bodyLen, fleetio.SignatureHeader, sig)
	require.NoError(t, err)
	return c, bufio.NewReader(c)
}

// Bodies being read are bounded: with MaxBodiesInFlight held by slow
// clients, one more is answered 503 at once, with Retry-After, unread;
// once a slot is free a delivery goes through again.
func TestWebhookBodiesInFlightBounded(t *testing.T) {
	e := newEnv(t, envOpts{})
	const slots = 2
	b, err := bookings.New(bookings.Options{Store: e.store, Cloud: e.cloud, AccessBaseURL: "http://bookings.test",
		MaxBodiesInFlight: slots, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	srv := httptest.NewServer(b.Webhook())
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	forged := strings.Repeat("ab", 32) // well-formed, wrong

	type slow struct {
		c net.Conn
		r *bufio.Reader
	}
	var held []slow
	for range slots {
		c, r := slowPost(t, addr, 1000, forged)
		held = append(held, slow{c, r})
	}
	require.Eventually(t, func() bool { return b.Stats().BodiesInFlight == slots }, 5*time.Second, time.Millisecond,
		"the slow bodies are being read")

	c, r := slowPost(t, addr, 1000, forged)
	expectBusy(t, c, r)
	require.EqualValues(t, 1, b.Stats().WebhooksBusy)
	require.Equal(t, slots, b.Stats().BodiesInFlight, "the slow ones still hold their slots")

	// The slow clients finish: their forged signature is refused, and
	// the slots are free again.
	for _, s := range held {
		_, err := io.WriteString(s.c, strings.Repeat(" ", 998)+"}")
		require.NoError(t, err)
		require.NoError(t, s.c.SetReadDeadline(time.Now().Add(5*time.Second)))
		resp, err := http.ReadResponse(s.r, nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	require.Eventually(t, func() bool { return b.Stats().BodiesInFlight == 0 }, 5*time.Second, time.Millisecond)
	body := delivery(920001, fleetio.EventAssignmentCreated, `{"id":920002,"vehicle_id":1,"contact_id":1}`)
	require.Equal(t, http.StatusOK, post(t, srv.URL+bookings.WebhookPath, body,
		map[string]string{fleetio.SignatureHeader: fleetio.Sign([]byte(secret), body)}))
}

// slowPostFrom is slowPost from a given local address (the loopback net is
// 127/8 on Linux: 127.0.0.2 is another client) with more header lines.
func slowPostFrom(t *testing.T, from, addr string, bodyLen int, sig string, hdr ...string) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	extra := ""
	for _, h := range hdr {
		extra += h + "\r\n"
	}
	_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s: %s\r\n%s\r\n{",
		bookings.WebhookPath, bodyLen, fleetio.SignatureHeader, sig, extra)
	require.NoError(t, err)
	return c, bufio.NewReader(c)
}

// deliverFrom posts a signed delivery from a local address, whole, and
// returns the status.
func deliverFrom(t *testing.T, from, addr string, id int64, hdr ...string) int {
	t.Helper()
	body := delivery(id, fleetio.EventAssignmentCreated, fmt.Sprintf(`{"id":%d,"vehicle_id":1,"contact_id":1}`, id+1))
	c, r := slowPostFrom(t, from, addr, len(body), fleetio.Sign([]byte(secret), body), hdr...)
	_, err := c.Write(body[1:]) // slowPostFrom sent the "{"
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// expectBusy reads the answer to a request refused unread.
func expectBusy(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err, "answered without its body")
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
}

// One address's slow forged clients hold at most its share of the body
// slots: one more from it is refused unread, while a delivery from another
// address still goes through. X-Forwarded-For is believed only from a
// trusted proxy, and then only what the proxy appended (IPv6 by /64).
func TestWebhookBodySlotsPerAddress(t *testing.T) {
	e := newEnv(t, envOpts{})
	forged := strings.Repeat("ab", 32) // well-formed, wrong
	start := func(t *testing.T, proxies ...netip.Prefix) (*bookings.Integration, string) {
		b, err := bookings.New(bookings.Options{Store: e.store, Cloud: e.cloud, AccessBaseURL: "http://bookings.test",
			MaxBodiesInFlight: 8, MaxBodiesPerAddress: 2, BodyTimeout: time.Minute, TrustedProxies: proxies,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		srv := httptest.NewServer(b.Webhook())
		t.Cleanup(srv.Close)
		return b, srv.Listener.Addr().String()
	}
	var id atomic.Int64
	id.Store(930000)
	nextID := func() int64 { return id.Add(2) }

	t.Run("direct", func(t *testing.T) {
		b, addr := start(t)
		for range 2 {
			slowPostFrom(t, "127.0.0.1", addr, 1000, forged)
		}
		require.Eventually(t, func() bool { return b.Stats().BodiesInFlight == 2 }, 5*time.Second, time.Millisecond)
		c, r := slowPostFrom(t, "127.0.0.1", addr, 1000, forged)
		expectBusy(t, c, r)
		// A header anyone can write does not make it another client.
		c, r = slowPostFrom(t, "127.0.0.1", addr, 1000, forged, "X-Forwarded-For: 198.51.100.7")
		expectBusy(t, c, r)
		require.EqualValues(t, 2, b.Stats().WebhooksBusy)
		require.Equal(t, 2, b.Stats().BodiesInFlight, "slots are left for others")

		require.Equal(t, http.StatusOK, deliverFrom(t, "127.0.0.2", addr, nextID()), "another address gets through")
		require.Equal(t, http.StatusOK, deliverFrom(t, "127.0.0.2", addr, nextID()), "and again: its slot came back")
	})

	t.Run("behind a trusted proxy", func(t *testing.T) {
		b, addr := start(t, netip.MustParsePrefix("127.0.0.1/32"))
		// The proxy appends the address that connected to it: a client's
		// own X-Forwarded-For is to its left.
		attacker := "X-Forwarded-For: 203.0.113.9"
		for range 2 {
			slowPostFrom(t, "127.0.0.1", addr, 1000, forged, attacker)
		}
		require.Eventually(t, func() bool { return b.Stats().BodiesInFlight == 2 }, 5*time.Second, time.Millisecond)
		c, r := slowPostFrom(t, "127.0.0.1", addr, 1000, forged, attacker)
		expectBusy(t, c, r)
		c, r = slowPostFrom(t, "127.0.0.1", addr, 1000, forged, "X-Forwarded-For: 192.0.2.10, 203.0.113.9")
		expectBusy(t, c, r) // a made-up hop on the left changes nothing
		require.Equal(t, http.StatusOK, deliverFrom(t, "127.0.0.1", addr, nextID(), "X-Forwarded-For: 203.0.113.9, 192.0.2.10"),
			"another client behind the proxy gets through")

		// IPv6: one /64 is one client.
		for range 2 {
			slowPostFrom(t, "127.0.0.1", addr, 1000, forged, "X-Forwarded-For: 2001:db8:0:1::1")
		}
		require.Eventually(t, func() bool { return b.Stats().BodiesInFlight == 4 }, 5*time.Second, time.Millisecond)
		c, r = slowPostFrom(t, "127.0.0.1", addr, 1000, forged, "X-Forwarded-For: 2001:db8:0:1:ffff::2")
		expectBusy(t, c, r)
		require.Equal(t, http.StatusOK, deliverFrom(t, "127.0.0.1", addr, nextID(), "X-Forwarded-For: 2001:db8:0:2::1"))
	})
}

// A body that does not arrive within Options.BodyTimeout is cut: 408, the
// connection closed, its slot free again, long before the server's own
// read timeout (none here at all).
func TestWebhookSlowBodyCut(t *testing.T) {
	e := newEnv(t, envOpts{})
	const limit = 300 * time.Millisecond
	b, err := bookings.New(bookings.Options{Store: e.store, Cloud: e.cloud, AccessBaseURL: "http://bookings.test",
		BodyTimeout: limit, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	srv := httptest.NewServer(b.Webhook())
	t.Cleanup(srv.Close)

	began := time.Now()
	c, r := slowPostFrom(t, "127.0.0.1", srv.Listener.Addr().String(), 1000, strings.Repeat("ab", 32))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err, "answered once the body deadline passed")
	resp.Body.Close()
	took := time.Since(began)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	require.True(t, resp.Close, "the connection is closed")
	require.GreaterOrEqual(t, took, limit)
	require.Eventually(t, func() bool { return b.Stats().BodiesInFlight == 0 }, 5*time.Second, time.Millisecond)
	require.EqualValues(t, 1, b.Stats().WebhooksRejected)
}
