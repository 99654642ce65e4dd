package loadbox

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// Bounds of the 1,000-box benchmarks.
const (
	// benchBoxes is the fleet size.
	benchBoxes = 1000
	// benchPerAddress boxes connect from each loopback address: a fleet of
	// depots of eight behind their own NATs. With all 1,000 on 127.0.0.1
	// (one NAT for the fleet) the broker's bound of 16 connections per
	// address not logged in yet admits them 16 at a time, paho's back-off
	// (1 s doubling to 30 s, no jitter) brings them back in waves, and a
	// storm took 209 s where the first connect took 11 s: a measure of
	// that bound, not of the stores (docs/cloud-service.md).
	benchPerAddress = 8
	// benchEvents are recorded per box in BenchmarkEventsIngest1000.
	benchEvents = 20
	// benchWait bounds each phase (registering, connecting, the storm,
	// an ingest) on its own. The connects are bound by the embedded
	// broker's persistent sessions, one fsynced bbolt commit per session
	// change (about 20 per box connecting): on a disk of a few hundred
	// fsyncs/s that is minutes for 1,000 boxes, more on a loaded machine.
	benchWait = 10 * time.Minute
	// fsyncProbes is how many write+fsync pairs measure the disk's rate.
	fsyncProbes = 200
	// fsyncRecord is the size of each: one small record, as an event batch's.
	fsyncRecord = 512
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

// phase is a context for one phase, bounded by benchWait.
func phase(b *testing.B) (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.Context(), benchWait)
}

// benchFleet is a connected fleet of benchBoxes and its data directory.
type benchFleet struct {
	f     *Fleet
	dir   string
	close func() // once: disconnects, closes the bridge, removes dir
}

// leftConnected is the fleet BenchmarkReconnectStorm1000 leaves connected
// and current, for BenchmarkEventsIngest1000 after it in the same run (go
// runs benchmarks one at a time, in source order), per store engine:
// connecting 1,000 boxes is minutes of the broker's fsyncs (see
// benchWait), which the ingest benchmark does not measure and need not pay
// twice. Run alone, it connects its own. TestMain closes what is left.
var leftConnected = map[string]*benchFleet{}

// The store engines the benchmarks run on: the bridge's bbolt files, and a
// durable PostgreSQL (fsync on, as in production: pgtest.SharedDurable).
const (
	onBbolt    = "bbolt"
	onPostgres = "postgres"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	for _, bf := range leftConnected {
		bf.close()
	}
	os.Exit(code)
}

// startConnected starts a fleet of benchBoxes (3 grants each) in a new
// directory and connects it; it returns it and how long the connect took.
// A failed benchmark closes it (cleanup); one that hands it on to
// leftConnected does not.
func startConnected(b *testing.B, engine string) (*benchFleet, time.Duration) {
	b.Helper()
	dir, err := os.MkdirTemp("", "loadbox-bench")
	if err != nil {
		b.Fatal(err)
	}
	var url string
	if engine == onPostgres {
		// A database of the cluster's own lifetime: the fleet may outlive
		// this benchmark (leftConnected).
		if url, err = pgtest.SharedDurable(b).Database(); err != nil {
			b.Fatal(err)
		}
	}
	bf := &benchFleet{dir: dir}
	b.Cleanup(func() {
		if leftConnected[engine] != bf {
			bf.close()
		}
	})
	// The fleet's own context is the process's: the boxes outlive this
	// benchmark when they are handed on.
	t0 := time.Now()
	f, err := StartFleet(context.Background(), FleetOptions{Boxes: benchBoxes, Grants: 3, DataDir: dir, StoreURL: url, BoxesPerAddress: benchPerAddress})
	bf.f = f
	bf.close = sync.OnceFunc(func() {
		if f != nil {
			f.Close()
		}
		_ = os.RemoveAll(dir)
	})
	if err != nil {
		b.Fatal(err)
	}
	registered := time.Since(t0)
	ctx, cancel := phase(b)
	defer cancel()
	t1 := time.Now()
	if err := f.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	connected := time.Since(t1)
	b.Logf("%d boxes registered in %s, connected and current in %s", benchBoxes, registered, connected)
	return bf, connected
}

// BenchmarkReconnectStorm1000: 1,000 boxes connected and current (s/connect:
// the first connect of all, the reference), then the bridge and its broker
// restarted with a grant of every box changed during the outage; s/storm is
// until every box holds the new revision again, boxes/s its rate. The
// bridge's stores are its bbolt files; ...Postgres below is the same on a
// durable PostgreSQL.
func BenchmarkReconnectStorm1000(b *testing.B) { reconnectStorm(b, onBbolt) }

// BenchmarkEventsIngest1000: 1,000 connected boxes each record benchEvents
// events at once; events/s is until the cloud has acked all of them. Then
// one box records as many alone (events/s_one_box). fsyncs/s is the
// reference: write+fsync pairs per second in the bridge's data directory,
// measured right after, on the same disk.
func BenchmarkEventsIngest1000(b *testing.B) { eventsIngest(b, onBbolt) }

// BenchmarkReconnectStorm1000Postgres is the storm with the bridge's stores
// on a durable PostgreSQL (the broker's sessions are still its own files).
func BenchmarkReconnectStorm1000Postgres(b *testing.B) { reconnectStorm(b, onPostgres) }

// BenchmarkEventsIngest1000Postgres is the ingest with the cloud's events
// stored in a durable PostgreSQL on the same disk.
func BenchmarkEventsIngest1000Postgres(b *testing.B) { eventsIngest(b, onPostgres) }

func reconnectStorm(b *testing.B, engine string) {
	raiseFDLimit(b)
	for b.Loop() {
		bf, connected := startConnected(b, engine)
		b.ReportMetric(connected.Seconds(), "s/connect")
		if err := bf.f.RestartBridge(true); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := phase(b)
		t1 := time.Now()
		if err := bf.f.WaitCurrent(ctx); err != nil {
			b.Fatal(err)
		}
		storm := time.Since(t1)
		b.ReportMetric(storm.Seconds(), "s/storm")
		b.ReportMetric(benchBoxes/storm.Seconds(), "boxes/s")
		cancel()
		if left := leftConnected[engine]; left != nil {
			left.close()
		}
		leftConnected[engine] = bf
	}
}

func eventsIngest(b *testing.B, engine string) {
	raiseFDLimit(b)
	for b.Loop() {
		bf := leftConnected[engine]
		delete(leftConnected, engine)
		if bf == nil {
			bf, _ = startConnected(b, engine)
		} else {
			b.Cleanup(bf.close)
		}
		ctx, cancel := phase(b)
		// The cloud's counters say why a run was slow: events stored
		// already (a box resent after its ack timeout), batches dropped by
		// the per-box event rate or by full worker queues.
		s0 := bf.f.Service().Cloud().Stats()
		b.ReportMetric(ingest(b, ctx, bf.f.Boxes, benchEvents), "events/s")
		s1 := bf.f.Service().Cloud().Stats()
		b.ReportMetric(ingest(b, ctx, bf.f.Boxes[:1], benchBoxes*benchEvents), "events/s_one_box")
		s2 := bf.f.Service().Cloud().Stats()
		cancel()
		reportResends(b, s0, s1, "")
		reportResends(b, s1, s2, "_one_box")
		b.ReportMetric(fsyncRate(b, bf.dir), "fsyncs/s")
		bf.close()
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

// fsyncRate is write+fsync pairs per second of one small record in dir, as
// sync/link's BenchmarkFsync measures its own disk.
func fsyncRate(b *testing.B, dir string) float64 {
	b.Helper()
	f, err := os.Create(filepath.Join(dir, "fsync.dat"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, fsyncRecord)
	t0 := time.Now()
	for range fsyncProbes {
		if _, err := f.WriteAt(rec, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	return fsyncProbes / time.Since(t0).Seconds()
}

// reportResends reports, between two of the cloud's Stats, the events it
// had stored already and the batches it dropped (event rate, full queues).
func reportResends(b *testing.B, before, after cloud.Stats, suffix string) {
	b.ReportMetric(float64(after.DuplicateEvents-before.DuplicateEvents), "dups"+suffix)
	b.ReportMetric(float64(after.EventsThrottled-before.EventsThrottled+after.QueueFull-before.QueueFull), "dropped"+suffix)
}
