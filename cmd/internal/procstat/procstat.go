// Package procstat reads what a benchmark says about a process at rest
// from Linux's /proc: CPU time (utime+stime of /proc/<pid>/stat) and
// resident memory (VmRSS of /proc/<pid>/status). The idle benchmarks of
// cmd/internal/depot and cmd/smartboxd measure with it, so that their
// figures are read the same way.
package procstat

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's times: 100
// on every architecture Linux runs the box on.
const ClockTicks = 100

// CPUTicks sums utime and stime (fields 14 and 15 of /proc/<pid>/stat) of
// every pid, in ClockTicks.
func CPUTicks(pids ...int) (int64, error) {
	var sum int64
	for _, p := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return 0, err
		}
		// The command name (field 2) may hold spaces and parentheses:
		// count from after its last ')'.
		s := string(raw)
		end := strings.LastIndexByte(s, ')')
		if end < 0 || end+2 > len(s) {
			return 0, fmt.Errorf("procstat: /proc/%d/stat: no command name", p)
		}
		f := strings.Fields(s[end+2:])
		if len(f) < 13 {
			return 0, fmt.Errorf("procstat: /proc/%d/stat: %d fields after the name", p, len(f))
		}
		for _, i := range []int{11, 12} { // utime, stime: fields 14, 15 overall
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("procstat: /proc/%d/stat: %w", p, err)
			}
			sum += v
		}
	}
	return sum, nil
}

// RSSKiB sums VmRSS (/proc/<pid>/status) of every pid, in KiB.
func RSSKiB(pids ...int) (int, error) {
	sum := 0
	for _, p := range pids {
		n, err := rssKiB(p)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

func rssKiB(pid int) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				return 0, fmt.Errorf("procstat: /proc/%d/status VmRSS: %w", pid, err)
			}
			return n, nil
		}
	}
	return 0, errors.New("procstat: no VmRSS in /proc/" + strconv.Itoa(pid) + "/status (a kernel thread, or not Linux)")
}

// Idle is what pids hold over window, left alone: CPU as a percentage of
// one core (all pids together: 100 is one core busy the whole window) and
// resident memory at the end, in MiB. It blocks for window: the window is
// real time, the processes' own.
func Idle(window time.Duration, pids ...int) (cpuPercent, rssMiB float64, err error) {
	before, err := CPUTicks(pids...)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(window)
	after, err := CPUTicks(pids...)
	if err != nil {
		return 0, 0, err
	}
	rss, err := RSSKiB(pids...)
	if err != nil {
		return 0, 0, err
	}
	return float64(after-before) / ClockTicks / window.Seconds() * 100, float64(rss) / 1024, nil
}
