// Package depottest helps tests that run a depot: it builds the smartboxd
// binary the depot's boxes run, once per test binary.
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
	bin   string
	build error
	out   []byte
)

// Smartboxd builds cmd/smartboxd (plain: no race detector, so that fifty
// boxes stay light) into a temporary directory the first time it is called
// in a test binary, and returns its path. The directory outlives the test
// that built it (others use it too) and is left to the OS's temp cleaning.
func Smartboxd(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir, err := os.MkdirTemp("", "smartboxd-bin-")
		if err != nil {
			build = err
			return
		}
		bin = filepath.Join(dir, "smartboxd")
		out, build = exec.Command("go", "build", "-buildvcs=false", "-o", bin,
			"github.com/smartbox-oss/smartbox/cmd/smartboxd").CombinedOutput()
	})
	if build != nil {
		t.Fatalf("building smartboxd: %v\n%s", build, out)
	}
	return bin
}
