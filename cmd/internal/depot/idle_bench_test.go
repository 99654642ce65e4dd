package depot_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/cmd/internal/procstat"
)

// idleWindow is how long the idle CPU is measured over. A box's link pings
// every 30 s, so with 50 boxes a window this long holds about 17 pings: the
// periodic work is in the figure, spread as it would be.
const idleWindow = 10 * time.Second

// BenchmarkIdle starts a whole simulated installation (the bridge, the fake
// Fleetio, the catchers in this process; each box a smartboxd process),
// lets it settle, and reports what it holds while nobody does anything:
// resident memory of this process plus every box process, and CPU over
// idleWindow as a percentage of one core. With 1 box and with 50.
func BenchmarkIdle(b *testing.B) {
	bin := depottest.Smartboxd(b)
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("boxes=%d", n), func(b *testing.B) {
			for range b.N {
				d, err := depot.Start(b.Context(), depot.Options{Dir: b.TempDir(), Boxes: n, Smartboxd: bin})
				if err != nil {
					b.Fatal(err)
				}
				// Settle: every box connected and synced, the seeded
				// booking made, the start-up work (bcrypt, snapshots) done.
				deadline := time.Now().Add(2 * time.Minute)
				for !allConnected(d) {
					if time.Now().After(deadline) {
						b.Fatal("the boxes did not all connect")
					}
					<-d.Changed()
				}
				time.Sleep(3 * time.Second)
				pids := []int{os.Getpid()}
				for _, v := range d.Boxes() {
					pids = append(pids, v.PID)
				}
				cpu, rss, err := procstat.Idle(idleWindow, pids...)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(cpu, "idle-cpu-%")
				b.ReportMetric(rss, "rss-MiB")
				if err := d.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func allConnected(d *depot.Depot) bool {
	for _, v := range d.Boxes() {
		if v.State == nil || v.State.Status.Cloud != "connected" || v.State.Status.Outbox != 0 {
			return false
		}
	}
	return true
}
