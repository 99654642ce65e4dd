// Package buildinfo is the one definition of what a SmartBox binary says
// about itself: its version, the commit it was built from and when, for
// every program (smartboxd, smartboxctl, smartbox-bridge).
//
// The Makefile stamps the three at link time:
//
//	-X github.com/smartbox-oss/smartbox/cmd/internal/buildinfo.version=v1.2.3
//	-X github.com/smartbox-oss/smartbox/cmd/internal/buildinfo.commit=abcdef1234567890...
//	-X github.com/smartbox-oss/smartbox/cmd/internal/buildinfo.buildTime=2026-12-02T10:00:00Z
//
// (version from `git describe --tags --always --dirty`, else "dev"). A
// binary built without them (go build, go install) falls back on what the
// Go toolchain stamped (the module version, vcs.revision, vcs.time) and then
// on [SourceFloor]: smartboxd's clock floor is never missing.
package buildinfo

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"
)

// Stamped at link time (see the package comment); empty when not.
var (
	version   string
	commit    string
	buildTime string
)

// Path is this package's import path, for -ldflags -X.
const Path = "github.com/smartbox-oss/smartbox/cmd/internal/buildinfo"

// SourceFloor is a day this code was written. No box runs this code before
// it was written, so a clock earlier than this is wrong whatever else is
// missing (a binary built by plain `go build` with no build time, no
// clock.floor in the config, a new store). Move it forward now and then;
// never back.
var SourceFloor = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// DevVersion is the version of a binary nobody stamped.
const DevVersion = "dev"

// shortCommit is how many hex digits of a commit are shown: git's default
// abbreviation grows to 12 in repositories this size and stays unique.
const shortCommit = 12

// Info is what a binary knows about its build.
type Info struct {
	Version string // "v1.2.3", "v1.2.3-4-gabcdef1-dirty", or DevVersion
	Commit  string // full or short hex; "" when unknown
	Dirty   bool   // built from a tree with uncommitted changes (VCS stamp only)
	// BuildTime is never zero (see resolveBuildTime); BuildTimeFrom says
	// where it came from: "ldflags", "vcs.time" or "source".
	BuildTime     time.Time
	BuildTimeFrom string
	OS, Arch      string // runtime.GOOS, runtime.GOARCH
	ARM           string // GOARM ("6", "7") of a linux/arm binary; "" otherwise
}

// Read is this binary's Info. Its error is a malformed stamped build time,
// which would silently weaken smartboxd's clock check: fix the -ldflags.
func Read() (Info, error) {
	var bi *debug.BuildInfo
	if b, ok := debug.ReadBuildInfo(); ok {
		bi = b
	}
	return resolve(version, commit, buildTime, bi)
}

// resolve is Read on given stamps and toolchain info (nil: none).
func resolve(linkedVersion, linkedCommit, linkedTime string, bi *debug.BuildInfo) (Info, error) {
	in := Info{Version: linkedVersion, Commit: linkedCommit, OS: runtime.GOOS, Arch: runtime.GOARCH}
	settings := map[string]string{}
	if bi != nil {
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		if in.Commit == "" {
			in.Commit = settings["vcs.revision"]
			in.Dirty = settings["vcs.modified"] == "true"
		}
	}
	if in.Version == "" {
		in.Version = DevVersion
	}
	if in.Arch == "arm" {
		in.ARM = settings["GOARM"]
	}
	var err error
	in.BuildTime, in.BuildTimeFrom, err = resolveBuildTime(linkedTime, settings["vcs.time"])
	return in, err
}

// resolveBuildTime picks the build time and says where it came from: the
// linker's value ("ldflags"), else the VCS commit time go build stamped into
// the binary ("vcs.time"), else the date compiled into the source
// (SourceFloor, "source": a plain go build or go install without VCS
// information). Never zero: a binary without a stamp still has a clock
// floor. A malformed linker value is an error: it would silently weaken the
// check.
func resolveBuildTime(linked, vcsTime string) (time.Time, string, error) {
	if linked != "" {
		t, err := time.Parse(time.RFC3339, linked)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("build time %q (from -ldflags -X %s.buildTime) is not RFC 3339 (want e.g. 2026-12-02T10:00:00Z): rebuild with a valid one", linked, Path)
		}
		return t, "ldflags", nil
	}
	if t, err := time.Parse(time.RFC3339, vcsTime); err == nil {
		return t, "vcs.time", nil
	}
	return SourceFloor, "source", nil
}

// ShortCommit is the commit as shown: 12 hex digits, "+dirty" when the tree
// had uncommitted changes; "" when unknown.
func (in Info) ShortCommit() string {
	c := in.Commit
	if len(c) > shortCommit {
		c = c[:shortCommit]
	}
	if c != "" && in.Dirty {
		c += "+dirty"
	}
	return c
}

// Platform is "linux/arm64", or "linux/arm/v7" for 32-bit ARM (the OCI
// platform notation: GOARM matters there, a v7 binary faults on a Pi Zero).
func (in Info) Platform() string {
	p := in.OS + "/" + in.Arch
	if in.ARM != "" {
		p += "/v" + in.ARM
	}
	return p
}

// String is what --version prints for program:
// "smartboxd v1.2.3 (commit abcdef123456, built 2026-12-02T10:00:00Z, linux/arm64)".
func (in Info) String(program string) string {
	c := in.ShortCommit()
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("%s %s (commit %s, built %s, %s)", program, in.Version, c,
		in.BuildTime.UTC().Format(time.RFC3339), in.Platform())
}

// Software is the short form a box reports in its status (the cloud and the
// bridge's box list show it): "smartboxd v1.2.3 abcdef123456".
func (in Info) Software(program string) string {
	s := program + " " + in.Version
	if c := in.ShortCommit(); c != "" {
		s += " " + c
	}
	return s
}

// Fprint writes program's --version line to w. Its error is Read's.
func Fprint(w io.Writer, program string) error {
	in, err := Read()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, in.String(program))
	return err
}
