package broker

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/smartbox-oss/smartbox/box/boxtest"
)

// countChecks replaces the bcrypt comparison for the test: a password is
// right when it is "right", and every call is counted. Tests that use it do
// not run in parallel (compareHash is package state).
func countChecks(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	old := compareHash
	compareHash = func(_, pw []byte) error {
		n.Add(1)
		if string(pw) == "right" {
			return nil
		}
		return bcrypt.ErrMismatchedHashAndPassword
	}
	t.Cleanup(func() { compareHash = old })
	return &n
}

// guardedHook is an auth hook whose users are box-* with password "right".
func guardedHook(clock *boxtest.Clock) *authHook {
	return &authHook{
		cloud:  "cloud",
		lookup: func(name string) (string, bool) { return "$2a$04$hash-of-right", true },
		logins: newLoginGuard(clock.Now),
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// After userFreeFailures wrong passwords from one address, the next login
// from there is refused without a bcrypt check, right password or not; the
// same box from another address still gets in; the back-off expires, and
// grows with each failure after it.
func TestLoginBackoffPerUserAndAddress(t *testing.T) {
	checks := countChecks(t)
	clock := boxtest.NewClock(time.Unix(1_800_000_000, 0))
	h := guardedHook(clock)
	const attacker, box = "203.0.113.7:40000", "198.51.100.2:50000"

	for i := range userFreeFailures {
		require.NotNil(t, h.checkPassword("box-a", attacker, fmt.Sprint("guess", i)))
	}
	require.EqualValues(t, userFreeFailures, checks.Load())

	r := h.checkPassword("box-a", attacker, "guess")
	require.NotNil(t, r)
	require.Contains(t, r.reason, "backing off")
	require.EqualValues(t, userFreeFailures, checks.Load(), "refused in back-off without a bcrypt check")
	require.NotNil(t, h.checkPassword("box-a", "203.0.113.7:40001", "right"),
		"a right password from the address in back-off (another port) is refused too")
	require.EqualValues(t, userFreeFailures, checks.Load())

	require.Nil(t, h.checkPassword("box-a", box, "right"), "the box from its own address gets in")
	require.EqualValues(t, userFreeFailures+1, checks.Load())

	// The first back-off is firstBackoff; one more failure doubles it.
	clock.Advance(firstBackoff - time.Millisecond)
	require.NotNil(t, h.checkPassword("box-a", attacker, "guess"))
	require.EqualValues(t, userFreeFailures+1, checks.Load())
	clock.Advance(time.Millisecond)
	require.NotNil(t, h.checkPassword("box-a", attacker, "guess"), "checked, and wrong")
	require.EqualValues(t, userFreeFailures+2, checks.Load())
	clock.Advance(2*firstBackoff - time.Millisecond)
	require.NotNil(t, h.checkPassword("box-a", attacker, "right"))
	require.EqualValues(t, userFreeFailures+2, checks.Load(), "still in the doubled back-off")
	clock.Advance(time.Millisecond)
	require.Nil(t, h.checkPassword("box-a", attacker, "right"), "back-off over: the right password works")

	// A success forgets that user's failures at that address.
	require.NotNil(t, h.checkPassword("box-a", attacker, "guess"))
	require.Zero(t, h.logins.backoff("box-a", addressKey(attacker)))
}

// The back-off is capped, and forgotten after a quiet period.
func TestLoginBackoffCapAndForget(t *testing.T) {
	checks := countChecks(t)
	clock := boxtest.NewClock(time.Unix(1_800_000_000, 0))
	h := guardedHook(clock)
	const attacker = "203.0.113.7:40000"
	addr := addressKey(attacker)

	// An attacker who waits out every back-off: the wait doubles to the
	// cap and stays there.
	var waits []time.Duration
	for range 40 {
		require.NotNil(t, h.checkPassword("box-a", attacker, "guess"))
		w := h.logins.backoff("box-a", addr)
		waits = append(waits, w)
		clock.Advance(w)
	}
	require.Equal(t, time.Duration(0), waits[userFreeFailures-2])
	require.Equal(t, firstBackoff, waits[userFreeFailures-1])
	require.Equal(t, 2*firstBackoff, waits[userFreeFailures])
	require.Equal(t, userMaxBackoff, waits[len(waits)-1])
	require.EqualValues(t, 40, checks.Load(), "each waited-out attempt is one check")

	require.NotNil(t, h.checkPassword("box-a", attacker, "guess"))
	clock.Advance(userForget)
	require.Zero(t, h.logins.backoff("box-a", addr), "forgotten after a quiet hour")
	for range userFreeFailures - 1 {
		require.NotNil(t, h.checkPassword("box-a", attacker, "guess"))
	}
	require.Zero(t, h.logins.backoff("box-a", addr), "counting starts again from zero")
}

// Someone trying many users from one address backs off as a whole after
// addrFreeFailures; one box with a wrong password never puts its address
// in back-off, however long it retries.
func TestLoginBackoffPerAddress(t *testing.T) {
	checks := countChecks(t)
	clock := boxtest.NewClock(time.Unix(1_800_000_000, 0))
	h := guardedHook(clock)

	const nat = "192.0.2.1:1000"
	for i := range 500 {
		require.NotNil(t, h.checkPassword("box-stale", nat, "old password"))
		clock.Advance(h.logins.backoff("box-stale", addressKey(nat)) + time.Second)
		require.Nil(t, h.checkPassword(fmt.Sprint("box-", i), nat, "right"), "a neighbour behind the same NAT, try %d", i)
	}
	require.NotNil(t, h.checkPassword("box-stale", nat, "old password"))
	require.Equal(t, userMaxBackoff, h.logins.backoff("box-stale", addressKey(nat)), "the stale box itself stays paced")

	const sprayer = "203.0.113.9:1"
	before := checks.Load()
	for i := range addrFreeFailures {
		require.NotNil(t, h.checkPassword(fmt.Sprint("box-", i%4), sprayer, "guess"))
	}
	require.Equal(t, before+addrFreeFailures, checks.Load())
	r := h.checkPassword("box-new", sprayer, "right")
	require.NotNil(t, r, "the address is in back-off for every user")
	require.Contains(t, r.reason, "backing off")
	require.Equal(t, before+addrFreeFailures, checks.Load())
	require.Nil(t, h.checkPassword("box-new", "203.0.113.10:1", "right"), "another address is not")

	// IPv6: one /64 is one address.
	for i := range addrFreeFailures {
		require.NotNil(t, h.checkPassword(fmt.Sprint("box-", i%4), fmt.Sprintf("[2001:db8:0:1::%x]:1", i+1), "guess"))
	}
	require.NotNil(t, h.checkPassword("box-new", "[2001:db8:0:1:ffff::1]:1", "right"))
	require.Nil(t, h.checkPassword("box-new", "[2001:db8:0:2::1]:1", "right"))
}

// An attacker with many addresses cannot grow the failure tables past
// maxTracked entries.
func TestLoginTablesBounded(t *testing.T) {
	countChecks(t)
	clock := boxtest.NewClock(time.Unix(1_800_000_000, 0))
	h := guardedHook(clock)
	for i := range maxTracked + maxTracked/2 {
		h.checkPassword("box-a", fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255), "guess")
	}
	require.LessOrEqual(t, len(h.logins.users.m), maxTracked)
	require.LessOrEqual(t, len(h.logins.addrs.m), maxTracked)
}

// No more than maxPasswordChecks bcrypt checks run at once; a login that
// cannot get a slot within checkSlotWait is refused without one.
func TestPasswordChecksCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running, most, calls atomic.Int64
		release := make(chan struct{})
		old := compareHash
		compareHash = func(_, _ []byte) error {
			calls.Add(1)
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			<-release
			running.Add(-1)
			return bcrypt.ErrMismatchedHashAndPassword
		}
		defer func() { compareHash = old }()
		h := guardedHook(boxtest.NewClock(time.Unix(1_800_000_000, 0)))

		const logins = 10
		results := make(chan *refusal, logins)
		for i := range logins {
			go func() { results <- h.checkPassword(fmt.Sprint("box-", i), fmt.Sprintf("10.0.0.%d:1", i), "guess") }()
		}
		synctest.Wait()
		require.EqualValues(t, maxPasswordChecks, running.Load(), "two checks run, the others wait for a slot")

		time.Sleep(checkSlotWait) // fake time: the waiters give up
		busy := 0
		for range logins - maxPasswordChecks {
			r := <-results
			require.Contains(t, r.reason, "at once")
			busy++
		}
		close(release)
		for range maxPasswordChecks {
			require.Contains(t, (<-results).reason, "bad user name or password")
		}
		require.EqualValues(t, maxPasswordChecks, most.Load())
		require.EqualValues(t, maxPasswordChecks, calls.Load(), "the refused logins cost no check")
		require.Equal(t, logins-maxPasswordChecks, busy)
	})
}

func TestAddressKey(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.1:1883":              "192.0.2.1",
		"[::ffff:192.0.2.1]:1883":     "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:1883": "2001:db8:1:2::/64",
		"pipe":                        "pipe",
	} {
		require.Equal(t, want, addressKey(remote), remote)
	}
}

// fillChecks holds every ordinary check slot (as logins from many fresh
// addresses would) until the test ends.
func fillChecks(t *testing.T, g *loginGuard) {
	for range maxPasswordChecks {
		g.slots <- struct{}{}
	}
	t.Cleanup(func() {
		for range maxPasswordChecks {
			<-g.slots
		}
	})
}

// Review finding 9. While others hold the check slots, a login that waits
// for one in vain costs its address like a failure: after the address's
// free failures it backs off, refused at once, instead of queueing again
// for free. A user known at its address (the cloud, a box that logged in
// from there before) gets the reserved slot and logs in meanwhile.
func TestSlotTimeoutsCountAndKnownUsersGetIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		checks := countChecks(t)
		clock := boxtest.NewClock(time.Unix(1_800_000_000, 0))
		h := guardedHook(clock)
		g := h.logins
		require.Nil(t, h.checkPassword("cloud", "127.0.0.1:5000", "right"))
		require.Nil(t, h.checkPassword("box-k", "10.0.0.9:5000", "right"))
		fillChecks(t, g)

		for i := range addrFreeFailures {
			start := time.Now()
			r := h.checkPassword(fmt.Sprint("box-", i), "10.6.6.6:1", "guess")
			require.Contains(t, r.reason, "at once", "login %d waits for a slot", i)
			require.Equal(t, checkSlotWait, time.Since(start))
		}
		start := time.Now()
		r := h.checkPassword("box-x", "10.6.6.6:1", "guess")
		require.Contains(t, r.reason, "backing off", "the address's free failures are spent")
		require.Zero(t, time.Since(start), "refused without waiting for a slot")

		// Known users get in through the reserved slot; the cloud from its
		// own address only.
		require.Nil(t, h.checkPassword("cloud", "127.0.0.1:5001", "right"))
		require.Nil(t, h.checkPassword("box-k", "10.0.0.9:5001", "right"))
		require.Contains(t, h.checkPassword("cloud", "10.6.6.7:1", "right").reason, "at once",
			"the cloud user from an address it never logged in from is not known there")
		require.EqualValues(t, 4, checks.Load(), "only the known users' logins were checked")

		// A known user's wait for a slot is not held against its address.
		g.reserved <- struct{}{}
		for range addrFreeFailures + 1 {
			require.Contains(t, h.checkPassword("box-k", "10.0.0.9:5002", "right").reason, "at once")
		}
		<-g.reserved
		require.Nil(t, h.checkPassword("box-k", "10.0.0.9:5003", "right"))
	})
}
