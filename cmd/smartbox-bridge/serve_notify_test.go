package main

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Under systemd (Type=notify, dist/smartbox-bridge.service) serve says
// READY=1 once the cloud is subscribed at the broker, and STOPPING=1 when
// it is stopped: systemd orders the units after it and a rolling restart
// waits on it.
func TestServeTellsSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	require.NoError(t, err)
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	read := func() string {
		t.Helper()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		require.NoError(t, err, "no message from serve")
		return string(buf[:n])
	}
	b := startBridge(t, t.TempDir(), "")
	require.Equal(t, "READY=1", read())
	select {
	case <-b.svc.Ready():
	default:
		t.Fatal("READY=1 before the cloud was subscribed")
	}
	b.stop(t)
	require.Equal(t, "STOPPING=1", read())
}
