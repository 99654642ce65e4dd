package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
)

// TestConsole: --console puts box 1's line console on the terminal beside
// the page; its commands reach the box's real hardware code, and `quit`
// (the box relocks and stops) ends the simulator.
func TestConsole(t *testing.T) {
	stdin, typed := io.Pipe()
	var out, errb syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(t.Context(), []string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--console",
			"--smartboxd", depottest.Smartboxd(t)}, stdin, &out, &errb)
	}()
	require.Eventually(t, func() bool { return containsAll(out.String(), "Open http://", `Type "help" for commands.`) },
		30*time.Second, 10*time.Millisecond, "stdout: %s\nstderr: %s", &out, &errb)
	// The box gets its keys from the bridge over MQTT a moment after it
	// starts: ask again until the table names them (a person would too).
	require.Eventually(t, func() bool {
		if _, err := io.WriteString(typed, "slots\n"); err != nil {
			return false
		}
		return containsAll(out.String(), "WAITING FOR", "key-12")
	}, 30*time.Second, 500*time.Millisecond, "stdout: %s", &out)
	_, err := io.WriteString(typed, "quit\n")
	require.NoError(t, err)
	select {
	case code := <-done:
		require.Equal(t, 0, code, "stderr: %s", errb.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("quit did not stop the simulator; stdout: %s", out.String())
	}
	require.Contains(t, out.String(), "relocking and stopping")
	require.Contains(t, out.String(), "stopped; every slot relocked")
	_ = typed.Close()
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
