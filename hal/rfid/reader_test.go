package rfid_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/box/boxtest"
	"github.com/smartbox-oss/smartbox/hal/rfid"
	simrfid "github.com/smartbox-oss/smartbox/sim/rfid"
)

// Generous: the suite runs with -race on 2 busy cores.
const (
	waitFor = 10 * time.Second
	tick    = 5 * time.Millisecond
)

func newSim(t *testing.T, v simrfid.Variant) *simrfid.Reader {
	t.Helper()
	s, err := simrfid.New(v)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type harness struct {
	r     *rfid.Reader
	scans chan string
}

// start runs a Reader until the test ends; cleanup cancels it and checks that
// Run returned nil promptly. Make sims before calling start, so they close after.
func start(t *testing.T, cfg rfid.Config, log *slog.Logger) *harness {
	t.Helper()
	h := &harness{r: rfid.New(cfg, log), scans: make(chan string, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.r.Run(ctx, func(uid string) { h.scans <- uid }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitFor):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

func (h *harness) waitOpen(t *testing.T, n uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return h.r.Stats().Opens >= n }, waitFor, tick, "port open #%d", n)
}

func (h *harness) expectScan(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-h.scans:
		require.Equal(t, want, got)
	case <-time.After(waitFor):
		t.Fatalf("no scan of %s within %v (stats %+v)", want, waitFor, h.r.Stats())
	}
}

func (h *harness) expectNoMoreScans(t *testing.T) {
	t.Helper()
	select {
	case got := <-h.scans:
		t.Fatalf("unexpected scan %s", got)
	default:
	}
}

func TestReaderWholeFrames(t *testing.T) {
	for _, v := range []simrfid.Variant{simrfid.RDM6300, simrfid.ID12} {
		t.Run(v.String(), func(t *testing.T) {
			sim := newSim(t, v)
			h := start(t, rfid.Config{Port: sim.Path()}, nil)
			h.waitOpen(t, 1)
			require.NoError(t, sim.Present("01000734e0"))
			h.expectScan(t, "01000734E0")
			// A different tag counts at once, within the repeat window.
			require.NoError(t, sim.Present("0415AB93C7"))
			h.expectScan(t, "0415AB93C7")
			sim.Remove()
			require.Zero(t, h.r.Stats().BadChecksum)
		})
	}
}

// split cuts p into chunks: 1 byte each when n == 1, else at random points.
func split(p []byte, n int, rng *rand.Rand) [][]byte {
	var out [][]byte
	for len(p) > 0 {
		k := 1
		if n > 1 {
			k = 1 + rng.IntN(n)
		}
		k = min(k, len(p))
		out = append(out, p[:k])
		p = p[k:]
	}
	return out
}

func TestReaderRawStreams(t *testing.T) {
	a := frame(t, "01000734E0", simrfid.RDM6300)
	b := frame(t, "0415AB93C7", simrfid.ID12)
	c := frame(t, "C0FFEE0001", simrfid.RDM6300)
	badSum := bytes.Clone(c)
	badSum[12] ^= 0x01
	tests := []struct {
		name         string
		stream       []byte
		chunk        int // 1: byte by byte; else random pieces up to this size
		want         []string
		badSum, badF uint64
	}{
		{name: "RDM6300 byte by byte", stream: a, chunk: 1, want: []string{"01000734E0"}},
		{name: "ID-12 byte by byte", stream: b, chunk: 1, want: []string{"0415AB93C7"}},
		{name: "random splits, both layouts", stream: cat(a, b, c), chunk: 9, want: []string{"01000734E0", "0415AB93C7", "C0FFEE0001"}},
		{name: "garbage before and between", stream: cat([]byte("\x00\xffnoise\r\n\x03"), a, []byte("AB12\x03\x7f"), b),
			chunk: 5, want: []string{"01000734E0", "0415AB93C7"}},
		{name: "bad checksum dropped and counted", stream: cat(badSum, a), chunk: 4, want: []string{"01000734E0"}, badSum: 1},
		{name: "cut frame then a good one", stream: cat(c[:6], b), chunk: 3, want: []string{"0415AB93C7"}, badF: 1},
		{name: "lower-case hex", stream: cat(lower(a), lower(b)), chunk: 7, want: []string{"01000734E0", "0415AB93C7"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(t, simrfid.RDM6300)
			h := start(t, rfid.Config{Port: sim.Path()}, nil)
			h.waitOpen(t, 1) // bytes written before the open are discarded by design
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			for _, p := range split(tc.stream, tc.chunk, rng) {
				require.NoError(t, sim.WriteRaw(p))
			}
			for _, uid := range tc.want {
				h.expectScan(t, uid)
			}
			// The bad frames came first, so their counts are final by now.
			bc, bf := h.r.Errors()
			require.Equal(t, tc.badSum, bc, "bad checksums")
			require.Equal(t, tc.badF, bf, "bad frames")
			h.expectNoMoreScans(t)
		})
	}
}

// Frames that queued in the tty while nobody read it are not replayed as
// scans when the port opens: they are scans from the past.
func TestReaderDiscardsInputQueuedBeforeOpen(t *testing.T) {
	sim := newSim(t, simrfid.RDM6300)
	require.NoError(t, sim.WriteRaw(frame(t, "0000000001", simrfid.RDM6300)))
	h := start(t, rfid.Config{Port: sim.Path()}, nil)
	h.waitOpen(t, 1)
	require.NoError(t, sim.Present("0000000002"))
	h.expectScan(t, "0000000002")
	h.expectNoMoreScans(t)
}

func TestReaderRepeatsCollapseWhilePresent(t *testing.T) {
	sim := newSim(t, simrfid.ID12)
	// The reader's clock moves one repeat period per frame, so the frames
	// are 50 ms apart for the default window however late the reader's
	// goroutine runs on a loaded machine.
	h := start(t, rfid.Config{Port: sim.Path(), Clock: newTestClock(simrfid.Repeat)}, nil)
	h.waitOpen(t, 1)
	require.NoError(t, sim.Present("01000734E0"))
	h.expectScan(t, "01000734E0")
	require.Eventually(t, func() bool { return h.r.Stats().Frames >= 10 }, waitFor, tick, "tag stays ~0.5s")
	sim.Remove()
	// A different tag as a marker: everything before it has been processed.
	require.NoError(t, sim.Present("0415AB93C7"))
	h.expectScan(t, "0415AB93C7")
	h.expectNoMoreScans(t)
	st := h.r.Stats()
	require.EqualValues(t, 2, st.Scans)
	require.GreaterOrEqual(t, st.Frames, uint64(11))
}

func TestReaderRepresentAfterGapCountsAgain(t *testing.T) {
	sim := newSim(t, simrfid.RDM6300)
	const window = 150 * time.Millisecond
	// Frames of one tap are a repeat period apart on the reader's clock; the
	// gap between taps is the test's Advance.
	clock := newTestClock(simrfid.Repeat)
	h := start(t, rfid.Config{Port: sim.Path(), Repeat: window, Clock: clock}, nil)
	h.waitOpen(t, 1)
	for range 3 {
		require.NoError(t, sim.Tap("C0FFEE0001", 120*time.Millisecond))
		h.expectScan(t, "C0FFEE0001")
		// Remove has returned, so no frame follows; once the reader has
		// decoded every frame sent, the gap starts.
		require.Eventually(t, func() bool { return h.r.Stats().Frames >= sim.Sent() }, waitFor, tick, "every frame of the tap read")
		clock.Advance(2 * window)
	}
	h.expectNoMoreScans(t)
}

// syncBuffer is a log sink the test can read while Run writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestReaderPortMissingAtStartThenAppears(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyRFID")
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := start(t, rfid.Config{Port: link, ReopenMin: 10 * time.Millisecond, ReopenMax: 80 * time.Millisecond}, log)
	require.Eventually(t, func() bool { return h.r.Stats().OpenFailures >= 3 }, waitFor, tick)
	require.Zero(t, h.r.Stats().Opens)
	require.Contains(t, logs.String(), "level=WARN msg=\"fob reader unavailable, retrying\"")
	require.Contains(t, logs.String(), link, "the log names the port")

	sim := newSim(t, simrfid.RDM6300)
	require.NoError(t, sim.LinkAt(link))
	h.waitOpen(t, 1)
	require.NoError(t, sim.Present("01000734E0"))
	h.expectScan(t, "01000734E0")
	require.Contains(t, logs.String(), "fob reader port open")
}

func TestReaderPortVanishesAndComesBack(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyRFID")
	first := newSim(t, simrfid.RDM6300)
	require.NoError(t, first.LinkAt(link))
	h := start(t, rfid.Config{Port: link, ReopenMin: 10 * time.Millisecond, ReopenMax: 80 * time.Millisecond}, nil)
	h.waitOpen(t, 1)
	require.NoError(t, first.Present("01000734E0"))
	h.expectScan(t, "01000734E0")

	// Unplug: the pty master closes, the reader's reads fail (EIO).
	require.NoError(t, first.Close())
	require.Eventually(t, func() bool { return h.r.Stats().Lost >= 1 }, waitFor, tick)

	// Plug a new reader in at the same path (a different pty behind it).
	second := newSim(t, simrfid.ID12)
	require.NoError(t, second.LinkAt(link))
	h.waitOpen(t, 2)
	require.NoError(t, second.Present("0415AB93C7"))
	h.expectScan(t, "0415AB93C7")
	h.expectNoMoreScans(t)
}

func TestReaderStopsPromptly(t *testing.T) {
	t.Run("while reading", func(t *testing.T) {
		sim := newSim(t, simrfid.RDM6300)
		r := rfid.New(rfid.Config{Port: sim.Path()}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, nil) }() // a nil callback is allowed
		require.Eventually(t, func() bool { return r.Stats().Opens == 1 }, waitFor, tick)
		require.NoError(t, sim.Present("01000734E0"))
		require.Eventually(t, func() bool { return r.Stats().Frames >= 1 }, waitFor, tick)
		began := time.Now()
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
			require.Less(t, time.Since(began), 2*time.Second)
		case <-time.After(waitFor):
			t.Fatal("Run did not return")
		}
	})
	t.Run("while backing off", func(t *testing.T) {
		r := rfid.New(rfid.Config{Port: filepath.Join(t.TempDir(), "none"), ReopenMin: time.Hour}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, nil) }()
		require.Eventually(t, func() bool { return r.Stats().OpenFailures == 1 }, waitFor, tick)
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitFor):
			t.Fatal("Run did not return")
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.NoError(t, rfid.New(rfid.Config{Port: "/dev/null"}, nil).Run(ctx, nil))
	})
}

func TestReaderNeedsAPort(t *testing.T) {
	err := rfid.New(rfid.Config{}, nil).Run(context.Background(), nil)
	require.ErrorContains(t, err, "no serial port configured")
}

func TestReaderConfigDefaults(t *testing.T) {
	c := rfid.New(rfid.Config{Port: "/dev/ttyAMA0"}, nil).Config()
	require.Equal(t, 9600, c.Baud)
	require.Equal(t, rfid.DefaultRepeat, c.Repeat)
	require.Equal(t, rfid.DefaultReopenMin, c.ReopenMin)
	require.Equal(t, rfid.DefaultReopenMax, c.ReopenMax)
}

// A missing port is retried with a doubling wait, not hammered: one attempt
// per wait, each wait twice the last up to ReopenMax. The waits run on an
// injected clock that moves only when the test says, so the test sees every
// wait the reader asks for and no scheduling delay can blur them.
func TestReaderBacksOffExponentially(t *testing.T) {
	const first = 40 * time.Millisecond
	clock := newTestClock(0)
	h := start(t, rfid.Config{Port: filepath.Join(t.TempDir(), "none"), ReopenMin: first, ReopenMax: 300 * time.Millisecond, Clock: clock}, nil)
	ms := time.Millisecond
	for i, want := range []time.Duration{40 * ms, 80 * ms, 160 * ms, 300 * ms, 300 * ms} {
		got := clock.nextWait(t)
		require.Equal(t, want, got, "wait %d", i+1)
		// The reader is parked in the wait: exactly one attempt per wait so far.
		require.EqualValues(t, i+1, h.r.Stats().OpenFailures, "attempts before wait %d", i+1)
		clock.Advance(got)
	}
}

// testClock is a Reader's clock for tests. Now moves it by step at each call:
// the reader reads it once per frame, so a present tag's frames are step
// apart on the reader's clock, however late its goroutine runs. The test
// moves it further with Advance, which fires due back-off waits; every
// back-off the reader asks for is also sent on waits.
type testClock struct {
	*boxtest.Clock
	step  time.Duration
	waits chan time.Duration
}

func newTestClock(step time.Duration) *testClock {
	return &testClock{
		Clock: boxtest.NewClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)),
		step:  step,
		waits: make(chan time.Duration, 100),
	}
}

func (c *testClock) Now() time.Time {
	now := c.Clock.Now()
	if c.step > 0 {
		c.Clock.Advance(c.step)
	}
	return now
}

func (c *testClock) AfterFunc(d time.Duration, f func()) box.Timer {
	tm := c.Clock.AfterFunc(d, f)
	select {
	case c.waits <- d:
	default:
	}
	return tm
}

// nextWait returns the next back-off the reader asks for.
func (c *testClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(waitFor):
		t.Fatal("the reader asked for no back-off")
		return 0
	}
}
