package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// Issue 8, item 11: 400 slow POSTs with no signature, each offering a 1 MiB
// body, took the bridge from 19 MB to 489 MB RSS. These start the real
// binary (`serve`) in a child process, fire them, and report the child's
// peak RSS (VmHWM) and its RSS once they are done, from /proc.
//
//	go test -run '^$' -bench 'POSTsRSS' -benchtime 1x ./cmd/smartbox-bridge/
//
// SMARTBOX_BRIDGE_BIN names a binary to measure instead of building this
// one (e.g. one built from an older commit with the same command line).
func BenchmarkSlowUnsignedPOSTsRSS(b *testing.B) { benchSlowPOSTs(b, "") }

// BenchmarkSlowForgedPOSTsRSS is the same with a well-formed but wrong
// signature, a connected integration and chunked bodies (no Content-Length
// to refuse them by): the bodies are read, at most
// bookings.DefaultMaxBodiesInFlight at once and each up to the body limit.
func BenchmarkSlowForgedPOSTsRSS(b *testing.B) { benchSlowPOSTs(b, strings.Repeat("ab", 32)) }

func benchSlowPOSTs(b *testing.B, signature string) {
	const (
		clients  = 400
		bodySize = 1 << 20  // the old default limit: what an attacker offers
		chunk    = 64 << 10 // sent every chunkGap: 1 MiB in about 3 s
		chunkGap = 200 * time.Millisecond
	)
	bin := os.Getenv("SMARTBOX_BRIDGE_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "smartbox-bridge")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
	}
	for b.Loop() {
		dir := b.TempDir()
		data := filepath.Join(dir, "data")
		if signature != "" {
			// Connected, so that a signed-looking delivery gets as far as
			// its body (the stored settings, as `fleetio connect` leaves them).
			if err := os.Mkdir(data, 0o700); err != nil {
				b.Fatal(err)
			}
			st, err := bookings.OpenStore(filepath.Join(data, bridge.FileBookingsDB))
			if err != nil {
				b.Fatal(err)
			}
			if err := st.SetSettings(bookings.Settings{APIKey: "k", AccountToken: "t", WebhookSecret: "s"}); err != nil {
				b.Fatal(err)
			}
			st.Close()
		}
		cfg := filepath.Join(dir, "bookings.toml")
		src := fmt.Sprintf("data_dir = %q\n[broker]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"+
			"[fleetio]\npublic_listen = \"127.0.0.1:0\"\n", data)
		if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		// The public address is in an info line of the log.
		cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfg, "--log-level", "info")
		cmd.Stdout = io.Discard
		logs, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		addr := publicAddr(b, logs)
		go io.Copy(io.Discard, logs) // keep the child from blocking on its log
		before := procKB(b, cmd.Process.Pid, "VmRSS")

		var wg sync.WaitGroup
		answered := make(chan string, clients)
		for range clients {
			wg.Go(func() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					answered <- "dial: " + err.Error()
					return
				}
				defer c.Close()
				hdr := fmt.Sprintf("Content-Length: %d\r\n", bodySize)
				if signature != "" {
					hdr = "Transfer-Encoding: chunked\r\n" + fleetio.SignatureHeader + ": " + signature + "\r\n"
				}
				fmt.Fprintf(c, "POST /webhooks/fleetio HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n%s\r\n", hdr)
				pad := bytes.Repeat([]byte("x"), chunk)
				if signature != "" {
					pad = fmt.Appendf(nil, "%x\r\n%s\r\n", chunk, pad)
				}
				for sent := 0; sent < bodySize; sent += chunk {
					if _, err := c.Write(pad); err != nil {
						break // the bridge answered and hung up
					}
					time.Sleep(chunkGap) // the attacker's pace, not a wait for the bridge
				}
				if signature != "" {
					io.WriteString(c, "0\r\n\r\n")
				}
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				answered <- strings.TrimSpace(line)
			})
		}
		wg.Wait()
		close(answered)
		statuses := map[string]int{}
		for s := range answered {
			statuses[s]++
		}
		peak := procKB(b, cmd.Process.Pid, "VmHWM")
		after := procKB(b, cmd.Process.Pid, "VmRSS")
		cancel()
		_ = cmd.Wait()
		b.Logf("%s: %d slow POSTs of %d bytes (signature %q): RSS %d MB before, peak %d MB, %d MB after; answers %v",
			bin, clients, bodySize, signature, before>>10, peak>>10, after>>10, statuses)
		b.ReportMetric(float64(before)/1024, "MB-RSS-before")
		b.ReportMetric(float64(peak)/1024, "MB-peak-RSS")
		b.ReportMetric(float64(after)/1024, "MB-RSS-after")
	}
}

var publicAddrRE = regexp.MustCompile(`msg="public endpoint listening" addr=(\S+)`)

// publicAddr reads the child's log until it says where the public listener is.
func publicAddr(b *testing.B, logs io.Reader) string {
	sc := bufio.NewScanner(logs)
	deadline := time.AfterFunc(30*time.Second, func() { b.Error("no public listener in the log within 30 s") })
	defer deadline.Stop()
	for sc.Scan() {
		if m := publicAddrRE.FindStringSubmatch(sc.Text()); m != nil {
			return m[1]
		}
	}
	b.Fatalf("the bridge stopped before listening: %v", sc.Err())
	return ""
}

// procKB reads a "Vm...:  N kB" line of /proc/<pid>/status.
func procKB(b *testing.B, pid int, field string) int64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
