package netcut_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sim/netcut"
)

// wait bounds every wait for something to happen on loopback; it takes
// milliseconds, so this only matters on a badly loaded machine.
const wait = 10 * time.Second

// quiet is how long a test listens for bytes that must not come: the proxy
// forwards within microseconds on loopback, so a byte that was going to
// come would come well within it.
const quiet = 200 * time.Millisecond

// echo is an upstream that sends back what it reads, line by line, and
// counts its connections and the bytes it got.
type echo struct {
	ln    net.Listener
	conns atomic.Int64
	bytes atomic.Int64
	wg    sync.WaitGroup

	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e := &echo{ln: ln, open: map[net.Conn]struct{}{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.conns.Add(1)
			e.mu.Lock()
			e.open[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = io.Copy(c, counter{c, &e.bytes})
				_ = c.Close()
				e.mu.Lock()
				delete(e.open, c)
				e.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.mu.Lock()
		for c := range e.open {
			_ = c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echo) addr() string { return e.ln.Addr().String() }

func (e *echo) openConns() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.open)
}

type counter struct {
	r io.Reader
	n *atomic.Int64
}

func (c counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func listen(t *testing.T, upstream string) *netcut.Proxy {
	t.Helper()
	p, err := netcut.Listen("", upstream, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	require.True(t, strings.HasPrefix(p.Addr(), "127.0.0.1:"), p.Addr())
	return p
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *netcut.Proxy) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), wait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &client{Conn: c, r: bufio.NewReader(c)}
}

// roundTrip sends a line and reads it back through the echo.
func (c *client) roundTrip(t *testing.T, line string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	// Written beside the read: a long line fills the socket buffers both
	// ways before the echo's answer is read.
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, line+"\n")
		wrote <- err
	}()
	got, err := c.r.ReadString('\n')
	require.NoError(t, err)
	require.NoError(t, <-wrote)
	require.Equal(t, line+"\n", got)
}

// requireClosed reads until the proxy's end of the connection closes, and
// returns the read's error (nil for an orderly close).
func (c *client) requireClosed(t *testing.T) error {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "connection still open after %v", wait)
	return err
}

// requireSilent checks that nothing arrives for a while and the connection
// stays open.
func (c *client) requireSilent(t *testing.T) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(quiet)))
	b, err := c.r.ReadByte()
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "got byte %q, err %v: want silence", b, err)
}

func TestForwards(t *testing.T) {
	e := startEcho(t)
	p := listen(t, e.addr())
	require.Equal(t, e.addr(), p.Upstream())
	a, b := dial(t, p), dial(t, p)
	a.roundTrip(t, "hello")
	b.roundTrip(t, "world")
	a.roundTrip(t, strings.Repeat("x", 1<<20)) // more than one socket buffer
	require.Equal(t, 2, p.Conns())
	require.False(t, p.IsCut())

	// A half-close passes through: the echo sees end of file, answers what
	// it has, and closes, which closes the client's read side.
	_, err := io.WriteString(a, "last\n")
	require.NoError(t, err)
	require.NoError(t, a.Conn.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(a.r)
	require.NoError(t, err)
	require.Equal(t, "last\n", string(got))
	require.Eventually(t, func() bool { return p.Conns() == 1 }, wait, time.Millisecond)
}

func TestReset(t *testing.T) {
	e := startEcho(t)
	p := listen(t, e.addr())
	live := dial(t, p)
	live.roundTrip(t, "before")

	require.NoError(t, p.Cut(netcut.Reset))
	require.True(t, p.IsCut())
	require.Equal(t, netcut.Reset, p.CutMode())
	require.Equal(t, 0, p.Conns(), "live connections are gone at once")
	require.ErrorIs(t, live.requireClosed(t), syscall.ECONNRESET)
	require.Eventually(t, func() bool { return e.openConns() == 0 }, wait, time.Millisecond,
		"the upstream side is closed too")

	// While cut, a new connection is accepted and closed at once, and never
	// reaches the upstream.
	conns := e.conns.Load()
	for range 3 {
		c, err := net.DialTimeout("tcp", p.Addr(), wait)
		if err == nil { // else the reset came before connect returned
			err = (&client{Conn: c, r: bufio.NewReader(c)}).requireClosed(t)
			_ = c.Close()
		}
		require.ErrorIs(t, err, syscall.ECONNRESET)
	}
	require.Equal(t, conns, e.conns.Load())

	p.Restore()
	require.False(t, p.IsCut())
	dial(t, p).roundTrip(t, "after")
	p.Restore() // not cut: nothing happens
	require.Equal(t, 1, p.Conns())
}

func TestBlackhole(t *testing.T) {
	e := startEcho(t)
	p := listen(t, e.addr())
	live := dial(t, p)
	live.roundTrip(t, "before")
	got := e.bytes.Load()

	require.NoError(t, p.Cut(netcut.Blackhole))
	require.Equal(t, netcut.Blackhole, p.CutMode())
	_, err := io.WriteString(live, "lost\n")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Dropped() == 5 }, wait, time.Millisecond)
	require.Equal(t, got, e.bytes.Load(), "nothing reached the upstream")
	live.requireSilent(t)
	require.Equal(t, 1, e.openConns(), "the upstream connection stays open")

	// A new connection is accepted and held: it never reaches the upstream.
	conns := e.conns.Load()
	held := dial(t, p)
	_, err = io.WriteString(held, "held\n")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Dropped() == 10 }, wait, time.Millisecond)
	require.Equal(t, 2, p.Conns())
	held.requireSilent(t)
	require.Equal(t, conns, e.conns.Load())

	// Restore closes both: the live one lost bytes, the held one never had an
	// upstream.
	p.Restore()
	live.requireClosed(t)
	held.requireClosed(t)
	require.Equal(t, 0, p.Conns())
	require.Eventually(t, func() bool { return e.openConns() == 0 }, wait, time.Millisecond)
	dial(t, p).roundTrip(t, "after")
}

func TestBlackholeThenReset(t *testing.T) {
	e := startEcho(t)
	p := listen(t, e.addr())
	live := dial(t, p)
	live.roundTrip(t, "before")
	require.NoError(t, p.Cut(netcut.Blackhole))
	held := dial(t, p)
	require.Eventually(t, func() bool { return p.Conns() == 2 }, wait, time.Millisecond)

	require.NoError(t, p.Cut(netcut.Reset))
	live.requireClosed(t)
	held.requireClosed(t)
	require.Equal(t, 0, p.Conns())
}

func TestUpstreamRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gone := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	p := listen(t, gone)
	dial(t, p).requireClosed(t)
	require.Eventually(t, func() bool { return p.Conns() == 0 }, wait, time.Millisecond)
}

func TestBadInput(t *testing.T) {
	_, err := netcut.Listen("", "", nil)
	require.ErrorContains(t, err, "no upstream")
	_, err = netcut.Listen("", "no-port", nil)
	require.ErrorContains(t, err, `upstream "no-port"`)

	e := startEcho(t)
	p := listen(t, e.addr())
	_, err = netcut.Listen(p.Addr(), e.addr(), nil)
	require.ErrorContains(t, err, "netcut: listen on "+p.Addr())

	require.Error(t, p.Cut(0))
	require.Error(t, p.Cut(netcut.Mode(7)))
	require.False(t, p.IsCut(), "a refused cut changes nothing")

	for _, tc := range []struct {
		in   string
		want netcut.Mode
	}{{"reset", netcut.Reset}, {"blackhole", netcut.Blackhole}} {
		m, err := netcut.ParseMode(tc.in)
		require.NoError(t, err)
		require.Equal(t, tc.want, m)
		b, err := m.MarshalText()
		require.NoError(t, err)
		require.Equal(t, tc.in, string(b))
		var back netcut.Mode
		require.NoError(t, back.UnmarshalText(b))
		require.Equal(t, m, back)
	}
	_, err = netcut.ParseMode("unplug")
	require.ErrorContains(t, err, `unknown cut mode "unplug"`)
	var m netcut.Mode
	require.Error(t, m.UnmarshalText([]byte("Reset")))
	_, err = netcut.Mode(9).MarshalText()
	require.Error(t, err)
}

// TestCloseLeavesNothing: Close ends every goroutine and closes every
// connection, live, dark and held ones, and is idempotent.
func TestCloseLeavesNothing(t *testing.T) {
	e := startEcho(t)
	before := runtime.NumGoroutine()
	for _, mode := range []netcut.Mode{0, netcut.Blackhole, netcut.Reset} {
		p, err := netcut.Listen("", e.addr(), nil)
		require.NoError(t, err)
		cs := []*client{dial(t, p), dial(t, p)}
		cs[0].roundTrip(t, "x")
		if mode != 0 {
			require.NoError(t, p.Cut(mode))
		}
		if mode == netcut.Blackhole {
			cs = append(cs, dial(t, p)) // held
		}
		require.NoError(t, p.Close())
		require.NoError(t, p.Close(), "a second Close does nothing")
		require.Error(t, p.Cut(netcut.Reset), "cut after Close")
		for _, c := range cs {
			c.requireClosed(t)
			_ = c.Close()
		}
		_, err = net.DialTimeout("tcp", p.Addr(), wait)
		require.Error(t, err, "nothing listens after Close")
	}
	require.Eventually(t, func() bool { return e.openConns() == 0 }, wait, time.Millisecond)
	waitGoroutines(t, before)
}

// waitGoroutines waits until at most n goroutines run: Close has waited for
// the proxy's goroutines, but the echo's and the runtime's may still be on
// their way out. require.Eventually would count its own condition goroutine,
// hence a loop.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("%d goroutines left, want at most %d", runtime.NumGoroutine(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestListenFrom: the upstream connection comes from the source address
// given (the simulator's one loopback address per box).
func TestListenFrom(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer up.Close()
	remote := make(chan string, 1)
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		remote <- c.RemoteAddr().String()
		_ = c.Close()
	}()
	p, err := netcut.ListenFrom("", up.Addr().String(), "127.0.0.7", nil)
	require.NoError(t, err)
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	select {
	case r := <-remote:
		host, _, err := net.SplitHostPort(r)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.7", host)
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy never dialled upstream")
	}
	_, err = netcut.ListenFrom("", up.Addr().String(), "not-an-ip", nil)
	require.ErrorContains(t, err, `source address "not-an-ip" is not an IP`)
}
