package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/selftest"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
)

// selftestWait bounds a self-test step in these tests: generous for a
// loaded machine, never reached when things work.
const selftestWait = 30 * time.Second

// simBoxConfig writes a sim config for the store in dir (box box-1).
func simBoxConfig(t *testing.T, dir string) string {
	t.Helper()
	src, err := os.ReadFile("../smartboxd/smartboxd.sim.toml")
	require.NoError(t, err)
	s := regexp.MustCompile(`(?m)^box_id = .*$`).ReplaceAllString(string(src), `box_id = "box-1"`)
	s = regexp.MustCompile(`(?m)^data_dir = .*$`).ReplaceAllString(s, `data_dir = "`+dir+`"`)
	return writeFile(t, "smartboxd.toml", s)
}

// noDaemon is a socket path nothing listens on.
func noDaemon(t *testing.T) string { return filepath.Join(t.TempDir(), "none.sock") }

// TestSelftestStoppedBox runs `smartboxctl selftest` with smartboxd
// stopped: it opens the simulated hardware and the store itself.
func TestSelftestStoppedBox(t *testing.T) {
	dir := initBox(t)
	cfg := simBoxConfig(t, dir)
	code, out, errOut := ctl(t, "selftest", "--socket", noDaemon(t), "--config", cfg, "--yes", "--json", "--only", "clock,store,broker,signing")
	require.Equal(t, exitOK, code, errOut)
	var rep selftest.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.Equal(t, "hardware", rep.Via)
	require.True(t, rep.Passed)
	require.Len(t, rep.Rows, 5)
	require.Equal(t, selftest.Pass, rep.Rows[2].Result, "store: %+v", rep.Rows[2])

	// Without --yes every release is asked; "n" skips each slot.
	selftestStdin = strings.NewReader(strings.Repeat("n\n", 12))
	t.Cleanup(func() { selftestStdin = os.Stdin })
	code, out, errOut = ctl(t, "selftest", "--socket", noDaemon(t), "--config", cfg, "--only", "locks")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, errOut, "Release slot 1 (holding key key-1 (Van 12 (Ford Transit))) to test its lock? [y/n]")
	require.Equal(t, 12, strings.Count(out, "SKIPPED"), out)
	require.Contains(t, out, "selftest PASSED (via hardware)")
}

func TestSelftestUsage(t *testing.T) {
	code, _, errOut := ctl(t, "selftest", "--socket", noDaemon(t))
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "does not answer")
	require.Contains(t, errOut, "--config FILE")
	code, _, errOut = ctl(t, "selftest", "--only", "locks,lights")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `"lights" is not one of`)
}

// A dropped SSH session (SIGHUP) or a SIGQUIT during a stopped-box
// self-test ends it through its defers (locks de-energised), instead of
// killing the process with a lock possibly energised.
func TestSelftestEndsOnHangup(t *testing.T) {
	dir := initBox(t)
	cfg := simBoxConfig(t, dir)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			in, w := io.Pipe() // a technician who never answers
			t.Cleanup(func() { _ = w.Close() })
			selftestStdin = in
			t.Cleanup(func() { selftestStdin = os.Stdin })
			var stdout, stderr syncbuf.Buffer
			done := make(chan int, 1)
			go func() {
				done <- run([]string{"selftest", "--socket", noDaemon(t), "--config", cfg, "--only", "locks"}, &stdout, &stderr)
			}()
			require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "Release slot 1") },
				selftestWait, 10*time.Millisecond, "the test never asked: %s", stderr.String())
			require.NoError(t, syscall.Kill(os.Getpid(), sig))
			select {
			case code := <-done:
				require.NotEqual(t, exitOK, code, "a test cut short did not pass: %s", stderr.String())
			case <-time.After(selftestWait):
				t.Fatalf("selftest did not end on %v", sig)
			}
		})
	}
}
