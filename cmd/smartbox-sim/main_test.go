package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
)

func TestCommandLineMistakes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--scenario", "nope"}, 2, `no scenario "nope": want one of automatic`},
		{[]string{"--boxes", "0"}, 2, "--boxes 0: want 1..200"},
		{[]string{"--log-level", "loud"}, 2, "loud"},
		{[]string{"stray"}, 2, "stray"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb syncbuf.Buffer
			code := run(t.Context(), tc.args, strings.NewReader(""), &out, &errb)
			require.Equal(t, tc.code, code, "stdout %s\nstderr %s", out.String(), errb.String())
			require.Contains(t, errb.String(), tc.want)
		})
	}
}

func TestScenarioList(t *testing.T) {
	var out, errb syncbuf.Buffer
	require.Equal(t, 0, run(t.Context(), []string{"--scenario", "list"}, nil, &out, &errb), errb.String())
	for _, name := range []string{"automatic", "prompt", "changed-deleted", "offline", "power-cut", "forged-grant"} {
		require.Contains(t, out.String(), name)
	}
}

// TestPortInUse: the page's port taken is said at once, before any box starts.
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var out, errb syncbuf.Buffer
	code := run(t.Context(), []string{"--listen", ln.Addr().String(), "--smartboxd", "/nonexistent"}, nil, &out, &errb)
	require.Equal(t, 1, code)
	require.Contains(t, errb.String(), "the page cannot listen on "+ln.Addr().String()+" (in use?")
}

// TestAllowRemote: a --listen others can reach is refused, saying why,
// unless --allow-remote, which warns and goes on.
func TestAllowRemote(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8400", "box.example:8400"} {
		var out, errb syncbuf.Buffer
		code := run(t.Context(), []string{"--listen", addr, "--smartboxd", "/nonexistent"}, nil, &out, &errb)
		require.Equal(t, 2, code, addr)
		require.Contains(t, errb.String(), "--listen "+addr+": not a loopback address; the page has no login and controls the whole installation")
		require.Contains(t, errb.String(), "--allow-remote")
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0", "127.0.0.2:0"} {
		require.True(t, isLoopbackListen(addr), addr)
	}

	// With it: the warning, then the simulator starts (and fails here at
	// the missing smartboxd, past the check).
	var out, errb syncbuf.Buffer
	code := run(t.Context(), []string{"--listen", "0.0.0.0:0", "--allow-remote", "--smartboxd", "/nonexistent"}, nil, &out, &errb)
	require.Equal(t, 1, code, errb.String())
	require.Contains(t, errb.String(), "warning: --allow-remote: the page on 0.0.0.0:0 has no login")
	require.NotContains(t, errb.String(), "not a loopback address")
}

// TestRunsUntilInterrupted: the simulator prints one URL, serves the page
// there, and on Ctrl-C (ctx) stops every box, which relocks.
func TestRunsUntilInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	bin := depottest.Smartboxd(t)
	// A relative --data, as `make demo` passes: the boxes' configs must
	// still name their files right.
	t.Chdir(t.TempDir())
	var out, errb syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--data", "demo-data/sim", "--smartboxd", bin},
			nil, &out, &errb)
	}()
	url := regexp.MustCompile(`Open (http://127\.0\.0\.1:\d+)`)
	var base string
	require.Eventually(t, func() bool {
		m := url.FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, 30*time.Second, 10*time.Millisecond, "no URL printed; stderr: %s", &errb)
	resp, err := http.Get(base + "/")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(page), "SmartBox")

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, "stderr: %s", errb.String())
	case <-time.After(30 * time.Second):
		t.Fatal("the simulator did not stop")
	}
	require.Contains(t, out.String(), "stopped; every slot relocked")
}
