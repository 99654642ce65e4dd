package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/procstat"
)

// Bounds of the idle benchmarks.
const (
	// idleWindow is how long CPU is measured over: long enough that the
	// box's periodic work (the keypad scan, timers, the Go runtime's own
	// background GC and scavenger) is in the figure several times over.
	idleWindow = 10 * time.Second
	// idleSettle is left to a ready process before the window: a start's
	// tail (the first GC after loading the store, freed pages returned)
	// is not idleness.
	idleSettle = 3 * time.Second
)

// BenchmarkIdle100k: a real smartboxd process on the sim profile with
// 100,000 grants (the cold-start store), keypad ready, then left alone:
// CPU over idleWindow as a percentage of one core (idle-cpu-%) and its
// resident memory at the end (rss-MiB), read from /proc.
func BenchmarkIdle100k(b *testing.B) {
	bin := buildSmartboxd(b)
	dir := b.TempDir()
	seedColdStart(b, dir)
	sock := benchSocket(b)
	for range b.N {
		p, _ := startReady(b, bin, dir, sock)
		reportIdle(b, p.cmd.Process.Pid)
		if err := p.stop(); err != nil {
			b.Fatalf("smartboxd's stop: %v\n%s", err, p.log.String())
		}
	}
}

// BenchmarkIdleGoProcess is BenchmarkIdle100k's reference: a minimal Go
// program (its main waits for SIGTERM and does nothing else), built and
// measured the same way. What smartboxd holds past it is its own.
func BenchmarkIdleGoProcess(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "main.go")
	prog := "package main\n\nimport (\n\t\"os\"\n\t\"os/signal\"\n\t\"syscall\"\n)\n\n" +
		"func main() {\n\tc := make(chan os.Signal, 1)\n\tsignal.Notify(c, syscall.SIGTERM)\n\t<-c\n}\n"
	if err := os.WriteFile(src, []byte(prog), 0o600); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "idle")
	build := exec.Command("go", "build", "-o", bin, src)
	build.Dir = dir // outside the module: a program of the standard library only
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the idle Go program: %v\n%s", err, out)
	}
	for range b.N {
		cmd := exec.Command(bin)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		reportIdle(b, cmd.Process.Pid)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("the idle Go program's stop: %v", err)
		}
	}
}

// reportIdle waits idleSettle, then measures pid over idleWindow.
func reportIdle(b *testing.B, pid int) {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	time.Sleep(idleSettle)
	cpu, rss, err := procstat.Idle(idleWindow, pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(cpu, "idle-cpu-%")
	b.ReportMetric(rss, "rss-MiB")
	b.ReportMetric(0, "ns/op") // the figures above say it; one op is a whole window
}
