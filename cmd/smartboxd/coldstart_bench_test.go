package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
	"github.com/smartbox-oss/smartbox/store"
)

// Bounds of the cold-start benchmark.
const (
	// coldStartGrants is the store's size: far more grants than a box
	// holds, so that the figure is an upper bound.
	coldStartGrants = 100_000
	// coldStartBatch is how many grants one seeding Apply writes.
	coldStartBatch = 10_000
	// coldStartWait bounds one start: a box that is not ready by then has
	// failed, not started slowly.
	coldStartWait = time.Minute
)

// BenchmarkColdStart100k: a real smartboxd process on the sim profile,
// started on a store of 100,000 grants (seeded once), timed from exec until
// the box is ready for a driver: its socket answers GET /v1/status AND it
// has logged "ready:" (notify.go: the controller answered a Flush queued
// after the keypad scanner, the reader and the key sensors started, the
// moment systemd is sent READY=1). The stop (SIGTERM, every slot relocked)
// is outside the timing. Reported: ms/start (mean), p50-ms, max-ms.
func BenchmarkColdStart100k(b *testing.B) { benchColdStart(b, true) }

// BenchmarkColdStartEmpty is BenchmarkColdStart100k's reference: the same
// starts on an empty store (no keys, no grants), so that the difference is
// what 100,000 grants cost a start.
func BenchmarkColdStartEmpty(b *testing.B) { benchColdStart(b, false) }

func benchColdStart(b *testing.B, seeded bool) {
	bin := buildSmartboxd(b)
	dir := b.TempDir()
	if seeded {
		seedColdStart(b, dir)
	}
	sock := benchSocket(b)

	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		took = append(took, coldStart(b, bin, dir, sock))
	}
	b.StopTimer()
	slices.Sort(took)
	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(sum)/float64(len(took)), "ms/start")
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
}

// buildSmartboxd builds this package's command into a temporary directory.
func buildSmartboxd(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "smartboxd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("building smartboxd: %v\n%s", err, out)
	}
	return bin
}

// benchSocket is a box socket's path in a short temporary directory: a unix
// socket's path is limited to 108 bytes, which b.TempDir() can pass.
func benchSocket(b *testing.B) string {
	b.Helper()
	sockDir, err := os.MkdirTemp("", "sbcold")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	return filepath.Join(sockDir, "s.sock")
}

// seedColdStart makes demo-box's store in dir: 12 keys and coldStartGrants
// bookings with distinct 8-digit codes.
func seedColdStart(b *testing.B, dir string) {
	b.Helper()
	s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{BoxID: "demo-box", Slots: 12})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	keys := make([]box.Key, 12)
	for i := range keys {
		keys[i] = box.Key{ID: fmt.Sprintf("k%d", i+1), Slot: i + 1, FobUID: fmt.Sprintf("%010X", 0x0100000000+i)}
	}
	for start, rev := 0, uint64(0); start < coldStartGrants; start, rev = start+coldStartBatch, rev+1 {
		gs := make([]box.GrantPut, 0, coldStartBatch)
		for i := start; i < start+coldStartBatch; i++ {
			gs = append(gs, box.GrantPut{Grant: box.Grant{ID: fmt.Sprintf("g-%06d", i), Kind: box.KindBooking,
				KeyIDs: []string{keys[i%12].ID}, Source: "bench"}, Code: fmt.Sprintf("%08d", (i*7919)%100_000_000)})
		}
		batch := store.Batch{FromRevision: rev, ToRevision: rev + 1, Grants: gs}
		if start == 0 {
			batch.Keys = keys
		}
		if _, err := s.Apply(batch); err != nil {
			b.Fatalf("seeding grants %d..: %v", start, err)
		}
	}
}

// coldStart runs one start of bin and returns the time to ready; it stops
// the process (untimed) before returning.
func coldStart(b *testing.B, bin, dir, sock string) time.Duration {
	b.Helper()
	p, took := startReady(b, bin, dir, sock)
	b.StopTimer()
	defer b.StartTimer()
	if err := p.stop(); err != nil {
		b.Fatalf("smartboxd's stop: %v\n%s", err, p.log.String())
	}
	return took
}

// boxProcess is a smartboxd process started by startReady.
type boxProcess struct {
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	read chan struct{} // closed when its stderr closes: the process is gone
}

// stop sends SIGTERM (every slot relocks) and waits for the exit, killing
// the process if it is not gone within coldStartWait.
func (p *boxProcess) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.AfterFunc(coldStartWait, func() { _ = p.cmd.Process.Kill() })
	defer t.Stop()
	<-p.read
	return p.cmd.Wait()
}

// startReady starts bin on the sim profile with dir as its data and
// returns once it is ready, with the time from exec to ready. No polling:
// the "ready:" line is read from the process's stderr as it is written,
// then one status request is made (the socket is bound before ready, so a
// request made then waits for the answer rather than fail).
func startReady(b *testing.B, bin, dir, sock string) (*boxProcess, time.Duration) {
	b.Helper()
	cmd := exec.Command(bin, "--config", "smartboxd.sim.toml", "--data", dir, "--socket", sock, "--sim-keys", "all")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	p := &boxProcess{cmd: cmd, log: &syncbuf.Buffer{}, read: make(chan struct{})}
	ready := make(chan struct{})
	c := boxsocket.Dial(sock)
	defer c.Close()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(p.read)
		sc := bufio.NewScanner(pipe)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			if !seen && strings.Contains(line, "msg=\"ready:") {
				seen = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-p.read:
		b.Fatalf("smartboxd exited before it was ready: %v\n%s", cmd.Wait(), p.log.String())
	case <-time.After(coldStartWait):
		_ = p.stop()
		b.Fatalf("smartboxd not ready within %s; stderr:\n%s", coldStartWait, p.log.String())
	}
	ctx, cancel := context.WithTimeout(b.Context(), coldStartWait)
	_, err = c.Status(ctx)
	cancel()
	took := time.Since(start)
	if err != nil {
		_ = p.stop()
		b.Fatalf("smartboxd ready but its socket does not answer: %v\n%s", err, p.log.String())
	}
	return p, took
}
