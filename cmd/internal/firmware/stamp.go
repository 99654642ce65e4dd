package firmware

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/buildinfo"
)

// Stamp is what every binary of a build says about itself (buildinfo).
type Stamp struct {
	Version   string // git describe --tags --always --dirty, or "dev"
	Commit    string // full hex; "" when unknown
	BuildTime time.Time
}

// LDFlags stamps s into cmd/internal/buildinfo. -s -w drop the symbol table
// and DWARF (about a third of the binary); panics still print file:line
// stacks (from pclntab), which is what a box's journal needs.
func (s Stamp) LDFlags() string {
	return fmt.Sprintf("-s -w -X %[1]s.version=%[2]s -X %[1]s.commit=%[3]s -X %[1]s.buildTime=%[4]s",
		buildinfo.Path, s.Version, s.Commit, s.BuildTime.UTC().Format(time.RFC3339))
}

var (
	describeDistance = regexp.MustCompile(`-(\d+)-g([0-9a-f]+)$`)
	semverCore       = regexp.MustCompile(`^v?(\d+\.\d+\.\d+)(?:-(.+))?$`)
	bareCommit       = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	debianUnsafe     = regexp.MustCompile(`[^A-Za-z0-9.+~]+`)
	debianVersion    = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// DebVersion turns a git describe version into a Debian one that sorts
// the way the releases do (dpkg compares them on upgrade; an upstream
// version without a Debian revision may hold no hyphen):
//
//	v1.2.3                   1.2.3
//	v1.2.3-rc1               1.2.3~rc1                (before 1.2.3)
//	v1.2.3-4-gabcdef1-dirty  1.2.3+4.gabcdef1.dirty   (after 1.2.3)
//	9c3b695 (no tag yet)     0.0.0~git9c3b695         (before any release)
//	dev                      0.0.0~dev
func DebVersion(v string) (string, error) {
	dirty := strings.HasSuffix(v, "-dirty")
	rest := strings.TrimSuffix(v, "-dirty")
	var after []string
	if m := describeDistance.FindStringSubmatch(rest); m != nil && semverCore.MatchString(rest[:len(rest)-len(m[0])]) {
		after = append(after, m[1], "g"+m[2])
		rest = rest[:len(rest)-len(m[0])]
	}
	if dirty {
		after = append(after, "dirty")
	}
	var out string
	switch m := semverCore.FindStringSubmatch(rest); {
	case m != nil:
		out = m[1]
		if m[2] != "" {
			out += "~" + debianUnsafe.ReplaceAllString(m[2], ".")
		}
	case bareCommit.MatchString(rest):
		out = "0.0.0~git" + rest
	default:
		out = "0.0.0~" + debianUnsafe.ReplaceAllString(rest, ".")
	}
	if len(after) > 0 {
		out += "+" + strings.Join(after, ".")
	}
	if !debianVersion.MatchString(out) {
		return "", fmt.Errorf("version %q makes Debian version %q, which dpkg refuses: tag the release vX.Y.Z", v, out)
	}
	return out, nil
}
