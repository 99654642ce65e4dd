package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
	simrfid "github.com/smartbox-oss/smartbox/sim/rfid"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
)

const testFob = "01000734E0" // key-1's fob (seedStore)

// socketPath is a short path for a Unix socket: t.TempDir's can pass the
// 107 bytes sun_path allows.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbsock")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "box.sock")
}

// socketRig is a sim daemon in process with its socket, and a client.
type socketRig struct {
	d      *daemon
	c      *boxsocket.Client
	path   string
	cancel context.CancelFunc
	done   chan error
}

// startSocketDaemon runs a sim daemon on a store seeded with key-1 in slot
// 1 and its booking PIN, serving its socket; edit changes the config first.
func startSocketDaemon(t *testing.T, edit func(*boxconfig.Config)) *socketRig {
	t.Helper()
	dir := t.TempDir()
	seedStore(t, dir, "demo-box")
	cfg := simConfig(t, dir)
	if edit != nil {
		edit(cfg)
		require.NoError(t, cfg.Validate())
	}
	r := &socketRig{path: socketPath(t), done: make(chan error, 1)}
	var err error
	r.d, err = newDaemon(cfg, daemonOptions{Log: testLogger(t), Socket: r.path, Software: "test-1"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	r.cancel = cancel
	go func() { r.done <- r.d.run(ctx) }()
	r.c = boxsocket.Dial(r.path)
	t.Cleanup(func() {
		r.stop(t)
		r.c.Close()
	})
	return r
}

// stop stops the daemon and waits for it (once).
func (r *socketRig) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			require.NoError(t, err)
			close(r.done)
		}
	case <-time.After(waitFor):
		t.Fatal("daemon did not stop")
	}
}

// watcher collects a Watch stream's messages and every event they carried.
type watcher struct {
	mu     sync.Mutex
	last   boxsocket.Watch
	n      int
	events []box.Event
	typed  int // the most keys typed any message showed
	err    chan error
	wake   chan struct{}
}

func startWatch(t *testing.T, c *boxsocket.Client) *watcher {
	t.Helper()
	w := &watcher{err: make(chan error, 1), wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go func() {
		w.err <- c.Watch(ctx, 0, func(m boxsocket.Watch) error {
			w.mu.Lock()
			w.last, w.n = m, w.n+1
			w.events = append(w.events, m.Events...)
			w.typed = max(w.typed, m.Typed)
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	return w
}

// until waits for cond on the latest message and the events so far.
func (w *watcher) until(t *testing.T, what string, cond func(m boxsocket.Watch, evs []box.Event) bool) boxsocket.Watch {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		w.mu.Lock()
		m, evs := w.last, slices.Clone(w.events)
		ok := w.n > 0 && cond(m, evs)
		w.mu.Unlock()
		if ok {
			return m
		}
		select {
		case <-w.wake:
		case err := <-w.err:
			t.Fatalf("waiting for %s: the watch ended: %v", what, err)
		case <-deadline:
			t.Fatalf("waiting for %s: not seen; last message %+v", what, m)
		}
	}
}

func hasEv(evs []box.Event, typ box.EventType, slot int) bool {
	return slices.ContainsFunc(evs, func(e box.Event) bool { return e.Type == typ && e.Slot == slot })
}

func evIndex(evs []box.Event, typ box.EventType) int {
	return slices.IndexFunc(evs, func(e box.Event) bool { return e.Type == typ })
}

// TestSocketTakeAndReturn: the whole take and return through the socket,
// seen in a Watch.
func TestSocketTakeAndReturn(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	w := startWatch(t, r.c)
	w.until(t, "box_started", func(_ boxsocket.Watch, evs []box.Event) bool { return hasEv(evs, box.EventBoxStarted, 0) })

	st, err := r.c.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, "demo-box", st.BoxID)
	require.Equal(t, "test-1", st.Software)
	require.Equal(t, boxconfig.ProfileSim, st.Hardware)
	require.Equal(t, "offline-only", st.Cloud)
	require.Empty(t, st.Broker)
	require.WithinDuration(t, time.Now(), st.Started, time.Minute)
	require.GreaterOrEqual(t, st.UptimeS, int64(0))
	require.WithinDuration(t, time.Now(), st.Clock, time.Minute)
	require.True(t, st.ClockTrusted)
	require.False(t, st.ClockFloor.IsZero())
	require.Positive(t, st.LastSeq)
	require.Positive(t, st.Outbox, "offline: every event waits in the outbox")
	require.True(t, st.LockoutUntil.IsZero())
	require.Zero(t, st.Failures)

	keys, err := r.c.Keys(ctx)
	require.NoError(t, err)
	require.Equal(t, []box.Key{{ID: "key-1", FobUID: testFob, Slot: 1}}, keys)
	slots, err := r.c.Slots(ctx)
	require.NoError(t, err)
	require.Len(t, slots, 12)
	require.Equal(t, "key-1", slots[0].KeyID)
	require.True(t, slots[0].KeyInSlot)
	require.False(t, slots[0].Released)

	// Locked: the slot says so, in words.
	err = r.c.Take(ctx, 1)
	require.True(t, boxsocket.IsStatus(err, http.StatusConflict), "%v", err)
	require.ErrorContains(t, err, "slot 1 is locked")

	// The PIN, typed through the real scanner: the slot releases for the take.
	require.NoError(t, r.c.Press(ctx, testPIN+"#", 0))
	w.until(t, "slot 1 released for the take", func(m boxsocket.Watch, _ []box.Event) bool {
		return m.Slots[0].Released && m.Slots[0].WaitingFor == box.PurposeTake
	})
	w.mu.Lock()
	typed := w.typed
	w.mu.Unlock()
	require.True(t, typed >= 1 && typed <= len(testPIN), "the page's display saw the digits counted (max %d)", typed)
	w.until(t, "the entry cleared by #", func(m boxsocket.Watch, _ []box.Event) bool { return m.Typed == 0 })

	require.NoError(t, r.c.Take(ctx, 1))
	w.until(t, "key_taken and the slot relocked", func(m boxsocket.Watch, evs []box.Event) bool {
		return hasEv(evs, box.EventKeyTaken, 1) && !m.Slots[0].Released && !m.Slots[0].KeyInSlot && !m.Slots[0].KeyPresent
	})

	// Garbage and a frame with a bad checksum on the reader's line: nothing
	// happens; an unknown fob after them is read (fob_unknown), so the line
	// and the decoder are fine, and nothing before it opened a slot.
	frame, err := simrfid.Frame(testFob, simrfid.RDM6300)
	require.NoError(t, err)
	frame[len(frame)-2] ^= 0x01 // the checksum's last digit
	require.NoError(t, r.c.Reader(ctx, boxsocket.ReaderRequest{Raw: []byte("\x00\xffgarbage\x02\x03\x02123")}))
	require.NoError(t, r.c.Reader(ctx, boxsocket.ReaderRequest{Raw: frame}))
	w.mu.Lock()
	taken := len(w.events)
	w.mu.Unlock()
	require.NoError(t, r.c.Reader(ctx, boxsocket.ReaderRequest{Fob: "00:00:00:00:01"}))
	m := w.until(t, "fob_unknown", func(_ boxsocket.Watch, evs []box.Event) bool { return evIndex(evs[taken:], box.EventFobUnknown) >= 0 })
	w.mu.Lock()
	after := slices.Clone(w.events[taken:])
	w.mu.Unlock()
	require.Negative(t, evIndex(after[:evIndex(after, box.EventFobUnknown)], box.EventSlotReleased), "a bad frame opened nothing: %+v", after)
	require.False(t, m.Slots[0].Released)

	// The key's own fob: its home slot releases for the return.
	require.NoError(t, r.c.Reader(ctx, boxsocket.ReaderRequest{Fob: strings.ToLower(testFob), HoldMS: 200}))
	w.until(t, "slot 1 released for the return", func(m boxsocket.Watch, _ []box.Event) bool {
		return m.Slots[0].Released && m.Slots[0].WaitingFor == box.PurposeReturn
	})
	require.NoError(t, r.c.PutBack(ctx, 1))
	w.until(t, "key_returned", func(m boxsocket.Watch, evs []box.Event) bool {
		return hasEv(evs, box.EventKeyReturned, 1) && m.Slots[0].KeyPresent && !m.Slots[0].Released
	})
	err = r.c.PutBack(ctx, 1)
	require.True(t, boxsocket.IsStatus(err, http.StatusConflict), "%v", err)

	// Events through the read route too, in order, after a sequence number.
	evs, err := r.c.Events(ctx, 0, 3)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	require.Equal(t, box.EventBoxStarted, evs[0].Type)
	rest, err := r.c.Events(ctx, evs[2].Seq, 0)
	require.NoError(t, err)
	require.Equal(t, evs[2].Seq+1, rest[0].Seq)

	// At stop the stream ends, saying so, and the socket file goes.
	r.stop(t)
	select {
	case err := <-w.err:
		require.ErrorContains(t, err, "ended the stream")
	case <-time.After(waitFor):
		t.Fatal("the watch did not end with the daemon")
	}
	_, err = os.Stat(r.path)
	require.ErrorIs(t, err, fs.ErrNotExist, "the socket file is removed at stop")
}

// TestSocketJammedSlot: a jammed latch keeps the key in; the released slot
// times out and relocks.
func TestSocketJammedSlot(t *testing.T) {
	r := startSocketDaemon(t, func(c *boxconfig.Config) { c.Timing.Release.Duration = time.Second })
	ctx := t.Context()
	w := startWatch(t, r.c)
	yes := true
	require.NoError(t, r.c.SetFault(ctx, 1, boxsocket.SlotFault{Jammed: &yes}))
	w.until(t, "slot 1 jammed", func(m boxsocket.Watch, _ []box.Event) bool { return m.Slots[0].Jammed && !m.Slots[1].Jammed })

	require.NoError(t, r.c.Press(ctx, testPIN+"#", 0))
	w.until(t, "slot 1 released", func(m boxsocket.Watch, evs []box.Event) bool { return hasEv(evs, box.EventSlotReleased, 1) })
	// The lock may already have relocked under load: either way the key
	// cannot leave, and the answer says why.
	err := r.c.Take(ctx, 1)
	require.True(t, boxsocket.IsStatus(err, http.StatusConflict), "%v", err)
	require.Regexp(t, `slot 1 is (jammed|locked)`, err.Error())
	m := w.until(t, "slot 1 relocked", func(m boxsocket.Watch, evs []box.Event) bool {
		return hasEv(evs, box.EventSlotRelocked, 1) && !m.Slots[0].Released
	})
	require.True(t, m.Slots[0].KeyInSlot)
	require.True(t, m.Slots[0].KeyPresent)
	require.False(t, hasEv(w.events, box.EventKeyTaken, 1))

	// Cleared, it works again.
	no := false
	require.NoError(t, r.c.SetFault(ctx, 1, boxsocket.SlotFault{Jammed: &no}))
	w.until(t, "slot 1 not jammed", func(m boxsocket.Watch, _ []box.Event) bool { return !m.Slots[0].Jammed })
}

// TestSocketJamThenTake checks the 409 for a jammed, released slot exactly:
// the slot's release is long, so the take comes while it is energised.
func TestSocketJamThenTake(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	w := startWatch(t, r.c)
	yes := true
	require.NoError(t, r.c.SetFault(ctx, 1, boxsocket.SlotFault{Jammed: &yes}))
	require.NoError(t, r.c.Press(ctx, testPIN+"#", 0))
	w.until(t, "slot 1 released", func(m boxsocket.Watch, _ []box.Event) bool { return m.Slots[0].Released })
	err := r.c.Take(ctx, 1)
	require.True(t, boxsocket.IsStatus(err, http.StatusConflict), "%v", err)
	require.ErrorContains(t, err, "slot 1 is jammed")
}

// TestSocketDeadSensor: a cut sensor wire reads "no key" with the key there.
func TestSocketDeadSensor(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	w := startWatch(t, r.c)
	w.until(t, "slot 2 key present", func(m boxsocket.Watch, _ []box.Event) bool { return m.Slots[1].KeyPresent })
	dead := true
	require.NoError(t, r.c.SetFault(ctx, 2, boxsocket.SlotFault{SensorDead: &dead}))
	m := w.until(t, "slot 2 reads no key", func(m boxsocket.Watch, _ []box.Event) bool {
		return m.Slots[1].SensorDead && !m.Slots[1].KeyPresent
	})
	require.True(t, m.Slots[1].KeyInSlot, "the key is still there")
	require.True(t, m.Slots[0].KeyPresent, "other slots read as before")
	dead = false
	require.NoError(t, r.c.SetFault(ctx, 2, boxsocket.SlotFault{SensorDead: &dead}))
	w.until(t, "slot 2 reads its key again", func(m boxsocket.Watch, _ []box.Event) bool {
		return !m.Slots[1].SensorDead && m.Slots[1].KeyPresent
	})
}

// TestSocketClock: the simulated board's clock set 2 h ahead, to 1970, and back.
func TestSocketClock(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	w := startWatch(t, r.c)
	w.until(t, "box_started", func(_ boxsocket.Watch, evs []box.Event) bool { return hasEv(evs, box.EventBoxStarted, 0) })
	ahead := time.Now().Add(2 * time.Hour)
	require.NoError(t, r.c.SetClock(ctx, boxsocket.ClockRequest{At: ahead}))
	st, err := r.c.Status(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, ahead, st.Clock, time.Minute)
	require.True(t, st.ClockTrusted)
	w.until(t, "the watch shows the clock ahead", func(m boxsocket.Watch, _ []box.Event) bool {
		return m.Status.Clock.After(time.Now().Add(time.Hour))
	})

	// 1970, below the floor the box started with: it runs on, untrusted.
	require.NoError(t, r.c.SetClock(ctx, boxsocket.ClockRequest{At: time.Unix(0, 0)}))
	st, err = r.c.Status(ctx)
	require.NoError(t, err)
	require.Less(t, st.Clock.Year(), 1971)
	require.False(t, st.ClockTrusted)

	require.NoError(t, r.c.SetClock(ctx, boxsocket.ClockRequest{Reset: true}))
	st, err = r.c.Status(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), st.Clock, time.Minute)
	require.True(t, st.ClockTrusted)
}

// TestSocketValidation: every malformed request is a 400 with a reason.
func TestSocketValidation(t *testing.T) {
	r := startSocketDaemon(t, nil)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", r.path)
	}}}
	defer hc.CloseIdleConnections()
	long := `{"raw":"` + base64.StdEncoding.EncodeToString(make([]byte, boxsocket.MaxRawBytes+1)) + `"}`
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/sim/keypad", `{"keys":""}`, 400, "keys: empty"},
		{"POST", "/v1/sim/keypad", `{"keys":"12a#"}`, 400, `'a' is not on the keypad`},
		{"POST", "/v1/sim/keypad", `{"keys":"` + strings.Repeat("1", boxsocket.MaxKeys+1) + `"}`, 400, "at most 64"},
		{"POST", "/v1/sim/keypad", `{"keys":"1","hold_ms":-1}`, 400, "hold_ms -1"},
		{"POST", "/v1/sim/keypad", `{"keys":"1","hold_ms":60000}`, 400, "hold_ms 60000"},
		{"POST", "/v1/sim/keypad", `{"keys":"1","finger":"index"}`, 400, `unknown field "finger"`},
		{"POST", "/v1/sim/keypad", `{"keys":1}`, 400, "request body"},
		{"POST", "/v1/sim/keypad", `press 1`, 400, "request body"},
		{"POST", "/v1/sim/keypad", ``, 400, "empty"},
		{"POST", "/v1/sim/keypad", `{"keys":"1"}{"keys":"2"}`, 400, "more than one"},
		{"POST", "/v1/sim/keypad", `{"keys":"` + strings.Repeat("1", boxsocket.MaxRequestBody) + `"}`, 400, "over 4096 bytes"},
		{"POST", "/v1/sim/slots/0/take", ``, 400, "want a number in 1..12"},
		{"POST", "/v1/sim/slots/13/put-back", ``, 400, "want a number in 1..12"},
		{"POST", "/v1/sim/slots/one/take", ``, 400, `slot "one"`},
		{"PUT", "/v1/sim/slots/1/fault", `{}`, 400, "set jammed or sensor_dead"},
		{"PUT", "/v1/sim/slots/1/fault", `{"jammed":"yes"}`, 400, "request body"},
		{"PUT", "/v1/sim/slots/99/fault", `{"jammed":true}`, 400, "want a number in 1..12"},
		{"POST", "/v1/sim/reader", `{}`, 400, "exactly one of fob"},
		{"POST", "/v1/sim/reader", `{"fob":"01000734E0","raw":"AQ=="}`, 400, "exactly one of fob"},
		{"POST", "/v1/sim/reader", `{"fob":"0100"}`, 400, "want 10 hex digits"},
		{"POST", "/v1/sim/reader", `{"fob":"01000734EZ"}`, 400, "want 10 hex digits"},
		{"POST", "/v1/sim/reader", `{"raw":""}`, 400, "raw: empty"},
		{"POST", "/v1/sim/reader", long, 400, "at most 256"},
		{"POST", "/v1/sim/reader", `{"raw":"!!!"}`, 400, "request body"},
		{"POST", "/v1/sim/reader", `{"raw":"AQ==","hold_ms":100}`, 400, "hold_ms is for a fob"},
		{"POST", "/v1/sim/reader", `{"fob":"01000734E0","hold_ms":10001}`, 400, "hold_ms 10001"},
		{"PUT", "/v1/sim/clock", `{}`, 400, "exactly one of at"},
		{"PUT", "/v1/sim/clock", `{"at":"2027-01-01T00:00:00Z","reset":true}`, 400, "exactly one of at"},
		{"PUT", "/v1/sim/clock", `{"at":"tomorrow"}`, 400, "request body"},
		{"PUT", "/v1/sim/clock", `{"at":"2500-01-01T00:00:00Z"}`, 400, "more than 100 years"},
		{"GET", "/v1/events?after=-1", ``, 400, `after "-1"`},
		{"GET", "/v1/events?limit=0", ``, 400, "want a number in 1..500"},
		{"GET", "/v1/events?limit=501", ``, 400, "want a number in 1..500"},
		{"GET", "/v1/watch?after=x", ``, 400, `after "x"`},
		{"GET", "/v1/nothing", ``, 404, "no route GET /v1/nothing"},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.body[:min(len(tc.body), 40)], func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, "http://smartboxd"+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			resp, err := hc.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.code, resp.StatusCode, "%s", b)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var er boxsocket.ErrorResponse
			require.NoError(t, json.Unmarshal(b, &er), "%s", b)
			require.Contains(t, er.Error, tc.want)
		})
	}

	// The client reports both the status and the reason.
	err := r.c.Press(t.Context(), "12a", 0)
	var se *boxsocket.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusBadRequest, se.Status)
	require.Contains(t, se.Error(), "400")
	require.Contains(t, se.Error(), "not on the keypad")
}

// TestSocketFile: 0600, a live socket refuses a second daemon, a stale one
// is replaced, a path too long is a clear error.
func TestSocketFile(t *testing.T) {
	r := startSocketDaemon(t, nil)
	fi, err := os.Stat(r.path)
	require.NoError(t, err)
	require.Equal(t, fs.ModeSocket, fi.Mode().Type())
	require.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())

	// A second daemon (its own store) on the live socket fails clearly,
	// and leaves the first one's socket alone.
	dir := t.TempDir()
	seedStore(t, dir, "demo-box")
	_, err = newDaemon(simConfig(t, dir), daemonOptions{Log: testLogger(t), Socket: r.path})
	require.ErrorContains(t, err, "something answers there already")
	_, err = r.c.Status(t.Context())
	require.NoError(t, err, "the first daemon still serves")

	// A stale socket file (a killed daemon's) is replaced.
	stale := socketPath(t)
	ln, err := net.Listen("unix", stale)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
	_, err = os.Stat(stale)
	require.NoError(t, err, "the stale file is there")
	dir2 := t.TempDir()
	seedStore(t, dir2, "demo-box")
	d2, err := newDaemon(simConfig(t, dir2), daemonOptions{Log: testLogger(t), Socket: stale})
	require.NoError(t, err)
	d2.close()
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, fs.ErrNotExist, "close removes the socket file")

	// A file that is not a socket is not removed.
	plain := filepath.Join(filepath.Dir(stale), "plain")
	require.NoError(t, os.WriteFile(plain, nil, 0o600))
	_, err = listenSocket(plain, "")
	require.ErrorContains(t, err, "is not a socket")

	_, err = listenSocket("/tmp/"+strings.Repeat("s", sunPathMax), "")
	require.ErrorContains(t, err, "over the 107 a Unix socket path may have")
}

// TestSocketUmask: under a umask that lets the group in (002), the socket
// file is 0600 whenever a client can find it, and whatever else shows in
// its directory meanwhile lets nobody but the owner in. Not parallel: the
// umask is the process's.
func TestSocketUmask(t *testing.T) {
	old := syscall.Umask(0o002)
	t.Cleanup(func() { syscall.Umask(old) })

	path := socketPath(t)
	dir := filepath.Dir(path)
	// Watch the directory while the daemon starts: every entry seen must be
	// closed to others (a best effort: the window of a chmod after the
	// bind is short; the checks after it are exact).
	stop := make(chan struct{})
	seen := make(chan []string, 1)
	go func() {
		var bad []string
		defer func() { seen <- bad }()
		// open reports whether others may reach p, recording it if so.
		open := func(p string) bool {
			fi, err := os.Lstat(p)
			if err != nil {
				return false // gone between the listing and the stat
			}
			if fi.Mode().Perm()&0o077 != 0 {
				bad = append(bad, fmt.Sprintf("%s %v", p, fi.Mode()))
				return true
			}
			return false
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				p := filepath.Join(dir, e.Name())
				// What is inside a directory closed to others is out of
				// their reach whatever its own mode.
				if open(p) && e.IsDir() {
					inner, _ := os.ReadDir(p)
					for _, ie := range inner {
						open(filepath.Join(p, ie.Name()))
					}
				}
			}
		}
	}()

	dataDir := t.TempDir()
	seedStore(t, dataDir, "demo-box")
	d, err := newDaemon(simConfig(t, dataDir), daemonOptions{Log: testLogger(t), Socket: path})
	require.NoError(t, err)
	t.Cleanup(d.close)
	// Ready: the socket is there, 0600, and answers.
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	require.Equal(t, fs.ModeSocket, fi.Mode().Type())
	require.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
	close(stop)
	require.Empty(t, <-seen, "entries open to the group or others while the socket was made")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the socket is left in its directory")
	c, err := net.Dial("unix", path)
	require.NoError(t, err, "the renamed socket still takes connections")
	require.NoError(t, c.Close())
}

func TestSocketParseSimKeys(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int // slots holding a key
		err  string
	}{
		{"all", []int{1, 2, 3, 4}, ""},
		{"none", nil, ""},
		{"1,3", []int{1, 3}, ""},
		{" 4 , 2 ", []int{2, 4}, ""},
		{"", nil, `"" is not a slot number`},
		{"1,,2", nil, `"" is not a slot number`},
		{"0", nil, "slot 0 is not in 1..4"},
		{"5", nil, "slot 5 is not in 1..4"},
		{"two", nil, `"two" is not a slot number`},
		{"2,2", nil, "slot 2 is listed twice"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			keys, err := parseSimKeys(tc.in, 4)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				var ue cli.UsageError
				require.ErrorAs(t, err, &ue)
				return
			}
			require.NoError(t, err)
			var got []int
			for i, k := range keys {
				if k {
					got = append(got, i+1)
				}
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// TestSocketSimKeys runs smartboxd's command line with --socket and
// --sim-keys: only the listed slots hold a key.
func TestSocketSimKeys(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, "demo-box")
	path := socketPath(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", "smartboxd.sim.toml", "--data", dir, "--socket", path, "--sim-keys", "2,5", "--log-level", "warn"},
			strings.NewReader(""), &stdout, &stderr)
	}()
	c := boxsocket.Dial(path)
	defer c.Close()
	var slots []boxsocket.Slot
	require.Eventually(t, func() bool {
		var err error
		slots, err = c.Slots(ctx)
		return err == nil && slots[1].KeyPresent && slots[4].KeyPresent
	}, waitFor, 10*time.Millisecond, "stderr:\n%s", stderr.String())
	for _, s := range slots {
		want := s.Slot == 2 || s.Slot == 5
		require.Equal(t, want, s.KeyInSlot, "slot %d", s.Slot)
	}
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "2 holding a key") }, waitFor, 10*time.Millisecond,
		"the console's banner counts the keys:\n%s", stdout.String())
	cancel()
	select {
	case code := <-done:
		require.Equal(t, cli.ExitOK, code, "stderr:\n%s", stderr.String())
	case <-time.After(waitFor):
		t.Fatal("smartboxd did not stop")
	}
	_, err := os.Stat(path)
	require.ErrorIs(t, err, fs.ErrNotExist)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", "smartboxd.sim.toml", "--data", t.TempDir(), "--sim-keys", "1,13"}, `--sim-keys "1,13": slot 13 is not in 1..12`},
		{[]string{"--config", "smartboxd.example.toml", "--data", t.TempDir(), "--sim-keys", "1"}, `--sim-keys needs the "sim" hardware profile`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tc.args, strings.NewReader(""), &stdout, &stderr)
		require.Equal(t, cli.ExitUsage, code, "stderr:\n%s", stderr.String())
		require.Contains(t, stderr.String(), tc.want)
	}
}

// TestSocketCloud: a box with [cloud]: the watch shows the link connect,
// the records it applies and the outbox the cloud acknowledges, pushed by
// the link (link.Options.Changed), with no keypad or slot moving.
func TestSocketCloud(t *testing.T) {
	r := startSyncRig(t, brokertest.Mochi)
	dir := r.provisionBox(t)
	pw := writeSecret(t, "mqtt-password", boxPassword+"\n", 0o600)
	cfg := boxConfig(t, dir, "[cloud]\nbroker_url = \""+r.url+"\"\npassword_file = \""+pw+"\"\n")
	path := socketPath(t)
	c := startConsole(t, "--config", cfg, "--log-level", "warn", "--socket", path)
	bc := boxsocket.Dial(path)
	defer bc.Close()
	w := startWatch(t, bc)
	w.until(t, "the link connected", func(m boxsocket.Watch, _ []box.Event) bool {
		return m.Status.Cloud == "connected" && m.Status.Broker == r.url
	})
	_, err := r.cloud.PutKey(syncBoxID, box.Key{ID: "key-1", FobUID: testFob, Slot: 1, Name: "Van 3"})
	require.NoError(t, err)
	rev, err := r.cloud.PutGrant(syncBoxID, box.Grant{ID: "booking-1", Kind: box.KindBooking, KeyIDs: []string{"key-1"}, Source: "fleetio"}, syncPIN)
	require.NoError(t, err)
	m := w.until(t, "the records applied and every event acknowledged", func(m boxsocket.Watch, evs []box.Event) bool {
		return m.Status.Revision == rev && m.Status.Outbox == 0 && hasEv(evs, box.EventRecordsApplied, 0)
	})
	require.Equal(t, "Van 3", m.Slots[0].KeyName)
	// The link's state in the status: synced and acknowledged, nothing refused.
	m = w.until(t, "last sync and last ack", func(m boxsocket.Watch, _ []box.Event) bool {
		return !m.Status.LastSync.IsZero() && !m.Status.LastAck.IsZero()
	})
	require.Empty(t, m.Status.SyncRefused)
	c.quit(t)
}

// TestSocketSimRoutesOnRealHardware: without simulated hardware every
// /v1/sim route is a 404 that says why, before it looks at anything.
func TestSocketSimRoutesOnRealHardware(t *testing.T) {
	d := &daemon{cfg: &boxconfig.Config{}, log: testLogger(t)}
	h := d.socketRoutes()
	for _, route := range []string{
		"POST /v1/sim/keypad", "POST /v1/sim/slots/1/take", "POST /v1/sim/slots/1/put-back",
		"PUT /v1/sim/slots/1/fault", "POST /v1/sim/reader", "PUT /v1/sim/clock",
	} {
		method, path, _ := strings.Cut(route, " ")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(`{"keys":"1"}`)))
		require.Equal(t, http.StatusNotFound, rec.Code, route)
		require.JSONEq(t, `{"error":"not a simulated box"}`, rec.Body.String(), route)
	}
}

// TestSocketNotTakenOver: two daemons making the same socket at once (both
// past the liveness check): the second is refused, not silently put in the
// first's place; and a daemon that stops removes only its own socket file.
func TestSocketNotTakenOver(t *testing.T) {
	path := socketPath(t)
	first, fi, err := listenPrivate(path, -1)
	require.NoError(t, err)
	_, _, err = listenPrivate(path, -1)
	require.ErrorContains(t, err, "something was put there while this daemon started (another smartboxd?)")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the first's socket is left: no temporary directory")

	// Someone replaced the file (an operator, a daemon started by hand):
	// the first daemon's stop leaves the new one alone.
	require.NoError(t, os.Remove(path))
	other, err := net.Listen("unix", path)
	require.NoError(t, err)
	defer other.Close()
	(&boxSocket{path: path, ln: first, file: fi}).close(testLogger(t))
	_, err = os.Lstat(path)
	require.NoError(t, err, "the other socket is still there")
}
