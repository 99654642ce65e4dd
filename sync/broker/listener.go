package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// Bounds on connections that have not logged in yet. mochi v2.7.9 reads a
// CONNECT with no deadline (its keepalive deadline starts only once CONNECT
// is read) and allocates the whole packet from its declared length, up to
// Capabilities.MaximumPacketSize, which must be 1 MiB for an event batch:
// without these, 200 connections that declare a 1 MB CONNECT and send 10
// bytes held 205 MB for as long as the attacker liked.
const (
	// connectTimeout is how long a new connection has for its TLS handshake
	// and its whole CONNECT. A box on a slow mobile link needs a few round
	// trips and under 8 KiB for both: a second or two. mochi replaces this
	// deadline with the client's keepalive once CONNECT is read
	// (server.go attachClient: refreshDeadline after OnConnect).
	connectTimeout = 10 * time.Second
	// maxConnectSize bounds a CONNECT's declared length. A real one holds a
	// client id and user (a box id, tens of bytes), a password (ours are
	// tens of bytes), and a will: the box's status topic and at most
	// maxStatusSize of payload. 8 KiB leaves room; a CONNECT that declares
	// more is refused from its fixed header, before mochi allocates it.
	maxConnectSize = 8 << 10
	// maxPendingPerAddress bounds the connections one address (IPv4, or
	// IPv6 /64, as logins count them) may have open before logging in: a
	// depot's boxes behind one NAT reconnect after a broker restart a few at
	// a time (paho spreads them), and whoever is refused retries.
	maxPendingPerAddress = 16
	// maxPending bounds the connections open before logging in, over all
	// addresses. Each holds mochi's client state (about 80 KiB with its
	// write queue) and at most maxConnectSize of CONNECT: some 20 MB when
	// full. An attacker with 16 addresses can fill it, and boxes are then
	// refused for up to connectTimeout at a time; they retry.
	maxPending = 256
	// refusalLogEvery: connections refused for these bounds are counted
	// each, but logged at most once per this, so a flood of them cannot
	// flood the log.
	refusalLogEvery = 10 * time.Second
)

// errConnectTooLarge ends a connection whose first packet is not a CONNECT
// of at most maxConnectSize.
var errConnectTooLarge = errors.New("first packet is not a CONNECT of at most 8 KiB")

// connGate counts connections not yet logged in, per address and in all,
// and refuses those past its bounds. The TCP and TLS listeners share it.
type connGate struct {
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	pending map[string]int // address -> connections not yet logged in
	total   int

	refused  atomic.Uint64 // over a pending bound, or a CONNECT too large
	lastLog  atomic.Int64  // unix nanos of the last logged refusal
	unlogged atomic.Uint64 // refusals since then, not logged
}

func newConnGate(log *slog.Logger) *connGate {
	return &connGate{timeout: connectTimeout, log: log, pending: map[string]int{}}
}

// enter counts a new connection from addr, or says it is over a bound.
func (g *connGate) enter(addr string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.total >= maxPending:
		return fmt.Errorf("%d connections not logged in yet, at most %d", g.total, maxPending)
	case g.pending[addr] >= maxPendingPerAddress:
		return fmt.Errorf("%d connections from this address not logged in yet, at most %d", g.pending[addr], maxPendingPerAddress)
	}
	g.pending[addr]++
	g.total++
	return nil
}

func (g *connGate) leave(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.pending[addr]--; g.pending[addr] <= 0 {
		delete(g.pending, addr)
	}
}

// refuse counts a refused connection and logs it, at most once per
// refusalLogEvery with the number not logged since.
func (g *connGate) refuse(reason, remote string) {
	g.refused.Add(1)
	now := time.Now().UnixNano()
	last := g.lastLog.Load()
	if now-last < int64(refusalLogEvery) || !g.lastLog.CompareAndSwap(last, now) {
		g.unlogged.Add(1)
		return
	}
	g.log.Warn("connection refused before login: "+reason, "security", true, "remote", remote,
		"refused_unlogged", g.unlogged.Swap(0))
}

// gatedConn is a connection not yet logged in, or one that has: until
// loggedIn (or Close), it counts against its address's pending bound, and
// its Read checks the first packet's fixed header as it goes by.
type gatedConn struct {
	net.Conn
	gate *connGate
	addr string
	once sync.Once

	// The first packet's fixed header as read so far (only the reader
	// goroutine touches these).
	hdrDone   bool
	hdrBytes  int
	remaining int
	mult      int
}

// loggedIn ends the connection's pending count; mochi's keepalive deadline
// has replaced ours by then.
func (c *gatedConn) loggedIn() { c.once.Do(func() { c.gate.leave(c.addr) }) }

func (c *gatedConn) Close() error {
	c.loggedIn()
	return c.Conn.Close()
}

// Read passes bytes through, but fails before the fixed header of the
// first packet is complete if it is not a CONNECT or declares more than
// maxConnectSize: mochi decodes the length only from what Read returned, so
// it never gets to allocate it.
func (c *gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.hdrDone {
		return n, err
	}
	for _, b := range p[:n] {
		if !c.header(b) {
			c.gate.refuse(errConnectTooLarge.Error(), c.RemoteAddr().String())
			return 0, errConnectTooLarge
		}
		if c.hdrDone {
			break
		}
	}
	return n, err
}

// header takes the next byte of the first fixed header: the packet type,
// then up to four bytes of remaining length (MQTT's variable-length
// integer). It says false as soon as the packet cannot be an acceptable
// CONNECT.
func (c *gatedConn) header(b byte) bool {
	c.hdrBytes++
	if c.hdrBytes == 1 {
		c.mult = 1
		return b>>4 == 1 // CONNECT
	}
	c.remaining += int(b&0x7f) * c.mult
	c.mult *= 128
	if c.remaining > maxConnectSize {
		return false
	}
	if b&0x80 == 0 {
		c.hdrDone = true
		return true
	}
	return c.hdrBytes < 5 // at most four length bytes
}

// closeSafeListener wraps a mochi listener to close two holes in mochi
// v2.7.9's Close.
//
// Each accepted connection runs attachClient in a new goroutine, which calls
// ClientsWg.Add(1) itself, while Server.Close waits on ClientsWg. A
// connection accepted just as the broker closes (a box reconnecting during a
// restart) thus adds to a WaitGroup that is being waited on: a data race, and
// a client that may outlive Close. Here the Add is made before the connection
// is handed over, under a lock that Close takes first, so every connection
// is either counted before the wait or refused.
//
// Server.Close disconnects the clients in Server.Clients, but attachClient
// adds a client there only after its password check (a bcrypt comparison,
// up to checkSlotWait waiting for a slot first) without looking whether the
// server is closing: a box mid-login as Close starts is added after the
// disconnects and then served until it goes, which a box that pings never
// does, and Close waits for it. So the listener keeps every connection it
// handed over, and once mochi's own close has sent its DISCONNECTs and shut
// the listener, closes what is left (Close).
//
// It also puts each connection through the gate: refused past the pending
// bounds, given connectTimeout for its TLS handshake and CONNECT, and its
// CONNECT's size checked from its fixed header (gatedConn).
type closeSafeListener struct {
	listeners.Listener
	clients *sync.WaitGroup // the server's Listeners.ClientsWg
	gate    *connGate

	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{} // handed to mochi and not returned yet
}

func (l *closeSafeListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		if !l.handOver(c) {
			return c.Close()
		}
		defer l.returned(c)

		remote := c.RemoteAddr().String()
		addr := addressKey(remote)
		if err := l.gate.enter(addr); err != nil {
			l.gate.refuse(err.Error(), remote)
			return c.Close()
		}
		gc := &gatedConn{Conn: c, gate: l.gate, addr: addr}
		defer gc.loggedIn() // a connection that never logs in
		_ = c.SetDeadline(time.Now().Add(l.gate.timeout))
		return establish(id, gc)
	})
}

// handOver counts c for Server.Close's wait and keeps it for Close, or says
// false if the listener is closing.
func (l *closeSafeListener) handOver(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.clients.Add(1)
	if l.conns == nil {
		l.conns = map[net.Conn]struct{}{}
	}
	l.conns[c] = struct{}{}
	return true
}

// returned: mochi is done with c.
func (l *closeSafeListener) returned(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.clients.Done()
}

// Close refuses new connections, lets mochi disconnect its clients (each
// gets its DISCONNECT, written before mochi's closer returns) and close the
// listener, then closes every connection still handed over: those mid-login
// or not logged in yet. It closes the TCP socket itself, under any TLS, so
// that no close_notify can wait on a client that does not read.
//
// Server.Close then waits only until each connection's goroutine sees its
// socket closed: at once for one blocked reading or writing; a login in its
// password check finishes that first, at most checkSlotWait (1 s) for a
// slot and one bcrypt comparison (about 50 ms on a Pi 4, PasswordCost).
// Nothing a client does can make it longer.
func (l *closeSafeListener) Close(closer listeners.CloseFn) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.Listener.Close(closer)

	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		_ = c.Close()
	}
}

// rawConn is the connection under a gatedConn (a *tls.Conn on the TLS
// listener), or c itself.
func rawConn(c net.Conn) net.Conn {
	if g, ok := c.(*gatedConn); ok {
		return g.Conn
	}
	return c
}
