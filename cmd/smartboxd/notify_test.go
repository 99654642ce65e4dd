package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
)

// notifySocket is a real unixgram socket in a temp dir, standing in for
// systemd's NOTIFY_SOCKET.
type notifySocket struct {
	path string
	conn *net.UnixConn
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// A short directory: a socket path must fit sun_path (108 bytes), and
	// t.TempDir's names grow with the test's.
	dir, err := os.MkdirTemp("", "sdnotify")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &notifySocket{path: p, conn: conn}
}

// next is the next message, or "" if none comes within wait.
func (s *notifySocket) next(t *testing.T, wait time.Duration) string {
	t.Helper()
	require.NoError(t, s.conn.SetReadDeadline(time.Now().Add(wait)))
	buf := make([]byte, 4096)
	n, err := s.conn.Read(buf)
	if err != nil {
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		require.True(t, ne.Timeout(), "reading the notify socket: %v", err)
		return ""
	}
	return string(buf[:n])
}

// expect reads messages until want, failing on anything else but
// WATCHDOG=1 (which may come between any two others).
func (s *notifySocket) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		switch m := s.next(t, time.Until(deadline)); m {
		case want:
			return
		case "WATCHDOG=1", "":
		default:
			t.Fatalf("want %q from smartboxd, got %q", want, m)
		}
	}
	t.Fatalf("no %q from smartboxd within %s", want, waitFor)
}

// TestNotifySystemd runs the real smartboxd binary on the sim profile as
// systemd would (NOTIFY_SOCKET, WATCHDOG_USEC): READY=1 arrives, WATCHDOG=1
// keeps arriving, and SIGTERM brings STOPPING=1 and a clean exit.
func TestNotifySystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := plainBinary(t)
	sock := listenNotify(t)
	// 400 ms: a pet every 200 ms, so that a few arrive quickly.
	const watchdogUsec = "400000"
	cmd := exec.Command(bin, "--config", "smartboxd.sim.toml", "--data", t.TempDir())
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.path, "WATCHDOG_USEC="+watchdogUsec)
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	require.Equal(t, "READY=1", sock.next(t, waitFor), "stderr:\n%s", stderr.String())
	// The log line comes first, but through a pipe exec copies on its own.
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "ready: the controller answers") }, waitFor, 5*time.Millisecond)
	for i := range 3 {
		require.Equal(t, "WATCHDOG=1", sock.next(t, waitFor), "pet %d; stderr:\n%s", i+1, stderr.String())
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	sock.expect(t, "STOPPING=1")
	require.NoError(t, cmd.Wait(), "stderr:\n%s", stderr.String())
	require.Contains(t, stderr.String(), "every slot relocked")
}

// TestNotifyWedgedController: the watchdog is petted only after the
// controller answers. A controller that stops answering gets no pets (so
// systemd kills the process), and no pile of probes; one that recovers is
// petted again.
func TestNotifyWedgedController(t *testing.T) {
	sock := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sock.path)
	t.Setenv("WATCHDOG_USEC", "40000") // a probe every 20 ms
	var logs syncbuf.Buffer
	n := newNotifier(slog.New(slog.NewTextHandler(&logs, nil)))
	require.Equal(t, 20*time.Millisecond, n.interval)

	var (
		calls   atomic.Int64
		wedged  atomic.Bool
		unwedge = make(chan struct{})
	)
	flush := func() {
		calls.Add(1)
		if wedged.Load() {
			<-unwedge
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { n.run(ctx, flush); close(done) }()

	require.Equal(t, "READY=1", sock.next(t, waitFor))
	for range 3 {
		require.Equal(t, "WATCHDOG=1", sock.next(t, waitFor))
	}
	// Wedge: the next probe blocks in flush. Pets already on their way
	// (one per answered probe) are drained; after that none may come.
	wedged.Store(true)
	require.Eventually(t, func() bool { return strings.Count(logs.String(), "has not answered") >= 3 }, waitFor, 5*time.Millisecond)
	atWedge := calls.Load()
	pets := 0
	for sock.next(t, 10*time.Millisecond) == "WATCHDOG=1" {
		pets++
	}
	// Every probe answered before the wedge gave one pet: READY's, the
	// three read above, and those drained; the wedged one gave none.
	require.EqualValues(t, atWedge, 1+3+pets+1, "one pet per answered probe, none for the wedged one")
	require.Equal(t, "", sock.next(t, 3*n.interval), "no pet while the controller does not answer")
	require.Equal(t, atWedge, calls.Load(), "no new probe while one is unanswered")

	// The controller recovers: pets resume.
	wedged.Store(false)
	close(unwedge)
	require.Equal(t, "WATCHDOG=1", sock.next(t, waitFor))

	cancel()
	<-done
	sock.expect(t, "STOPPING=1")
}
