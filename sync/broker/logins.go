package broker

import (
	"net/netip"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/sync/internal/retry"
)

// The login guard's bounds. doc.go ("Failed logins") states what they give:
// how many guesses an address gets, and how long a box can be kept out.
const (
	// userFreeFailures is how many wrong passwords one user may send from
	// one address before it backs off: a box with a stale password, or a
	// person typing one, gets a few tries at full speed.
	userFreeFailures = 5
	// userMaxBackoff caps the back-off of one user at one address. It is
	// what a box behind the same address as an attacker who guesses its
	// password waits at most after the attacker stops.
	userMaxBackoff = 5 * time.Minute
	// userForget: a user at an address with no failure for this long starts
	// again from zero. Longer than userMaxBackoff, so that a client that
	// keeps retrying a wrong password stays paced.
	userForget = time.Hour

	// addrFreeFailures is how many failures an address may cause, counted
	// over all users, before every login from it backs off. Only each
	// user's first userFreeFailures failures count here, so one box with a
	// wrong password (at most 5) never locks out the other boxes behind the
	// same NAT; someone trying many users from one address is stopped
	// after 20.
	addrFreeFailures = 20
	// addrMaxBackoff caps an address's back-off: in steady state one
	// password check a minute, about 1 440 a day.
	addrMaxBackoff = time.Minute
	// addrForget: an address with no counted failure for this long starts
	// again from zero.
	addrForget = 10 * time.Minute

	// firstBackoff is the first refusal period; each further failure
	// doubles it, up to the caps above.
	firstBackoff = time.Second

	// maxTracked bounds each failure table (user at address; address), so
	// that an attacker with many addresses cannot grow the broker's memory:
	// an entry is a key of at most about 170 bytes and a count, some 250
	// bytes with the map's overhead, so about 1 MB per table when full.
	// When a table is full, forgotten entries go first, then random ones.
	maxTracked = 4096

	// maxPasswordChecks is how many bcrypt comparisons run at once for
	// logins not known at their address, each about 64 ms of one core:
	// failed logins from many addresses at once can take at most two cores
	// (the Pi 4 has four). With the reservedChecks slot, at most three
	// checks run at once, and the bridge keeps a core.
	maxPasswordChecks = 2
	// checkSlotWait is how long a login waits for a free check before it is
	// refused unchecked. A box refused so retries later (paho reconnects).
	// For a user not known at its address (below), the refusal counts as a
	// failure of the address: an address whose logins keep waiting for
	// slots that others hold backs off like one that fails, and does not
	// keep a place in the queue for nothing.
	checkSlotWait = time.Second
	// reservedChecks are check slots kept, beyond maxPasswordChecks, for
	// users known at their address: a user that has logged in from that
	// address since the broker started (the cloud's bridge, a box that
	// reconnects). Failed logins from elsewhere cannot take them, so the
	// bridge and the boxes already seen still log in while fresh addresses
	// keep the other slots busy. An attacker needs the user's password to
	// become known, and then gains nothing: the user's own back-off still
	// paces its failures.
	reservedChecks = 1
)

// loginGuard makes failed password logins cost the one who fails: after a
// few failures for a user from an address, or from an address overall,
// logins from there are refused without a bcrypt check for a time that
// grows with each further failure; and no more than maxPasswordChecks
// checks run at once, plus reservedChecks for users known at their address.
type loginGuard struct {
	now      func() time.Time // injected by tests
	slotWait time.Duration
	slots    chan struct{} // one token per running check
	reserved chan struct{} // the same, for users known at their address

	mu    sync.Mutex
	users failureTable        // key: user + " " + address
	addrs failureTable        // key: address
	known map[string]struct{} // user + " " + address that logged in; at most maxTracked
}

func newLoginGuard(now func() time.Time) *loginGuard {
	return &loginGuard{
		now:      now,
		slotWait: checkSlotWait,
		slots:    make(chan struct{}, maxPasswordChecks),
		reserved: make(chan struct{}, reservedChecks),
		known:    map[string]struct{}{},
		users:    failureTable{free: userFreeFailures, maxWait: userMaxBackoff, forget: userForget, m: map[string]*failures{}},
		addrs:    failureTable{free: addrFreeFailures, maxWait: addrMaxBackoff, forget: addrForget, m: map[string]*failures{}},
	}
}

// refusal is why a login was refused, for the security log.
type refusal struct {
	reason string
	args   []any
}

// checkPassword checks user's password from remote (host:port), guarded.
// nil means it matched. A refusal in back-off or for want of a check slot
// costs no bcrypt comparison.
func (h *authHook) checkPassword(user, remote, pw string) *refusal {
	hash, ok := h.lookup(user)
	if user == "" || !ok || pw == "" {
		// No comparison is made, so nothing to pace: unknown user names
		// and empty passwords cost the broker nothing.
		return &refusal{reason: "bad user name or password"}
	}
	g := h.logins
	addr := addressKey(remote)
	if wait := g.backoff(user, addr); wait > 0 {
		return &refusal{reason: "too many failed logins; backing off, password not checked",
			args: []any{"address", addr, "retry_in", wait.Round(time.Second).String()}}
	}
	known := g.isKnown(user, addr)
	release := g.acquire(known)
	if release == nil {
		if !known {
			g.timedOut(addr)
		}
		return &refusal{reason: "too many password checks at once; password not checked"}
	}
	ok = CheckPassword(hash, pw)
	release()
	if !ok {
		g.failed(user, addr)
		return &refusal{reason: "bad user name or password"}
	}
	g.succeeded(user, addr)
	return nil
}

// backoff is how long logins of user from addr are still refused unchecked.
func (g *loginGuard) backoff(user, addr string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	return max(g.users.wait(user+" "+addr, now), g.addrs.wait(addr, now))
}

// acquire takes a check slot, a reserved one too if known, waiting at most
// slotWait. It returns the slot's release, or nil if none came free.
func (g *loginGuard) acquire(known bool) (release func()) {
	free := func(c chan struct{}) func() { return func() { <-c } }
	var reserved chan struct{} // nil: never ready
	if known {
		reserved = g.reserved
	}
	select {
	case g.slots <- struct{}{}:
		return free(g.slots)
	default:
	}
	select {
	case reserved <- struct{}{}:
		return free(reserved)
	default:
	}
	t := time.NewTimer(g.slotWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return free(g.slots)
	case reserved <- struct{}{}:
		return free(reserved)
	case <-t.C:
		return nil
	}
}

// isKnown says whether user has logged in from addr since the start.
func (g *loginGuard) isKnown(user, addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.known[user+" "+addr]
	return ok
}

// timedOut counts a login that found no check slot against its address,
// like a failure: after addrFreeFailures of them (and failures), the
// address backs off.
func (g *loginGuard) timedOut(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.addrs.add(addr, g.now())
}

// failed counts a wrong password. The address counts only the user's first
// failures: those after are paced by the user's own back-off already.
func (g *loginGuard) failed(user, addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if g.users.add(user+" "+addr, now) <= userFreeFailures {
		g.addrs.add(addr, now)
	}
}

// succeeded forgets user's failures at addr. The address's count stays: a
// success for one user must not buy guesses at another (someone holding
// one box's password could otherwise reset the count between guesses).
//
// It makes user known at addr: a table of at most maxTracked entries that
// only a right password adds to; when full, random entries go (Go's map
// order), which costs them only the reserved slot until they log in again.
func (g *loginGuard) succeeded(user, addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := user + " " + addr
	delete(g.users.m, key)
	if _, ok := g.known[key]; !ok && len(g.known) >= maxTracked {
		for k := range g.known {
			if len(g.known) < maxTracked*7/8 {
				break
			}
			delete(g.known, k)
		}
	}
	g.known[key] = struct{}{}
}

// addressKey is what failures are counted by: the IP address, or for IPv6
// its /64, which one subscriber usually holds whole. A remote that is no
// ip:port (a test's in-memory pipe) counts as itself.
func addressKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	a := ap.Addr().Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// failures is one key's count of failures and the time of the last.
type failures struct {
	n    int
	last time.Time
}

// failureTable counts failures per key: free of them cost nothing, each
// further one makes the key wait firstBackoff, doubled per failure up to
// maxWait, after the last; a key quiet for forget starts again.
type failureTable struct {
	free    int
	maxWait time.Duration
	forget  time.Duration
	m       map[string]*failures
}

// wait is how long key is still in back-off at now.
func (t *failureTable) wait(key string, now time.Time) time.Duration {
	f := t.m[key]
	if f == nil || f.n < t.free || now.Sub(f.last) >= t.forget {
		return 0
	}
	// The ceiling, not a draw: the wait is recomputed at every login, and
	// must be the same each time.
	d := retry.Policy{Base: firstBackoff, Cap: t.maxWait}.Ceiling(f.n - t.free + 1)
	return max(0, f.last.Add(d).Sub(now))
}

// add counts a failure of key at now and returns the count.
func (t *failureTable) add(key string, now time.Time) int {
	f := t.m[key]
	switch {
	case f == nil:
		t.makeRoom(now)
		f = &failures{}
		t.m[key] = f
	case now.Sub(f.last) >= t.forget:
		f.n = 0
	}
	f.n++
	f.last = now
	return f.n
}

// makeRoom keeps the table under maxTracked entries: forgotten ones go
// first, then random ones (Go's map order) down to 7/8 full, so that the
// sweep runs once per maxTracked/8 new keys, not for each. Dropping a live
// entry gives that key its free failures again; the check slots still
// bound what that costs. It runs only after a failed check, which cost far
// more than the sweep.
func (t *failureTable) makeRoom(now time.Time) {
	if len(t.m) < maxTracked {
		return
	}
	for k, f := range t.m {
		if now.Sub(f.last) >= t.forget {
			delete(t.m, k)
		}
	}
	for k := range t.m {
		if len(t.m) <= maxTracked*7/8 {
			break
		}
		delete(t.m, k)
	}
}
