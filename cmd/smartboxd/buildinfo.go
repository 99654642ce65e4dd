package main

import (
	"fmt"
	"runtime/debug"
	"time"
)

// buildTime is set at link time: -ldflags "-X main.buildTime=2026-11-20T10:00:00Z".
var buildTime string

// resolveBuildTime picks the build time: the linker's value, else the VCS
// commit time go build stamped into the binary, else zero (no clock check).
// A malformed linker value is an error: it would silently disable the check.
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
	return time.Time{}, "none", nil
}
