package loadbox

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

// testWait bounds each wait: generous for a loaded 2-core machine.
const testWait = 2 * time.Minute

// TestFleetSurvivesBridgeRestart: 30 boxes current, events each, the
// bridge restarted with a grant change made during the outage; every box
// current again and every event stored once, seq 1..N per box.
func TestFleetSurvivesBridgeRestart(t *testing.T) {
	const boxes, events = 30, 20
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	start := time.Now()
	f, err := StartFleet(ctx, FleetOptions{Boxes: boxes, Grants: 3, DataDir: t.TempDir(), Logger: failureLog(t)})
	require.NoError(t, err)
	t.Cleanup(f.Close)
	require.NoError(t, f.Connect(ctx))
	t.Logf("%d boxes registered and current in %s", boxes, time.Since(start))
	for _, b := range f.Boxes {
		for i := range events {
			b.Record(box.Event{Type: box.EventCodeRefused, Time: time.Now(), Detail: "load " + string(rune('a'+i%26))})
		}
	}
	start = time.Now()
	require.NoError(t, f.RestartBridge(true))
	t.Logf("bridge restarted in %s", time.Since(start))
	require.NoError(t, f.WaitCurrent(ctx))
	t.Logf("every box current again %s after the restart began", time.Since(start))
	for _, b := range f.Boxes {
		require.NoError(t, b.Wait(ctx, func(s Snapshot) bool { return s.Outbox == 0 && s.Acked == s.LastSeq }))
		s := b.State()
		require.Equal(t, s.LastSeq, s.Removed, "box %s: each event left the outbox once", b.ID())
		evs, err := f.Service().Cloud().Events(b.ID(), 0, 10000)
		require.NoError(t, err)
		require.Len(t, evs, int(s.LastSeq), "box %s", b.ID())
		for i, e := range evs {
			require.Equal(t, uint64(i+1), e.Seq, "box %s: seq 1..N, no duplicate", b.ID())
		}
		require.Equal(t, 3, s.Grants)
	}
}

// failureLog is a logger at Info whose lines the test prints only if it
// fails: the bridge's and the boxes' story of a run CI could not repeat.
func failureLog(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("logs of the run:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
