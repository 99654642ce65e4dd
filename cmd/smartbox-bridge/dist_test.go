package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/smartbox-bridge/dist"
)

// The unit runs serve on the paths the binary defaults to, and systemd
// reads it without a complaint.
func TestSystemdUnit(t *testing.T) {
	unit := string(dist.Unit)
	require.Contains(t, unit, "\nExecStart=/usr/local/bin/smartbox-bridge serve --config "+DefaultConfigPath+"\n")
	require.Contains(t, unit, "\nStateDirectory="+filepath.Base(DefaultDataDir)+"\n")
	require.Contains(t, unit, "\nType=notify\n", "serve speaks sd_notify (TestServeTellsSystemd)")

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit's syntax is not checked here")
	}
	// verify wants the binary to exist: point it at one that does.
	dir := t.TempDir()
	path := filepath.Join(dir, "smartbox-bridge.service")
	require.NoError(t, os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/smartbox-bridge", "/bin/true")), 0o644))
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify complains")
}
