package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
	"github.com/smartbox-oss/smartbox/store"
)

// initBoxA makes box-a's store (the id renderConfig's configs name) with
// the demo records.
func initBoxA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	code, _, errOut := ctl(t, "init", "--data", dir, "--box-id", "box-a")
	require.Equal(t, exitOK, code, errOut)
	code, _, errOut = ctl(t, "import", "--data", dir, "../smartboxd/demo-records.json")
	require.Equal(t, exitOK, code, errOut)
	return dir
}

// startSmartboxd runs a real smartboxd with config cfg and its socket at
// sock, until the socket answers; stop ends it (SIGTERM, waited for; once,
// and at cleanup if not before).
func startSmartboxd(t *testing.T, cfg, sock string, args ...string) (stop func(), stderr *syncbuf.Buffer) {
	t.Helper()
	bin := depottest.Smartboxd(t)
	stderr = &syncbuf.Buffer{}
	cmd := exec.Command(bin, append([]string{"--config", cfg, "--socket", sock}, args...)...)
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(daemonWait):
				_ = cmd.Process.Kill()
				t.Errorf("smartboxd did not stop; stderr:\n%s", stderr.String())
			}
		})
	}
	t.Cleanup(stop)
	c := boxsocket.Dial(sock)
	defer c.Close()
	require.Eventually(t, func() bool {
		_, err := c.Status(t.Context())
		return err == nil
	}, daemonWait, 20*time.Millisecond, "smartboxd's socket answers; stderr:\n%s", stderr.String())
	return stop, stderr
}

func ctlEvents(t *testing.T, args ...string) []box.Event {
	t.Helper()
	code, out, errOut := ctl(t, append([]string{"events", "--json"}, args...)...)
	require.Equal(t, exitOK, code, errOut)
	var evs []box.Event
	require.NoError(t, json.Unmarshal([]byte(out), &evs), out)
	return evs
}

func findEvent(evs []box.Event, typ box.EventType) (box.Event, bool) {
	for _, e := range evs {
		if e.Type == typ {
			return e, true
		}
	}
	return box.Event{}, false
}

// TestInspectRunningThenStopped: smartboxctl against a real smartboxd on
// the sim profile (its socket: the daemon's view, a PIN typed, a slot
// released and audited), then against the same box stopped (its store
// read-only: the same records, and the file not changed by a byte).
func TestInspectRunningThenStopped(t *testing.T) {
	dir := initBoxA(t)
	sock := shortSocketPath(t)
	stop, _ := startSmartboxd(t, writeProfileConfig(t, "sim", dir, "", nil), sock)
	on := []string{"--socket", sock, "--data", dir}

	c := boxsocket.Dial(sock)
	defer c.Close()
	require.NoError(t, c.Press(t.Context(), "123456#", 0)) // booking-1001, key-1 in slot 1
	require.Eventually(t, func() bool {
		_, ok := findEvent(ctlEvents(t, on...), box.EventSlotReleased)
		return ok
	}, daemonWait, 20*time.Millisecond)
	evs := ctlEvents(t, on...)
	rel, _ := findEvent(evs, box.EventSlotReleased)
	require.Equal(t, "booking-1001", rel.GrantID)
	require.Positive(t, rel.Seq)

	code, out, errOut := ctl(t, append([]string{"status"}, on...)...)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, errOut, "read from smartboxd, on its socket "+sock)
	require.Regexp(t, `box: +box-a`, out)
	require.Regexp(t, `hardware: +sim`, out)
	require.Regexp(t, `cloud: +offline-only`, out)
	require.Regexp(t, `records revision: +1`, out)
	require.Regexp(t, fmt.Sprintf(`outbox: +%d events`, len(evs)), out)
	require.Regexp(t, `clock: +\S+, trusted`, out)
	require.Regexp(t, `ntp: +not synchronised`, out, "the sim's clock")
	code, out, _ = ctl(t, append([]string{"status", "--json"}, on...)...)
	require.Equal(t, exitOK, code)
	var st boxsocket.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, uint64(len(evs)), st.LastSeq)

	for _, cmd := range []string{"grants", "keys", "events", "slots", "status"} {
		for _, asJSON := range []bool{false, true} {
			args := append([]string{cmd}, on...)
			if asJSON {
				args = append(args, "--json")
			}
			code, out, errOut := ctl(t, args...)
			require.Equal(t, exitOK, code, "%v: %s", args, errOut)
			requireNoCode(t, out)
		}
	}
	code, out, _ = ctl(t, append([]string{"grants"}, on...)...)
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "booking-1001")
	require.Contains(t, out, "1/unlimited", "the daemon's use count")

	// A local release: audited with who, the uid and why; refused while
	// the slot is released.
	code, out, errOut = ctl(t, "release", "3", "--by", "alice", "--reason", "swap battery", "--socket", sock)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "slot 3 released")
	local, ok := findEvent(ctlEvents(t, on...), box.EventSlotReleasedLocally)
	require.True(t, ok)
	require.Equal(t, 3, local.Slot)
	require.Equal(t, fmt.Sprintf("by alice (uid %d): swap battery", os.Getuid()), local.Detail)
	code, out, _ = ctl(t, append([]string{"slots"}, on...)...)
	require.Equal(t, exitOK, code)
	require.Regexp(t, `3 +key-3 +.* +yes +RELEASED +local`, out)
	code, _, errOut = ctl(t, "release", "3", "--by", "bob", "--reason", "again", "--socket", sock)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "slot 3 is released already")
	code, _, errOut = ctl(t, "release", "3", "--by", "bob", "--socket", sock)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "reason is required")

	// Stopped: the same records from the store, read-only, the file as
	// the daemon left it.
	_, grantsLive, _ := ctl(t, append([]string{"grants", "--json"}, on...)...)
	stop()
	db := filepath.Join(dir, "box.db")
	before, err := os.ReadFile(db)
	require.NoError(t, err)
	fi, err := os.Stat(db)
	require.NoError(t, err)

	code, out, errOut = ctl(t, append([]string{"status"}, on...)...)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, errOut, "read from the store "+db+", read-only")
	require.Contains(t, errOut, "no socket there")
	require.Regexp(t, `cloud: +smartboxd not running`, out)
	require.Regexp(t, `records revision: +1`, out)
	code, grantsStopped, errOut := ctl(t, append([]string{"grants", "--json"}, on...)...)
	require.Equal(t, exitOK, code, errOut)
	require.JSONEq(t, grantsLive, grantsStopped, "the same grants from the daemon and from its store")
	stoppedEvs := ctlEvents(t, on...)
	_, ok = findEvent(stoppedEvs, box.EventBoxStopped)
	require.True(t, ok, "the daemon's last event, from the store")
	for _, cmd := range []string{"keys", "events", "slots"} {
		code, out, errOut := ctl(t, append([]string{cmd}, on...)...)
		require.Equal(t, exitOK, code, "%s: %s", cmd, errOut)
		requireNoCode(t, out)
	}
	code, _, errOut = ctl(t, "release", "3", "--by", "alice", "--reason", "x", "--socket", sock)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "needs the running smartboxd")
	require.Contains(t, errOut, "smartboxctl selftest")

	after, err := os.ReadFile(db)
	require.NoError(t, err)
	require.True(t, bytes.Equal(before, after), "reading a stopped box changed its store")
	fi2, err := os.Stat(db)
	require.NoError(t, err)
	require.Equal(t, fi.ModTime(), fi2.ModTime())
	_, err = os.Stat(db + ".pid")
	require.ErrorIs(t, err, os.ErrNotExist, "a reader leaves no pid file")
}

// TestInspectSocketDoesNotAnswer: a stale socket file and a listener that
// never answers are told apart and bounded; with the store held (a daemon
// whose socket is broken) the error says so and what to do; with the store
// free the store is read.
func TestInspectSocketDoesNotAnswer(t *testing.T) {
	dir := initBoxA(t)

	stale := shortSocketPath(t)
	ln, err := net.Listen("unix", stale)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())

	mute := shortSocketPath(t)
	ml, err := net.Listen("unix", mute) // never accepts: connects queue, nothing answers
	require.NoError(t, err)
	t.Cleanup(func() { _ = ml.Close() })

	for _, tc := range []struct {
		name, sock, why string
		slow            bool
	}{
		{"stale", stale, "a stale socket file, nothing listens", false},
		{"mute", mute, fmt.Sprintf("no answer within %s", socketAnswer), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The store free: read-only, saying why.
			start := time.Now()
			code, out, errOut := ctl(t, "keys", "--socket", tc.sock, "--data", dir)
			took := time.Since(start)
			require.Equal(t, exitOK, code, errOut)
			require.Contains(t, out, "key-1")
			require.Contains(t, errOut, tc.why)
			require.Less(t, took, socketAnswer+readOnlyLockWait+5*time.Second, "bounded")
			if tc.slow {
				require.GreaterOrEqual(t, took, socketAnswer, "waited for the answer")
			}

			// The store held, as by a daemon whose socket is broken.
			s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{Logger: discardLogger})
			require.NoError(t, err)
			defer s.Close()
			code, _, errOut = ctl(t, "status", "--socket", tc.sock, "--data", dir)
			require.Equal(t, exitFailure, code)
			require.Contains(t, errOut, "smartboxd holds "+filepath.Join(dir, "box.db")+" but its socket "+tc.sock+" does not answer: "+tc.why)
			require.Contains(t, errOut, "what to do")
			code, _, errOut = ctl(t, "release", "1", "--by", "a", "--reason", "b", "--socket", tc.sock)
			require.Equal(t, exitFailure, code)
			require.Contains(t, errOut, tc.why)
		})
	}
}
