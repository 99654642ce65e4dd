package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

// runHelper is the child side of the multi-process tests: the test binary
// re-executed with helperEnv set. It prints one line per durable step to
// stdout, unbuffered, only after the store call returned.
func runHelper(mode, path string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	s, err := Open(path, Options{BoxID: "box-1", Timeout: 5 * time.Second})
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	switch mode {
	case "hold":
		// Hold the lock until the parent closes our stdin.
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "commit":
		for i := 0; ; i++ {
			c := box.Change{
				UseGrants: []string{"g-1"},
				Events:    []box.Event{{Type: box.EventCodeAccepted, GrantID: "g-1"}},
			}
			if i%5 == 0 {
				c.Lockout = &box.Lockout{Failures: i}
			}
			ev, err := s.Commit(c)
			if err != nil {
				return fail(err)
			}
			fmt.Printf("seq %d\n", ev[0].Seq)
		}
	case "apply":
		for {
			rev, err := s.Revision()
			if err != nil {
				return fail(err)
			}
			n := rev + 1
			_, err = s.Apply(Batch{
				FromRevision: rev, ToRevision: n,
				Grants: []box.GrantPut{booking(fmt.Sprintf("g-%d", n), fmt.Sprintf("%06d", n), "k1")},
				Events: []box.Event{{Type: box.EventRecordsApplied, Detail: fmt.Sprintf("revision %d", n)}},
			})
			if err != nil {
				return fail(err)
			}
			fmt.Printf("rev %d\n", n)
		}
	}
	return fail(fmt.Errorf("unknown helper mode %q", mode))
}

// startHelper runs the test binary as a child in mode on path.
func startHelper(t *testing.T, mode, path string) (*exec.Cmd, *bufio.Scanner, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, bufio.NewScanner(stdout), stdin
}

// killMidStream reads "<word> N" lines until it has seen at least want of
// them, SIGKILLs the child, drains what it printed before dying and returns
// every number seen.
func killMidStream(t *testing.T, cmd *exec.Cmd, lines *bufio.Scanner, word string, want int) []uint64 {
	t.Helper()
	var seen []uint64
	got := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			if len(f) != 2 || f[0] != word {
				continue
			}
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				continue
			}
			seen = append(seen, n)
			if len(seen) == want {
				close(got)
			}
		}
	}()
	select {
	case <-got:
	case <-done:
		t.Fatalf("child ended after %d lines", len(seen))
	case <-time.After(30 * time.Second):
		t.Fatalf("child printed only %d lines in 30 s", len(seen))
	}
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no deferred Close, no flush
	<-done
	_ = cmd.Wait()
	require.GreaterOrEqual(t, len(seen), want)
	return seen
}

func TestCrashDuringCommit(t *testing.T) {
	s, clock := newStore(t)
	mustApply(t, s, Batch{Keys: []box.Key{key("k1", 1, fob(1))}, Grants: []box.GrantPut{booking("g-1", "111111", "k1")}})
	require.NoError(t, s.Close())

	cmd, lines, _ := startHelper(t, "commit", s.Path())
	seen := killMidStream(t, cmd, lines, "seq", 40)

	s = openPath(t, s.Path(), clock)
	last, err := s.LastSeq()
	require.NoError(t, err)
	require.GreaterOrEqual(t, last, seen[len(seen)-1], "every printed seq is durable")
	events, err := s.Events(0, 0)
	require.NoError(t, err)
	require.Len(t, events, int(last))
	for i, e := range events {
		require.Equal(t, uint64(i+1), e.Seq, "gap-free")
	}
	for i, seq := range seen {
		require.Equal(t, uint64(i+1), seq, "printed in order")
	}
	gs, err := s.GrantsByCode("111111")
	require.NoError(t, err)
	require.Len(t, gs, 1)
	require.Equal(t, len(events), gs[0].Uses, "one use per committed event, no more, no less")

	// The store goes on numbering after the crash.
	ev, err := s.Commit(box.Change{Events: []box.Event{{Type: box.EventBoxStarted}}})
	require.NoError(t, err)
	require.Equal(t, last+1, ev[0].Seq)
	t.Logf("child committed %d events before SIGKILL (%d printed)", last, len(seen))
}

func TestCrashDuringApply(t *testing.T) {
	s, clock := newStore(t)
	require.NoError(t, s.Close())

	cmd, lines, _ := startHelper(t, "apply", s.Path())
	seen := killMidStream(t, cmd, lines, "rev", 30)

	s = openPath(t, s.Path(), clock)
	rev, err := s.Revision()
	require.NoError(t, err)
	require.GreaterOrEqual(t, rev, seen[len(seen)-1], "every printed revision is durable")
	gs, err := s.Grants()
	require.NoError(t, err)
	require.Len(t, gs, int(rev), "one grant per applied batch")
	events, err := s.Events(0, 0)
	require.NoError(t, err)
	require.Len(t, events, int(rev), "one event per applied batch")
	for i, e := range events {
		require.Equal(t, uint64(i+1), e.Seq)
		require.Equal(t, fmt.Sprintf("revision %d", i+1), e.Detail)
	}
	for n := uint64(1); n <= rev; n++ {
		byCode, err := s.GrantsByCode(fmt.Sprintf("%06d", n))
		require.NoError(t, err)
		require.Equal(t, []string{fmt.Sprintf("g-%d", n)}, grantIDs(byCode))
	}
	t.Logf("child applied %d batches before SIGKILL (%d printed)", rev, len(seen))
}

func TestOpenInUseByChild(t *testing.T) {
	s, _ := newStore(t)
	require.NoError(t, s.Close())

	cmd, lines, stdin := startHelper(t, "hold", s.Path())
	require.True(t, lines.Scan(), "child did not start")
	require.Equal(t, "ready", lines.Text())

	timeout := 300 * time.Millisecond
	start := time.Now()
	_, err := Open(s.Path(), Options{BoxID: "box-1", Timeout: timeout})
	elapsed := time.Since(start)
	require.ErrorIs(t, err, ErrInUse)
	require.ErrorContains(t, err, fmt.Sprintf("in use by pid %d", cmd.Process.Pid))
	require.ErrorContains(t, err, s.Path())
	require.Less(t, elapsed, timeout+time.Second, "gave up about when told to")

	// When the holder lets go, the file opens.
	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	s2, err := Open(s.Path(), Options{BoxID: "box-1", Timeout: timeout})
	require.NoError(t, err)
	require.NoError(t, s2.Close())
}
