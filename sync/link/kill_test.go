package link_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/link"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// runChild is the box daemon of the kill tests: it runs a link on the store
// at $SMARTBOX_LINK_TEST_STORE until it is killed, logging JSON lines on
// stdout for the parent to follow.
func runChild() int {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(os.Getenv("SMARTBOX_LINK_TEST_STORE"), store.Options{BoxID: boxID, Slots: 12, Timeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	batch, _ := strconv.Atoi(os.Getenv("SMARTBOX_LINK_TEST_BATCH"))
	l, err := link.New(link.Options{BoxID: boxID, BrokerURL: os.Getenv("SMARTBOX_LINK_TEST_BROKER"),
		Username: boxID, Password: brokertest.Password(boxID), Store: st, DrainBatch: batch,
		AckTimeout: time.Second, MaxReconnectInterval: 500 * time.Millisecond, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := l.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a running box process.
type child struct {
	cmd   *exec.Cmd
	lines chan string
}

func startChild(t *testing.T, path, brokerURL string, drainBatch int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "SMARTBOX_LINK_TEST_STORE="+path,
		"SMARTBOX_LINK_TEST_BROKER="+brokerURL, "SMARTBOX_LINK_TEST_BATCH="+strconv.Itoa(drainBatch))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, lines: make(chan string, 100000)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(c.lines)
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

// waitLog waits for the n-th log line whose msg is msg.
func (c *child) waitLog(t *testing.T, msg string, n int, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	seen := 0
	var recent []string
	for {
		select {
		case line, ok := <-c.lines:
			require.True(t, ok, "child exited while waiting for %q", msg)
			if recent = append(recent, line); len(recent) > 40 {
				recent = recent[1:]
			}
			var rec struct {
				Msg string `json:"msg"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
				seen++
				if seen >= n {
					return
				}
			}
		case <-timeout:
			t.Fatalf("no %d× %q from the child within %v; its last lines:\n%s", n, msg, within, strings.Join(recent, "\n"))
		}
	}
}

func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Kill() // SIGKILL: no defer, no Close, as a power cut
		_ = c.cmd.Wait()
	}
}

func TestKilledBox(t *testing.T) {
	t.Parallel()
	for _, k := range brokertest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, k, brokertest.Options{})
			path := filepath.Join(t.TempDir(), "box.db")
			st := openBox(t, path)
			pub, err := st.SyncPublicKey()
			require.NoError(t, err)
			// An outbox to drain: the box was offline a while.
			commit(t, st, 3000, "offline")
			require.NoError(t, st.Close())
			tc := startCloud(t, b, pub)

			// Mid-apply: killed while the chunks of a 10,000-grant snapshot
			// come in, and again in a stream of deltas.
			_, err = tc.PutBatch(boxID, testKeys(), grants(0, 10000, "k1"))
			require.NoError(t, err)
			c := startChild(t, path, b.URL(), 100)
			c.waitLog(t, "sync: snapshot chunk staged", 2, waitFor)
			c.kill()

			c = startChild(t, path, b.URL(), 100)
			c.waitLog(t, "sync: snapshot applied", 1, waitFor)
			pushed := make(chan struct{})
			go func() {
				defer close(pushed)
				for i := 0; i < 100; i++ {
					r, err := tc.PutGrant(boxID, box.Grant{ID: fmt.Sprintf("d-%03d", i), Kind: box.KindBooking, KeyIDs: []string{"k2"}},
						fmt.Sprintf("%08d", 20000000+i))
					if err != nil {
						return
					}
					// One delta at a time, as a bridge pushes changes.
					if msgs, err := tc.Answer(wire.SyncRequest{V: wire.Version, Box: boxID, Have: r - 1}); err == nil {
						tc.send(msgs)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			c.waitLog(t, "sync: records applied", 3, waitFor)
			c.kill()
			<-pushed

			// Mid-drain: killed while the cloud takes a deep outbox. The
			// cloud takes no batch after the one that reaches base+1000,
			// so the kill, as soon as that one is in, is always mid-drain:
			// under load the box cannot finish first.
			st = openBox(t, path)
			base, err := st.LastSeq()
			require.NoError(t, err)
			commit(t, st, 3000, "offline")
			require.NoError(t, st.Close())
			tc.holdEventsFrom.Store(base + 1000)
			c = startChild(t, path, b.URL(), 100)
			require.Eventually(t, func() bool {
				hi, err := tc.HighestSeq(boxID)
				require.NoError(t, err)
				return hi >= base+1000
			}, waitFor, 2*time.Millisecond)
			c.kill()
			hi, err := tc.HighestSeq(boxID)
			require.NoError(t, err)
			require.Less(t, hi, base+3000, "killed before the drain was done")
			tc.holdEventsFrom.Store(0)
			tc.holdEvents.Store(false)

			c = startChild(t, path, b.URL(), 100)
			// The cloud has every event once; the box has the cloud's set.
			var last string
			require.True(t, assertEventually(waitFor, func() bool {
				crev, _ := tc.Revision(boxID)
				s, ok := tc.lastStatus()
				hi, _ := tc.HighestSeq(boxID)
				last = fmt.Sprintf("cloud rev %d, status %+v, cloud events through %d", crev, s, hi)
				return ok && s.Online && s.Revision == crev && s.OutboxDepth == 0 && hi == s.LastSeq
			}), last)
			c.kill()
			st = openBox(t, path)
			requireSameRecords(t, tc, st, waitFor)
			evs := requireEventsOnce(t, tc, st, waitFor)
			offline := 0
			for _, e := range evs {
				if strings.HasPrefix(e.Detail, "offline") {
					offline++
				}
			}
			require.Equal(t, 6000, offline)
		})
	}
}
