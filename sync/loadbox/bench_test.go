package loadbox

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// benchBoxes is the fleet size; benchWait bounds each phase.
const (
	benchBoxes  = 1000
	benchEvents = 20 // per box in BenchmarkEventsIngest1000
	benchWait   = 5 * time.Minute
)

// raiseFDLimit: 1,000 MQTT connections are about 2,000 fds in this one
// process (both ends on loopback); the soft limit is raised to the hard one.
func raiseFDLimit(b *testing.B) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			b.Logf("raising RLIMIT_NOFILE: %v", err)
		}
	}
}

func BenchmarkReconnectStorm1000(b *testing.B) {
	raiseFDLimit(b)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(b.Context(), benchWait)
		f, err := StartFleet(ctx, FleetOptions{Boxes: benchBoxes, Grants: 3, DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := f.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(t0).Seconds(), "s/connect")
		if err := f.RestartBridge(true); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := f.WaitCurrent(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(t1).Seconds(), "s/storm")
		f.Close()
		cancel()
	}
}

func BenchmarkEventsIngest1000(b *testing.B) {
	raiseFDLimit(b)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(b.Context(), benchWait)
		f, err := StartFleet(ctx, FleetOptions{Boxes: benchBoxes, DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(ingest(b, ctx, f.Boxes, benchEvents), "events/s")
		b.ReportMetric(ingest(b, ctx, f.Boxes[:1], benchBoxes*benchEvents), "events/s_one_box")
		f.Close()
		cancel()
	}
}

// ingest records n events on each box and returns events acked per second.
func ingest(b *testing.B, ctx context.Context, boxes []*Box, n int) float64 {
	t0 := time.Now()
	for _, bx := range boxes {
		evs := make([]box.Event, n)
		for i := range evs {
			evs[i] = box.Event{Type: box.EventCodeRefused, Time: t0, Reason: box.ReasonUnknownCode}
		}
		bx.Record(evs...)
	}
	for _, bx := range boxes {
		if err := bx.Wait(ctx, func(s Snapshot) bool { return s.Outbox == 0 && s.Acked == s.LastSeq }); err != nil {
			b.Fatal(err)
		}
	}
	return float64(len(boxes)*n) / time.Since(t0).Seconds()
}
