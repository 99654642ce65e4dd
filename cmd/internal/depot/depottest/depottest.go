// Package depottest helps tests that run a depot: it builds the binaries
// the depot runs (smartboxd for its boxes, smartboxctl to provision them),
// once per test binary.
package depottest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	once  sync.Once
	dir   string
	build error
	out   []byte
)

// Smartboxd builds cmd/smartboxd and cmd/smartboxctl (plain: no race
// detector, so that fifty boxes stay light) into one temporary directory
// the first time it is called in a test binary, and returns smartboxd's
// path. smartboxctl is beside it, where the depot looks for it (as
// bin/ holds both after `make build`). The directory outlives the test
// that built it (others use it too) and is left to the OS's temp cleaning.
func Smartboxd(t testing.TB) string {
	t.Helper()
	return filepath.Join(binDir(t), "smartboxd")
}

// Smartboxctl is the smartboxctl built beside Smartboxd's smartboxd.
func Smartboxctl(t testing.TB) string {
	t.Helper()
	return filepath.Join(binDir(t), "smartboxctl")
}

// binDir builds both binaries once and returns their directory.
func binDir(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir, build = os.MkdirTemp("", "smartboxd-bin-")
		if build != nil {
			return
		}
		// One go build for both: -o names a directory, each binary
		// lands in it under its package's name.
		out, build = exec.Command("go", "build", "-buildvcs=false", "-o", dir+string(filepath.Separator),
			"github.com/smartbox-oss/smartbox/cmd/smartboxd",
			"github.com/smartbox-oss/smartbox/cmd/smartboxctl").CombinedOutput()
	})
	if build != nil {
		t.Fatalf("building smartboxd and smartboxctl: %v\n%s", build, out)
	}
	return dir
}

var (
	bridgeOnce  sync.Once
	bridgeBuild error
	bridgeOut   []byte
)

// SmartboxBridge builds cmd/smartbox-bridge beside Smartboxd's binaries
// (for a depot with Options.BridgeProcess), once per test binary, and
// returns its path. Apart from Smartboxd so that tests of the in-process
// bridge do not pay for its build.
func SmartboxBridge(t testing.TB) string {
	t.Helper()
	d := binDir(t)
	bridgeOnce.Do(func() {
		bridgeOut, bridgeBuild = exec.Command("go", "build", "-buildvcs=false", "-o", d+string(filepath.Separator),
			"github.com/smartbox-oss/smartbox/cmd/smartbox-bridge").CombinedOutput()
	})
	if bridgeBuild != nil {
		t.Fatalf("building smartbox-bridge: %v\n%s", bridgeBuild, bridgeOut)
	}
	return filepath.Join(d, "smartbox-bridge")
}
