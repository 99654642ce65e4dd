package bookings

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// bodySlots bounds the webhook bodies being read: at most total at once,
// and at most perAddr for one client address. The total bounds memory; the
// share per address keeps one client (who needs no valid signature to have
// a body read: the HMAC needs the body) from holding every slot while
// Fleetio's deliveries are refused.
type bodySlots struct {
	total   chan struct{}
	perAddr int
	proxies []netip.Prefix

	mu     sync.Mutex
	byAddr map[netip.Prefix]int
}

func newBodySlots(total, perAddr int, proxies []netip.Prefix) *bodySlots {
	return &bodySlots{total: make(chan struct{}, total), perAddr: perAddr, proxies: proxies,
		byAddr: map[netip.Prefix]int{}}
}

// take reserves a slot for a body from client; ok false (and nothing
// reserved) when the client's share, or every slot, is taken. perAddr says
// which. release gives the slot back.
func (s *bodySlots) take(client netip.Prefix) (release func(), ok, perAddr bool) {
	s.mu.Lock()
	if s.byAddr[client] >= s.perAddr {
		s.mu.Unlock()
		return nil, false, true
	}
	s.byAddr[client]++
	s.mu.Unlock()
	select {
	case s.total <- struct{}{}:
	default:
		s.give(client)
		return nil, false, false
	}
	return func() { <-s.total; s.give(client) }, true, false
}

func (s *bodySlots) give(client netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byAddr[client]--; s.byAddr[client] <= 0 {
		delete(s.byAddr, client)
	}
}

func (s *bodySlots) inFlight() int { return len(s.total) }

// ipv6Share is the prefix that counts as one IPv6 client: a subscriber or a
// cloud VM is handed a /64 (2^64 addresses), so counting single addresses
// would give one of them as many shares as it likes.
const ipv6Share = 64

// client is who a request's body slot is counted against: the address that
// connected, or, when that is one of the trusted proxies, the address the
// proxy says it relayed for (the right-most X-Forwarded-For entry that is
// not itself a trusted proxy: what a client writes into the header itself
// is to the left of what its proxy appends, so it is never taken). IPv6 is
// counted by its /64. An address that cannot be read is counted as one
// client (the zero prefix): it shares a share with every other such.
func (s *bodySlots) client(r *http.Request) netip.Prefix {
	addr := remoteAddr(r.RemoteAddr)
	if s.trusted(addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // not what a proxy of ours wrote: stay with the proxy's address
			}
			if a = a.Unmap().WithZone(""); !s.trusted(a) {
				addr = a
				break
			}
		}
	}
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	bits := addr.BitLen()
	if addr.Is6() {
		bits = ipv6Share
	}
	p, _ := addr.Prefix(bits)
	return p
}

func (s *bodySlots) trusted(a netip.Addr) bool {
	for _, p := range s.proxies {
		if a.IsValid() && p.Contains(a) {
			return true
		}
	}
	return false
}

// remoteAddr is the address of an http.Request's RemoteAddr ("ip:port"),
// zero if it is not one.
func remoteAddr(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}
