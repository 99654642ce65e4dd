package buildinfo

import (
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestResolveStamped(t *testing.T) {
	in, err := resolve("v1.2.3", "abcdef1234567890abcdef", "2026-12-02T10:00:00Z", nil)
	require.NoError(t, err)
	in.OS, in.Arch, in.ARM = "linux", "arm64", ""
	require.Equal(t, "smartboxd v1.2.3 (commit abcdef123456, built 2026-12-02T10:00:00Z, linux/arm64)", in.String("smartboxd"))
	require.Equal(t, "smartboxd v1.2.3 abcdef123456", in.Software("smartboxd"))
	require.Equal(t, "ldflags", in.BuildTimeFrom)

	in.Arch, in.ARM = "arm", "6"
	require.Contains(t, in.String("smartboxctl"), ", linux/arm/v6)")
}

func TestResolveFallbacks(t *testing.T) {
	// Nothing stamped and nothing from the toolchain: dev, unknown commit,
	// the source floor (never a zero clock floor).
	in, err := resolve("", "", "", nil)
	require.NoError(t, err)
	require.Equal(t, DevVersion, in.Version)
	require.Equal(t, SourceFloor, in.BuildTime)
	require.Equal(t, "source", in.BuildTimeFrom)
	require.Contains(t, in.String("smartboxd"), "smartboxd dev (commit unknown, built 2026-12-01T00:00:00Z, ")
	require.Equal(t, "smartboxd dev", in.Software("smartboxd"))

	// What go build stamps from a git checkout.
	bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2026-12-02T09:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	in, err = resolve("", "", "", bi)
	require.NoError(t, err)
	require.Equal(t, DevVersion, in.Version, "(devel) is no version")
	require.Equal(t, "0123456789ab+dirty", in.ShortCommit())
	require.Equal(t, time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), in.BuildTime)
	require.Equal(t, "vcs.time", in.BuildTimeFrom)

	// go install module@version stamps the module version.
	in, err = resolve("", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}})
	require.NoError(t, err)
	require.Equal(t, "v1.4.0", in.Version)

	// The linker's values win over the toolchain's.
	in, err = resolve("v2.0.0", "feedface", "2026-12-03T00:00:00Z", bi)
	require.NoError(t, err)
	require.Equal(t, "v2.0.0", in.Version)
	require.Equal(t, "feedface", in.ShortCommit(), "a stamped commit carries its own -dirty (git describe)")
	require.Equal(t, "ldflags", in.BuildTimeFrom)
}

func TestResolveBadBuildTime(t *testing.T) {
	_, err := resolve("v1", "", "yesterday", nil)
	require.ErrorContains(t, err, `build time "yesterday"`)
	require.ErrorContains(t, err, Path+".buildTime")
}
