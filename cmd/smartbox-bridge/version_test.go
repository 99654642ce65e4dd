package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestVersion: --version prints buildinfo's line and exits 0 (the stamped
// form is checked on a packaged binary in cmd/internal/firmware).
func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, exitOK, run(t.Context(), []string{"--version"}, &stdout, &stderr), "stderr: %s", stderr.String())
	require.Regexp(t, `^smartbox-bridge \S+ \(commit \S+, built \S+Z, \w+/\w+(/v\d)?\)\n$`, stdout.String())
}
