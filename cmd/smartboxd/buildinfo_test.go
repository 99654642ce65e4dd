package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
)

// TestVersionFlag: --version prints buildinfo's line and exits 0 without
// reading a config (a technician checks what is installed before
// provisioning). The stamped form is checked on a cross-compiled binary in
// cmd/internal/firmware.
func TestVersionFlag(t *testing.T) {
	var stdout, stderr syncbuf.Buffer
	code := run(t.Context(), []string{"--version", "--config", "/nonexistent/smartboxd.toml"}, strings.NewReader(""), &stdout, &stderr)
	require.Equal(t, cli.ExitOK, code, "stderr:\n%s", stderr.String())
	require.Regexp(t, `^smartboxd \S+ \(commit \S+, built \S+Z, \w+/\w+(/v\d)?\)\n$`, stdout.String())
}
