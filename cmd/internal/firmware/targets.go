package firmware

import (
	"fmt"
	"strings"

	"github.com/smartbox-oss/smartbox/cmd/internal/buildinfo"
)

// Target is one board family's build.
type Target struct {
	// Label names the target in file names and on the command line.
	Label        string
	GOOS, GOARCH string
	GOARM        string // "6" or "7" for GOARCH=arm, else ""
	// DebArch is the package's Architecture: what dpkg on the board
	// accepts (dpkg --print-architecture there).
	DebArch string
}

// Targets are the boards SmartBox ships for.
//
// How GOARM maps to Debian's architectures: Debian's armhf is ARMv7 with
// VFPv3 (GOARM=7: Pi 2, 3, 4, 5 on a 32-bit OS), but Raspberry Pi OS's
// 32-bit "armhf" is built for ARMv6 with VFPv2 so that it also runs on a Pi
// Zero and Pi 1, which fault on ARMv7 instructions. Those boards need
// GOARM=6, and their dpkg says armhf too: the GOARM=6 package is armhf (as
// nfpm maps arm6), labelled armv6 in its file name. A Go binary is static,
// so either runs on any armhf system whose CPU has the instructions; the
// armv6 one on all of them, the armhf one a little faster where it can.
// (Debian's own armel, for ARMv5 and up with soft float, would need
// GOARM=5; no SmartBox board runs it.)
var Targets = []Target{
	{Label: "armv6", GOOS: "linux", GOARCH: "arm", GOARM: "6", DebArch: "armhf"},
	{Label: "armhf", GOOS: "linux", GOARCH: "arm", GOARM: "7", DebArch: "armhf"},
	{Label: "arm64", GOOS: "linux", GOARCH: "arm64", DebArch: "arm64"},
	{Label: "amd64", GOOS: "linux", GOARCH: "amd64", DebArch: "amd64"},
}

// TargetsByLabel picks targets from a comma list ("all": every one).
func TargetsByLabel(list string) ([]Target, error) {
	if list == "all" {
		return Targets, nil
	}
	var out []Target
	for _, l := range strings.Split(list, ",") {
		l = strings.TrimSpace(l)
		found := false
		for _, t := range Targets {
			if t.Label == l {
				out = append(out, t)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no firmware target %q: want all or a list of %s", l, labels())
		}
	}
	return out, nil
}

func labels() string {
	var l []string
	for _, t := range Targets {
		l = append(l, t.Label)
	}
	return strings.Join(l, ", ")
}

// Platform is "linux/arm/v6", "linux/arm64": what its binaries' --version
// says.
func (t Target) Platform() string {
	return buildinfo.Info{OS: t.GOOS, Arch: t.GOARCH, ARM: t.GOARM}.Platform()
}
