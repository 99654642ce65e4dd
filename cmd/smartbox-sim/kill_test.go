package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
)

// TestKilledSimulatorLeavesNoBoxReleased: SIGKILL the simulator itself (no
// Ctrl-C, no Close): every box process still gets SIGTERM (Pdeathsig),
// relocks every slot and stops, and says so in its own log.
func TestKilledSimulatorLeavesNoBoxReleased(t *testing.T) {
	sim := filepath.Join(t.TempDir(), "smartbox-sim")
	out, err := exec.Command("go", "build", "-buildvcs=false", "-o", sim, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	data := t.TempDir()
	var stdout, stderr syncbuf.Buffer
	cmd := exec.Command(sim, "--listen", "127.0.0.1:0", "--data", data, "--boxes", "2", "--smartboxd", depottest.Smartboxd(t))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool { return regexp.MustCompile(`Open http://`).MatchString(stdout.String()) },
		30*time.Second, 10*time.Millisecond, "stderr: %s", &stderr)

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	for _, id := range []string{"box-1", "box-2"} {
		log := filepath.Join(data, "boxes", id, "smartboxd.log")
		require.Eventually(t, func() bool {
			b, err := os.ReadFile(log)
			return err == nil && strings.Contains(string(b), "stopped; every slot relocked")
		}, 30*time.Second, 20*time.Millisecond, "%s never relocked and stopped", id)
	}
}
