package loadbox

import (
	"context"
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
	f, err := StartFleet(ctx, FleetOptions{Boxes: boxes, Grants: 3, DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(f.Close)
	require.NoError(t, f.Connect(ctx))
	for _, b := range f.Boxes {
		for i := range events {
			b.Record(box.Event{Type: box.EventCodeRefused, Time: time.Now(), Detail: "load " + string(rune('a'+i%26))})
		}
	}
	require.NoError(t, f.RestartBridge(true))
	require.NoError(t, f.WaitCurrent(ctx))
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
