package main

import (
	"fmt"
	"runtime/debug"
	"time"
)

// buildTime is set at link time: -ldflags "-X main.buildTime=2026-11-20T10:00:00Z".
var buildTime string

// resolveBuildTime picks the build time and says where it came from: the
// linker's value ("ldflags"), else the VCS commit time go build stamped into
// the binary ("vcs.time"), else the date compiled into the source
// (sourceFloor, "source": a plain go build or go install without VCS
// information). Never zero: a binary without a stamp still has a clock
// floor. A malformed linker value is an error: it would silently weaken the
// check.
func resolveBuildTime(linked string) (time.Time, string, error) {
	if linked != "" {
		t, err := time.Parse(time.RFC3339, linked)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("build time %q (from -ldflags -X main.buildTime) is not RFC3339: %w", linked, err)
		}
		return t, "ldflags", nil
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t, "vcs.time", nil
				}
			}
		}
	}
	return sourceFloor, "source", nil
}

// version is set at link time: -ldflags "-X main.version=v1.2.0".
var version string

// softwareVersion is what the box reports in its sync status: the linker's
// version, else the module version go build stamped, plus the VCS commit,
// so that the cloud can tell which code a box runs.
func softwareVersion(linked string) string {
	v := linked
	var rev string
	var dirty bool
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	out := "smartboxd " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "+dirty"
		}
		out += " " + rev
	}
	return out
}
