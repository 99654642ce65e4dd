package main

import (
	"bytes"
	"context"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
	"github.com/smartbox-oss/smartbox/store"
)

const testPIN = "123456"

// waitFor bounds waiting for what must happen (an event, a line of output,
// the daemon stopping). The tests wait on conditions, never on the clock,
// so the bound only ends a hung test: generous, because the suite runs with
// -race on 2 cores shared with other packages' tests.
const waitFor = 2 * time.Minute

// seedStore creates a store in dir for box id with one key in slot 1 and a
// booking for it, as smartboxctl import would.
func seedStore(t testing.TB, dir, id string) {
	t.Helper()
	s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{BoxID: id, Slots: 12, Logger: testLogger(t)})
	require.NoError(t, err)
	b, err := store.ParseImport(strings.NewReader(`{
		"keys": [{"id": "key-1", "fob_uid": "01000734E0", "slot": 1}],
		"grants": [{"id": "booking-1", "kind": "booking", "key_ids": ["key-1"], "code": "`+testPIN+`"}]
	}`), 12)
	require.NoError(t, err)
	_, err = s.Apply(b)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

func simConfig(t testing.TB, dir string) *boxconfig.Config {
	t.Helper()
	c, err := boxconfig.LoadConfig("smartboxd.sim.toml")
	require.NoError(t, err)
	c.DataDir = dir
	require.NoError(t, c.Validate())
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// eventTypes lists the store's events as "type/slot".
func hasEvent(t *testing.T, s *store.Store, typ box.EventType, slot int) bool {
	t.Helper()
	evs, err := s.Events(0, 1000)
	require.NoError(t, err)
	return slices.ContainsFunc(evs, func(e box.Event) bool { return e.Type == typ && e.Slot == slot })
}

// TestEndToEndSim runs the daemon in-process on simulated hardware: the
// real keypad scanner, slot driver, reader and store under the controller.
func TestEndToEndSim(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, "demo-box")
	d, err := newDaemon(simConfig(t, dir), daemonOptions{Log: testLogger(t)})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	require.Eventually(t, func() bool { return hasEvent(t, d.store, box.EventBoxStarted, 0) }, waitFor, 10*time.Millisecond)

	// A driver types the booking PIN: slot 1 releases.
	require.NoError(t, d.sim.keypad.Type(testPIN+"#", 60*time.Millisecond, 40*time.Millisecond))
	wctx, wcancel := context.WithTimeout(ctx, waitFor)
	defer wcancel()
	require.NoError(t, d.sim.slots.WaitReleased(wctx, 1))
	require.False(t, d.sim.slots.Released(2), "only the booked key's slot opens")

	// The key leaves: key_taken, and the slot relocks.
	require.NoError(t, d.sim.slots.Take(1))
	require.Eventually(t, func() bool { return hasEvent(t, d.store, box.EventKeyTaken, 1) }, waitFor, 10*time.Millisecond)
	require.NoError(t, d.sim.slots.WaitLocked(wctx, 1))

	// Returning it: scan its fob, the slot releases for the key, relocks.
	require.NoError(t, d.sim.reader.Tap("01000734E0", 150*time.Millisecond))
	require.NoError(t, d.sim.slots.WaitReleased(wctx, 1))
	require.NoError(t, d.sim.slots.PutBack(1))
	require.Eventually(t, func() bool { return hasEvent(t, d.store, box.EventKeyReturned, 1) }, waitFor, 10*time.Millisecond)
	require.NoError(t, d.sim.slots.WaitLocked(wctx, 1))

	// The grant was used once (counted by the box).
	gs, err := d.store.Grants()
	require.NoError(t, err)
	require.Len(t, gs, 1)
	require.Equal(t, 1, gs[0].Uses)

	// Stop: every lock de-energised, box_stopped recorded, store closed.
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("daemon did not stop")
	}
	for slot := 1; slot <= 12; slot++ {
		require.False(t, d.sim.slots.Released(slot), "slot %d", slot)
	}
	s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{Logger: testLogger(t)})
	require.NoError(t, err, "the daemon released the store")
	defer s.Close()
	require.True(t, hasEvent(t, s, box.EventBoxStopped, 0))
}

// consoleRun is smartboxd's run (flags, config, daemon) in process, driven
// through its console as a person at `make demo` would.
type consoleRun struct {
	consoleIO
	done chan int // run's exit code
}

// consoleIO is smartboxd's console as a test drives it: lines in, what it
// prints and logs out.
type consoleIO struct {
	stdin          io.Writer
	stdout, stderr syncbuf.Buffer
}

// startConsole runs smartboxd with args and waits for the console's prompt.
func startConsole(t *testing.T, args ...string) *consoleRun {
	t.Helper()
	stdinR, stdinW := io.Pipe()
	t.Cleanup(func() { _ = stdinW.Close() })
	c := &consoleRun{consoleIO: consoleIO{stdin: stdinW}, done: make(chan int, 1)}
	go func() { c.done <- run(t.Context(), args, stdinR, &c.stdout, &c.stderr) }()
	require.Eventually(t, func() bool { return strings.Contains(c.stdout.String(), `Type "help"`) }, waitFor, 10*time.Millisecond,
		"stderr:\n%s", c.stderr.String())
	return c
}

// say types line and waits for want in what the console prints after it.
func (c *consoleIO) say(t *testing.T, line, want string) {
	t.Helper()
	mark := len(c.stdout.String())
	_, err := io.WriteString(c.stdin, line+"\n")
	require.NoError(t, err)
	if !assertEventually(waitFor, func() bool { return strings.Contains(c.stdout.String()[mark:], want) }) {
		t.Fatalf("after %q, want %q in:\n%s\nstderr:\n%s", line, want, c.stdout.String()[mark:], c.stderr.String())
	}
}

// quit types quit and waits for smartboxd to exit 0.
func (c *consoleRun) quit(t *testing.T) {
	t.Helper()
	c.say(t, "quit", "relocking and stopping")
	select {
	case code := <-c.done:
		require.Equal(t, cli.ExitOK, code, "stderr:\n%s", c.stderr.String())
	case <-time.After(waitFor):
		t.Fatal("smartboxd did not stop on quit")
	}
}

// assertEventually polls cond every 10 ms for up to within. Unlike
// require.Eventually, the caller builds its failure message afterwards,
// from the output as it is then.
func assertEventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConsole drives smartboxd's run (flags, config, daemon) through the
// console, as a person at `make demo` would.
func TestConsole(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, "demo-box")
	c := startConsole(t, "--config", "smartboxd.sim.toml", "--hardware", "sim", "--data", dir, "--log-level", "warn")
	require.Contains(t, c.stdout.String(), "01000734E0", "the banner lists the fobs")
	c.say(t, "help", "press KEYS")
	c.say(t, "take 1", "slot 1 is locked: type a code first")
	c.say(t, "press 123456#", "slot_released slot=1 key=key-1 grant=booking-1")
	c.say(t, "slots", "key to be taken")
	c.say(t, "take 1", "key_taken slot=1 key=key-1")
	c.say(t, "scan 01000734E0", "slot_released slot=1 key=key-1 fob=01000734E0")
	c.say(t, "return 1", "key_returned slot=1 key=key-1")
	c.say(t, "grants", "booking-1")
	c.say(t, "events 3", "slot_relocked")
	c.say(t, "bogus", `unknown command "bogus"`)
	c.say(t, "press 12a", `key 'a' is not on the keypad`)
	out := c.stdout.String()
	require.NotContains(t, out[strings.Index(out, "press KEYS"):], "  "+testPIN+" ", "no table shows a code")
	c.quit(t)
}

// TestConsoleEOFKeepsRunning: with stdin not a terminal (make demo
// </dev/null, a service), EOF does not stop the box; a signal (ctx) does.
func TestConsoleEOFKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, "demo-box")
	devnull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer devnull.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", "smartboxd.sim.toml", "--data", dir}, devnull, &stdout, &stderr)
	}()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "console input ended") }, waitFor, 10*time.Millisecond)
	select {
	case code := <-done:
		t.Fatalf("smartboxd stopped at EOF with %d", code)
	case <-time.After(200 * time.Millisecond):
	}
	cancel() // SIGTERM
	select {
	case code := <-done:
		require.Equal(t, cli.ExitOK, code, "stderr:\n%s", stderr.String())
	case <-time.After(waitFor):
		t.Fatal("smartboxd did not stop")
	}
	require.Contains(t, stderr.String(), "every slot relocked")
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, "other-box")
	bad := filepath.Join(t.TempDir(), "smartboxd.toml")
	example, err := os.ReadFile("smartboxd.example.toml")
	require.NoError(t, err)
	// A pin no machine has, so that the test means the same on a real Pi.
	// The lock pins are looked up first (fail secure: see newDaemon).
	nopin := filepath.Join(t.TempDir(), "smartboxd.toml")
	require.NoError(t, os.WriteFile(nopin, bytes.Replace(example, []byte(`"LOCK1"`), []byte(`"NO_SUCH_PIN_1"`), 1), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte("box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[hardware.slots]\ncount = 12\nlocks = [\"A\"]\n"), 0o600))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"--nope"}, cli.ExitUsage, "flag provided but not defined"},
		{"bad log level", []string{"--log-level", "loud"}, cli.ExitUsage, "--log-level"},
		{"bad hardware", []string{"--config", "smartboxd.sim.toml", "--hardware", "pi"}, cli.ExitUsage, `--hardware "pi"`},
		{"missing config", []string{"--config", filepath.Join(dir, "none.toml")}, cli.ExitFailure, "none.toml"},
		{"bad config", []string{"--config", bad}, cli.ExitFailure, "smartboxd.toml:6: hardware.slots.locks: has 1 pins, want 12 (one per slot)"},
		{"wrong box", []string{"--config", "smartboxd.sim.toml", "--data", dir}, cli.ExitFailure, "another box"},
		{"pin absent", []string{"--config", nopin, "--data", t.TempDir()}, cli.ExitFailure, `slot lock 1: no GPIO pin named "NO_SUCH_PIN_1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncbuf.Buffer
			code := run(t.Context(), tc.args, strings.NewReader(""), &stdout, &stderr)
			require.Equal(t, tc.code, code, "stderr:\n%s", stderr.String())
			require.Contains(t, stderr.String(), tc.want)
		})
	}
}
