package netcut

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds; see the package comment.
const (
	dialTimeout = 5 * time.Second
	acceptRetry = 50 * time.Millisecond
)

// Mode is how a cut link fails. The zero Mode is a link that is not cut.
type Mode int

const (
	// Reset closes every live connection at once and refuses new ones.
	Reset Mode = iota + 1
	// Blackhole forwards nothing and holds new connections silent.
	Blackhole
)

// String is the mode's name as ParseMode reads it ("" for a link not cut).
func (m Mode) String() string {
	switch m {
	case 0:
		return ""
	case Reset:
		return "reset"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads "reset" or "blackhole", as the simulator's JSON API
// names them.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "reset":
		return Reset, nil
	case "blackhole":
		return Blackhole, nil
	}
	return 0, fmt.Errorf("netcut: unknown cut mode %q (want reset or blackhole)", s)
}

// MarshalText writes the mode's name, for JSON.
func (m Mode) MarshalText() ([]byte, error) {
	if m != 0 && m != Reset && m != Blackhole {
		return nil, fmt.Errorf("netcut: unknown cut mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText reads a name as ParseMode does; "" is a link not cut.
func (m *Mode) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*m = 0
		return nil
	}
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Proxy is a running proxy.
type Proxy struct {
	// immutable
	ln       net.Listener
	upstream string
	source   *net.TCPAddr // the upstream dial's local address; nil: the system's choice
	log      *slog.Logger
	ctx      context.Context // ends at Close: stops dials in progress
	cancel   context.CancelFunc
	wg       sync.WaitGroup // every goroutine the proxy started

	dropped atomic.Int64

	// mutable, under mu
	mu     sync.Mutex
	mode   Mode
	links  map[*link]struct{}
	closed bool
}

// link is one client connection and, once dialled, its upstream one.
type link struct {
	client net.Conn
	up     net.Conn // under Proxy.mu; nil until dialled, and for a held link
	closed bool     // under Proxy.mu: both ends have been closed
	// dark: the link lived through a blackhole; nothing more is forwarded
	// and Restore closes it. Read by the copy loops without the lock.
	dark atomic.Bool
}

// Listen starts a proxy on addr ("" = a free port on 127.0.0.1) that
// forwards each connection to upstream ("host:port"). A nil log discards.
func Listen(addr, upstream string, log *slog.Logger) (*Proxy, error) {
	return ListenFrom(addr, upstream, "", log)
}

// ListenFrom is Listen with the upstream connections made from the local
// address source (an IP; "" lets the system choose). The simulator gives
// each box its own loopback address (127.0.0.2, 127.0.0.3, ...: Linux routes
// all of 127/8 to the loopback device), so that the broker sees boxes at
// different addresses as in the field, and its per-address login back-off
// treats fifty boxes starting at once as fifty boxes, not as one address
// trying fifty passwords.
func ListenFrom(addr, upstream, source string, log *slog.Logger) (*Proxy, error) {
	var src *net.TCPAddr
	if source != "" {
		ip := net.ParseIP(source)
		if ip == nil {
			return nil, fmt.Errorf("netcut: listen: source address %q is not an IP", source)
		}
		src = &net.TCPAddr{IP: ip}
	}
	if upstream == "" {
		return nil, errors.New("netcut: listen: no upstream address")
	}
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return nil, fmt.Errorf("netcut: listen: upstream %q: %w", upstream, err)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("netcut: listen on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln:       ln,
		upstream: upstream,
		source:   src,
		log:      log.With("proxy", ln.Addr().String(), "upstream", upstream),
		ctx:      ctx,
		cancel:   cancel,
		links:    map[*link]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's "host:port", for the box's broker URL.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream is the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// Cut fails the link in the given mode, at once for live connections. A cut
// link may be cut again in another mode: Reset after Blackhole closes the
// held connections too. An unknown mode is an error and changes nothing.
func (p *Proxy) Cut(mode Mode) error {
	if mode != Reset && mode != Blackhole {
		return fmt.Errorf("netcut: cut: unknown mode %d", int(mode))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("netcut: cut: proxy closed")
	}
	p.mode = mode
	for l := range p.links {
		if mode == Reset {
			l.abort()
			p.forget(l)
		} else {
			l.dark.Store(true)
		}
	}
	p.log.Info("netcut: link cut", "mode", mode.String(), "conns", len(p.links))
	return nil
}

// Restore ends a cut: connections that lived through a blackhole are closed
// (their lost bytes left them out of step) and new ones are forwarded.
// Restoring a link that is not cut does nothing.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == 0 {
		return
	}
	n := 0
	for l := range p.links {
		if l.dark.Load() {
			p.forget(l)
			n++
		}
	}
	p.log.Info("netcut: link restored", "was", p.mode.String(), "closed", n)
	p.mode = 0
}

// IsCut says whether the link is cut.
func (p *Proxy) IsCut() bool { return p.CutMode() != 0 }

// CutMode is how the link is cut, 0 when it is not.
func (p *Proxy) CutMode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Conns is the number of open client connections, held ones included.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Dropped is how many bytes blackholes have swallowed so far, both
// directions together.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// Close stops the listener, closes every connection and waits for the
// proxy's goroutines to end. Calling it again does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for l := range p.links {
		p.forget(l)
	}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("netcut: close listener: %w", err)
	}
	return nil
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Warn("netcut: accept failed, retrying", "err", err, "in", acceptRetry)
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(acceptRetry):
			}
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve runs one client connection to its end.
func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	l := &link{client: c}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		_ = c.Close()
		return
	case p.mode == Reset:
		p.mu.Unlock()
		abort(c)
		_ = c.Close()
		return
	case p.mode == Blackhole:
		// Held silent: never dialled, read and dropped until Restore or
		// Close closes it, or the box gives up on it.
		l.dark.Store(true)
		p.links[l] = struct{}{}
		p.mu.Unlock()
		p.log.Debug("netcut: connection held in blackhole", "client", c.RemoteAddr().String())
		_, _ = io.Copy(gate{p: p, l: l, w: io.Discard}, c)
		p.drop(l)
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()

	d := net.Dialer{Timeout: dialTimeout}
	if p.source != nil {
		d.LocalAddr = p.source
	}
	up, err := d.DialContext(p.ctx, "tcp", p.upstream)
	if err != nil {
		if p.ctx.Err() == nil { // not Close
			p.log.Warn("netcut: upstream refused, closing the client's connection", "client", c.RemoteAddr().String(), "err", err)
		}
		p.drop(l)
		return
	}
	p.mu.Lock()
	if l.closed { // cut (Reset) or Close while dialling
		if p.mode == Reset {
			abort(up)
		}
		p.mu.Unlock()
		_ = up.Close()
		return
	}
	l.up = up
	p.mu.Unlock()
	p.log.Debug("netcut: connection open", "client", c.RemoteAddr().String())

	done := make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(done)
		p.pipe(l, up, c)
	}()
	p.pipe(l, c, up)
	<-done
	p.drop(l)
}

// pipe copies src to dst until src ends, dropping what it reads while the
// link is dark. An end of file is passed on as a half-close, except into a
// blackhole (the link then waits for Restore); an error closes the whole
// link, so that the other direction ends too.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	_, err := io.Copy(gate{p: p, l: l, w: dst}, src)
	if err == nil {
		if l.dark.Load() {
			return
		}
		if hc, ok := dst.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
			return
		}
	}
	p.mu.Lock()
	p.closeLink(l)
	p.mu.Unlock()
}

// drop closes l and forgets it.
func (p *Proxy) drop(l *link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forget(l)
}

// forget closes l and takes it out of Conns at once. Called with mu held.
func (p *Proxy) forget(l *link) {
	p.closeLink(l)
	delete(p.links, l)
}

// closeLink closes both ends of l. Called with mu held; closing a socket
// does not block.
func (p *Proxy) closeLink(l *link) {
	if l.closed {
		return
	}
	l.closed = true
	_ = l.client.Close()
	if l.up != nil {
		_ = l.up.Close()
	}
}

// abort makes the next close of l's connections a reset (RST) rather than
// an orderly end (FIN), as a link that goes down hard looks to both ends.
// Called with mu held.
func (l *link) abort() {
	abort(l.client)
	if l.up != nil {
		abort(l.up)
	}
}

func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// gate is the writer end of one direction of a link: it writes through
// while the link is lit and swallows everything once it is dark. It has no
// ReadFrom, so io.Copy hands it every chunk and none bypasses the check.
type gate struct {
	p *Proxy
	l *link
	w io.Writer
}

func (g gate) Write(b []byte) (int, error) {
	if g.l.dark.Load() {
		g.p.dropped.Add(int64(len(b)))
		return len(b), nil
	}
	return g.w.Write(b)
}
