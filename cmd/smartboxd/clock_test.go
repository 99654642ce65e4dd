package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/box/boxtest"
	"github.com/smartbox-oss/smartbox/store"
)

// seedWindowed creates a store in dir for demo-box with one key in slot 1
// and a booking for it with the window [from, until) (zero: open), and has
// the store remember seen as the latest trusted time (zero: nothing).
func seedWindowed(t *testing.T, dir string, from, until, seen time.Time) {
	t.Helper()
	s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{BoxID: "demo-box", Slots: 12, Logger: testLogger(t)})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	g := box.Grant{ID: "booking-1", Kind: box.KindBooking, KeyIDs: []string{"key-1"}, From: from, Until: until, Source: "test"}
	_, err = s.Apply(store.Batch{FromRevision: 0, ToRevision: 1,
		Keys:   []box.Key{{ID: "key-1", Slot: 1, FobUID: "01000734E0"}},
		Grants: []box.GrantPut{{Grant: g, Code: testPIN}}})
	require.NoError(t, err)
	if !seen.IsZero() {
		_, err = s.RaiseClockFloor(seen)
		require.NoError(t, err)
	}
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func openTestStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "box.db"), store.Options{BoxID: "demo-box", Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestClockFloorSources: the floor is the latest of its sources and names
// it; the source date is there when nothing else is.
func TestClockFloorSources(t *testing.T) {
	s := openTestStore(t)
	clock := boxtest.NewClock(date(2027, 1, 1))
	f, err := newClockFloor(s, clock, testLogger(t), floorSource{sourceFloor, "source"}, floorSource{time.Time{}, "build_time"}, floorSource{time.Time{}, "config"})
	require.NoError(t, err)
	floor, from := f.Floor()
	require.Equal(t, sourceFloor, floor)
	require.Equal(t, "source", from)

	_, err = s.RaiseClockFloor(date(2027, 5, 1))
	require.NoError(t, err)
	f, err = newClockFloor(s, clock, testLogger(t), floorSource{sourceFloor, "source"}, floorSource{date(2027, 3, 1), "config"})
	require.NoError(t, err)
	floor, from = f.Floor()
	require.Equal(t, date(2027, 5, 1), floor)
	require.Equal(t, "store", from)
	require.False(t, f.Trusted(), "2027-01 is before what the store saw")

	f, err = newClockFloor(s, clock, testLogger(t), floorSource{sourceFloor, "source"}, floorSource{date(2027, 6, 1), "config"})
	require.NoError(t, err)
	_, from = f.Floor()
	require.Equal(t, "config", from)

	// (A plain go build's build time, the source date: buildinfo's tests.)
}

// TestClockFloorRemembers: a trusted clock is remembered, but never further
// than the real time passed since start (a clock jumped into the future is
// not remembered as the floor); an untrusted one is not remembered at all.
func TestClockFloorRemembers(t *testing.T) {
	s := openTestStore(t)
	base := date(2027, 1, 1)
	clock := boxtest.NewClock(base.Add(time.Hour))
	f, err := newClockFloor(s, clock, testLogger(t), floorSource{base, "config"})
	require.NoError(t, err)
	var elapsed time.Duration
	f.elapsed = func() time.Duration { return elapsed }

	elapsed = 10 * time.Minute
	require.NoError(t, f.remember())
	requireStoreFloor(t, s, base.Add(10*time.Minute), "capped by the real time passed")

	elapsed = 20 * time.Minute
	clock.Set(base.Add(15 * time.Minute))
	require.NoError(t, f.remember())
	requireStoreFloor(t, s, base.Add(15*time.Minute), "the clock, when behind the cap")

	// The clock jumps ten years ahead: only the real time passed counts.
	clock.Set(base.AddDate(10, 0, 0))
	elapsed = 25 * time.Minute
	require.NoError(t, f.remember())
	requireStoreFloor(t, s, base.Add(25*time.Minute), "a future clock is not remembered")
	floor, from := f.Floor()
	require.Equal(t, base.Add(25*time.Minute), floor)
	require.Equal(t, "store", from)

	// Untrusted: nothing remembered, however long it runs.
	clock.Set(date(1970, 1, 1))
	elapsed = 48 * time.Hour
	require.NoError(t, f.remember())
	requireStoreFloor(t, s, base.Add(25*time.Minute), "an untrusted clock vouches for nothing")
}

func requireStoreFloor(t *testing.T, s *store.Store, want time.Time, msg string) {
	t.Helper()
	got, err := s.ClockFloor()
	require.NoError(t, err)
	require.True(t, want.Equal(got), "%s: want %s, got %s", msg, want, got)
}

// TestClockFloorCheck: a clock that goes back below the floor reached while
// running (but not below the controller's floor at start) stops the
// daemon; a small NTP step does not.
func TestClockFloorCheck(t *testing.T) {
	s := openTestStore(t)
	base := date(2027, 1, 1)
	clock := boxtest.NewClock(base.Add(3 * time.Hour))
	f, err := newClockFloor(s, clock, testLogger(t), floorSource{base, "config"})
	require.NoError(t, err)
	f.elapsed = func() time.Duration { return 3 * time.Hour }
	require.NoError(t, f.remember())
	require.NoError(t, f.check())

	clock.Set(base.Add(3*time.Hour - 30*time.Second))
	require.NoError(t, f.check(), "within the tolerance")
	clock.Set(base.Add(time.Hour))
	require.ErrorIs(t, f.check(), errClockWentBack)
	clock.Set(base.Add(-time.Hour))
	require.NoError(t, f.check(), "below the start floor the controller refuses anyway")
}

// TestClockWentBackRestarts: a running box whose clock goes back below the
// floor it reached stops with an error, and the restarted box does not
// trust its clock: a windowed booking is refused (clock_untrusted).
func TestClockWentBackRestarts(t *testing.T) {
	dir := t.TempDir()
	base := date(2027, 1, 1)
	seedWindowed(t, dir, base, base.AddDate(1, 0, 0), time.Time{})
	cfg := simConfig(t, dir)
	cfg.Clock.Floor = base
	clock := boxtest.NewClock(base.Add(30 * 24 * time.Hour))
	d, err := newDaemon(cfg, daemonOptions{Log: testLogger(t), Clock: clock})
	require.NoError(t, err)
	// A month of running, as far as the floor can tell.
	d.floor.elapsed = func() time.Duration { return 30 * 24 * time.Hour }
	done := make(chan error, 1)
	go func() { done <- d.run(t.Context()) }()
	require.Eventually(t, func() bool { return hasEvent(t, d.store, box.EventBoxStarted, 0) }, waitFor, 10*time.Millisecond)
	require.NoError(t, d.floor.remember())

	// The clock goes back three weeks: still after the start floor (the
	// controller alone would trust it), but before what the box has seen.
	clock.Set(base.Add(7 * 24 * time.Hour))
	select {
	case err := <-done:
		require.ErrorIs(t, err, errClockWentBack)
	case <-time.After(waitFor):
		t.Fatal("the daemon did not stop when its clock went back")
	}
	requireAllLocked(t, d.sim.slots)

	d, err = newDaemon(simConfig(t, dir), daemonOptions{Log: testLogger(t), Clock: clock})
	require.NoError(t, err)
	floor, from := d.floor.Floor()
	require.Equal(t, "store", from)
	require.Equal(t, base.Add(30*24*time.Hour), floor)
	ctx, cancel := context.WithCancel(t.Context())
	done = make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	require.Eventually(t, func() bool { return hasEvent(t, d.store, box.EventClockUntrusted, 0) }, waitFor, 10*time.Millisecond)
	require.NoError(t, d.sim.keypad.Type(testPIN+"#", 60*time.Millisecond, 40*time.Millisecond))
	require.Eventually(t, func() bool {
		evs, err := d.store.Events(0, 0)
		require.NoError(t, err)
		for _, e := range evs {
			if e.Type == box.EventCodeRefused && e.Reason == box.ReasonClockUntrusted {
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond)
	require.False(t, d.sim.slots.Released(1))
	cancel()
	require.NoError(t, <-done)
}

// plainBinary builds smartboxd as a plain `go build` would: no -ldflags
// build time and no VCS stamp.
func plainBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "smartboxd")
	out, err := exec.Command("go", "build", "-buildvcs=false", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// binaryRun is the plain binary running on the sim profile with a console.
type binaryRun struct {
	consoleIO
	cmd *exec.Cmd
}

func startBinary(t *testing.T, bin string, args ...string) *binaryRun {
	t.Helper()
	b := &binaryRun{cmd: exec.Command(bin, args...)}
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	var err error
	b.stdin, err = b.cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, b.cmd.Start())
	t.Cleanup(func() { _ = b.cmd.Process.Kill(); _ = b.cmd.Wait() })
	if !assertEventually(waitFor, func() bool { return strings.Contains(b.stdout.String(), `Type "help"`) }) {
		t.Fatalf("no console prompt; stderr:\n%s", b.stderr.String())
	}
	return b
}

// typePIN types the booking's PIN at the console and waits for want. A PIN
// the box read as unknown_code lost a key press to a loaded test machine
// (the simulated keypad is scanned in real time): it is typed again, at most
// twice more, well under the lockout threshold.
func (b *binaryRun) typePIN(t *testing.T, want string) {
	t.Helper()
	for range 3 {
		mark := len(b.stdout.String())
		_, err := io.WriteString(b.stdin, "press "+testPIN+"#\n")
		require.NoError(t, err)
		var out string
		if !assertEventually(waitFor, func() bool {
			out = b.stdout.String()[mark:]
			return strings.Contains(out, want) || strings.Contains(out, "reason=unknown_code")
		}) {
			t.Fatalf("after the PIN, want %q in:\n%s\nstderr:\n%s", want, out, b.stderr.String())
		}
		if strings.Contains(out, want) {
			return
		}
		b.say(t, "events 1", "code_refused") // let the console finish before the next line
	}
	t.Fatalf("the PIN was read wrong three times; stdout:\n%s", b.stdout.String())
}

func (b *binaryRun) quit(t *testing.T) {
	t.Helper()
	b.say(t, "quit", "relocking and stopping")
	require.NoError(t, b.cmd.Wait(), "stderr:\n%s", b.stderr.String())
}

// simConfigWith writes the sim config with extra lines in its [clock] table
// (the last table of the file).
func simConfigWith(t *testing.T, clockLines string) string {
	t.Helper()
	src, err := os.ReadFile("smartboxd.sim.toml")
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(strings.TrimSpace(string(src)), `untrusted = "refuse"`), "[clock] is the sim config's last table")
	p := filepath.Join(t.TempDir(), "smartboxd.toml")
	require.NoError(t, os.WriteFile(p, append(src, []byte("\n"+clockLines+"\n")...), 0o600))
	return p
}

// TestPlainBuildClockFloor runs smartboxd built without a build time
// (go build -buildvcs=false): it still has a clock floor, from the source
// date, the store and the config, and refuses windowed bookings before it.
func TestPlainBuildClockFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := plainBinary(t)
	t.Run("store saw 2026-11, clock says 1970", func(t *testing.T) {
		dir := t.TempDir()
		// A booking that ended: a box in 1970 would think it has not.
		seedWindowed(t, dir, time.Time{}, date(2026, 11, 25), date(2026, 11, 20))
		b := startBinary(t, bin, "--config", "smartboxd.sim.toml", "--data", dir, "--sim-clock", "1970-01-01T00:00:00Z")
		b.typePIN(t, "code_refused grant=booking-1 reason=clock_untrusted")
		b.say(t, "status", "NOT trusted: windowed codes refuse (floor 2026-12-01T00:00:00Z, from source)")
		b.quit(t)
		log := b.stderr.String()
		require.Contains(t, log, "build_time_from=source")
		require.Contains(t, log, "clock_floor_from=source") // 2026-12-01 is later than the store's 2026-11-20
		require.NotContains(t, log, "=none")
		require.NotContains(t, b.stdout.String(), "slot_released")
	})
	t.Run("config floor, then the store remembers it", func(t *testing.T) {
		dir := t.TempDir()
		// A booking open all of 2027.
		seedWindowed(t, dir, date(2027, 1, 1), date(2028, 1, 1), time.Time{})
		cfg := simConfigWith(t, `floor = "2027-06-01T00:00:00Z"`)

		// The clock says March 2027: in the booking's window, but before
		// the config's floor.
		b := startBinary(t, bin, "--config", cfg, "--data", dir, "--sim-clock", "2027-03-01T00:00:00Z")
		b.typePIN(t, "code_refused grant=booking-1 reason=clock_untrusted")
		b.quit(t)
		require.Contains(t, b.stderr.String(), "clock_floor_from=config")

		// July: trusted, the booking opens, the store remembers the time.
		b = startBinary(t, bin, "--config", cfg, "--data", dir, "--sim-clock", "2027-07-01T00:00:00Z")
		b.typePIN(t, "slot_released slot=1 key=key-1 grant=booking-1")
		b.quit(t)

		// Without the config floor, back in March: the store's floor holds.
		b = startBinary(t, bin, "--config", "smartboxd.sim.toml", "--data", dir, "--sim-clock", "2027-03-01T00:00:00Z")
		b.typePIN(t, "code_refused grant=booking-1 reason=clock_untrusted")
		b.quit(t)
		require.Contains(t, b.stderr.String(), "clock_floor_from=store")
		s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{Logger: testLogger(t)})
		require.NoError(t, err)
		defer s.Close()
		floor, err := s.ClockFloor()
		require.NoError(t, err)
		require.False(t, floor.Before(date(2027, 6, 1)), "floor %s", floor)
		require.True(t, floor.Before(date(2027, 6, 2)), "floor %s: the clock's July is not remembered in one go", floor)
	})
	t.Run("sim-clock needs the sim profile", func(t *testing.T) {
		out, err := exec.Command(bin, "--config", "smartboxd.example.toml", "--sim-clock", "1970-01-01T00:00:00Z").CombinedOutput()
		require.Error(t, err)
		require.Contains(t, string(out), "--sim-clock needs the \"sim\" hardware profile")
	})
}
