package depot_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
)

// idleWindow is how long the idle CPU is measured over. A box's link pings
// every 30 s, so with 50 boxes a window this long holds about 17 pings: the
// periodic work is in the figure, spread as it would be.
const idleWindow = 10 * time.Second

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's times: 100
// on every architecture Linux runs the box on.
const clockTicks = 100

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
				before := cpuTicks(b, pids)
				time.Sleep(idleWindow)
				after := cpuTicks(b, pids)
				rss := 0
				for _, p := range pids {
					rss += rssKiB(b, p)
				}
				b.ReportMetric(float64(after-before)/clockTicks/idleWindow.Seconds()*100, "idle-cpu-%")
				b.ReportMetric(float64(rss)/1024, "rss-MiB")
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

// cpuTicks sums utime and stime (fields 14 and 15 of /proc/<pid>/stat).
func cpuTicks(b *testing.B, pids []int) int64 {
	var sum int64
	for _, p := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			b.Fatal(err)
		}
		// The command name (field 2) may hold spaces: count from after it.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		for _, i := range []int{11, 12} { // utime, stime: fields 14, 15 overall
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			sum += v
		}
	}
	return sum
}

// rssKiB is VmRSS from /proc/<pid>/status.
func rssKiB(b *testing.B, pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no VmRSS for %d", pid)
	return 0
}
