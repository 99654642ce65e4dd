package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// A data directory's file system is nearly full under either bound: bbolt
// grows its file in steps (up to 1 GiB at a time on a big store) and a
// failed grow stops every commit, the keypad's events included.
const (
	diskMinFreeBytes = 50 << 20 // 50 MiB
	diskMinFreePct   = 5
)

// statfs is unix.Statfs; tests put the numbers of a nearly full disk here.
var statfs = unix.Statfs

// checkDisk checks the free space where the store lives.
func (d *doctor) checkDisk() {
	var st unix.Statfs_t
	if err := statfs(d.dataDir, &st); err != nil {
		d.skipped("disk", "%s: %v", d.dataDir, err)
		return
	}
	bs := uint64(st.Bsize)
	free, total := st.Bavail*bs, st.Blocks*bs
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(free) / float64(total)
	}
	if free < diskMinFreeBytes || pct < diskMinFreePct {
		d.problem("disk", fmt.Sprintf("the file system of %s is nearly full: %s free of %s (%.1f %%; below %s or %d %%)", d.dataDir,
			bytesIEC(free), bytesIEC(total), pct, bytesIEC(diskMinFreeBytes), diskMinFreePct),
			"free space on it (old logs: 'journalctl --vacuum-size=50M'); when the store cannot grow, smartboxd cannot record events")
		return
	}
	d.ok("disk", "%s free of %s (%.0f %%) on the file system of %s", bytesIEC(free), bytesIEC(total), pct, d.dataDir)
}

// bytesIEC prints n as KiB, MiB, GiB.
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
