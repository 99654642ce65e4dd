package firmware

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/boardprofile"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/smartboxd/dist"
)

// testStamp is what the test builds say about themselves.
var testStamp = Stamp{Version: "v1.2.3-4-gabcdef1", Commit: "abcdef1234567890abcdef1234567890abcdef12",
	BuildTime: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}

// testVersionLine is --version of a testStamp build for platform.
func testVersionLine(program, platform string) string {
	return fmt.Sprintf("%s v1.2.3-4-gabcdef1 (commit abcdef123456, built 2026-12-02T10:00:00Z, %s)", program, platform)
}

func target(t *testing.T, label string) Target {
	ts, err := TargetsByLabel(label)
	require.NoError(t, err)
	return ts[0]
}

// TestCrossCompileARM: smartboxd for a 32-bit Pi is a static little-endian
// ARM ELF carrying its stamp.
func TestCrossCompileARM(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles smartboxd")
	}
	t.Parallel()
	armhf := target(t, "armhf")
	bin, err := Builder{Stamp: testStamp}.Build(t.Context(), armhf, "smartboxd", t.TempDir())
	require.NoError(t, err)

	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, elf.ELFCLASS32, f.Class)
	require.Equal(t, elf.EM_ARM, f.Machine)
	require.Equal(t, elf.ELFDATA2LSB, f.Data)
	require.Equal(t, elf.ET_EXEC, f.Type)
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary has no program interpreter")
		require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "a static binary has no dynamic section")
	}
	require.Nil(t, f.Section(".interp"))
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs)

	raw, err := os.ReadFile(bin)
	require.NoError(t, err)
	for _, s := range []string{testStamp.Version, testStamp.Commit, "2026-12-02T10:00:00Z"} {
		require.True(t, bytes.Contains(raw, []byte(s)), "stamp %q inside the binary", s)
	}
	// GOARM=7 is recorded in the binary's build info.
	require.True(t, bytes.Contains(raw, []byte("GOARM=7")), "GOARM=7 in the build info")
}

// TestDebAmd64 builds the linux/amd64 firmware (binaries, .deb, .tar.gz,
// SHA256SUMS) and reads the package back: its ar members, its control
// scripts, and every file it installs with its mode; the binaries run.
func TestDebAmd64(t *testing.T) {
	if testing.Short() {
		t.Skip("builds smartboxd and smartboxctl")
	}
	t.Parallel()
	out := t.TempDir()
	var log bytes.Buffer
	arts, err := Run(t.Context(), Options{Builder: Builder{Stamp: testStamp}, Out: out, Log: &log}, []Target{target(t, "amd64")})
	require.NoError(t, err, "%s", log.String())
	require.Len(t, arts, 2)
	debName, tgzName := "smartbox_1.2.3+4.gabcdef1_amd64.deb", "smartbox_1.2.3+4.gabcdef1_amd64.tar.gz"
	require.Equal(t, debName, arts[0].Name)
	require.Equal(t, tgzName, arts[1].Name)

	// SHA256SUMS: both artifacts, in sha256sum -c's format.
	sums, err := os.ReadFile(filepath.Join(out, SumsFile))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	require.Len(t, lines, 2)
	for i, name := range []string{debName, tgzName} {
		sum, err := sha256File(filepath.Join(out, name))
		require.NoError(t, err)
		require.Equal(t, sum+"  "+name, lines[i])
	}

	// dpkg's own reader agrees, where there is one (every Debian).
	if dpkgDeb, err := exec.LookPath("dpkg-deb"); err == nil {
		for _, flag := range []string{"--info", "--contents"} {
			got, err := exec.Command(dpkgDeb, flag, filepath.Join(out, debName)).CombinedOutput()
			require.NoError(t, err, "dpkg-deb %s: %s", flag, got)
		}
	}

	members := readAr(t, filepath.Join(out, debName))
	var names []string
	for _, m := range members {
		names = append(names, m.name)
	}
	require.Equal(t, []string{"debian-binary", "control.tar.gz", "data.tar.gz"}, names)
	require.Equal(t, "2.0\n", string(members[0].body))

	control := readTar(t, members[1].body)
	require.Contains(t, string(control["control"].body), "Package: smartbox\n")
	require.Contains(t, string(control["control"].body), "Architecture: amd64\n")
	require.Contains(t, string(control["control"].body), "Version: 1.2.3+4.gabcdef1\n")
	require.Contains(t, string(control["control"].body), "Depends: adduser\n")
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		require.Contains(t, control, s)
		require.Equal(t, fs.FileMode(0o755), control[s].mode, s)
	}
	postinst := string(control["postinst"].body)
	for _, want := range []string{"adduser --system --group", "smartbox gpio", "smartbox dialout",
		"chown -R -h smartbox:smartbox /var/lib/smartbox", "systemctl daemon-reload", "systemctl enable smartboxd.service"} {
		require.Contains(t, postinst, want)
	}
	require.Contains(t, string(control["prerm"].body), "systemctl stop smartboxd.service")

	data := readTar(t, members[2].body)
	want := map[string]fs.FileMode{
		"usr/bin/smartboxd":                       0o755,
		"usr/bin/smartboxctl":                     0o755,
		"lib/systemd/system/smartboxd.service":    0o644,
		"lib/udev/rules.d/60-smartbox-gpio.rules": 0o644,
		"var/lib/smartbox/":                       0o750 | fs.ModeDir,
	}
	for _, p := range boardprofile.All() {
		want["usr/share/smartbox/examples/"+p.Name+".toml"] = 0o644
	}
	for name, mode := range want {
		e, ok := data[name]
		require.True(t, ok, "%s in data.tar; it has %v", name, keys(data))
		require.Equal(t, mode, e.mode, name)
		require.Equal(t, "root", e.uname, name)
		require.True(t, e.mtime.Equal(testStamp.BuildTime), "%s's time is the build time", name)
	}
	for name, e := range data {
		if e.mode.IsDir() {
			continue
		}
		require.Contains(t, want, name, "a file the test does not expect")
	}

	require.Equal(t, dist.Unit, data["lib/systemd/system/smartboxd.service"].body)
	unit := string(dist.Unit)
	for _, line := range []string{"Type=notify", "WatchdogSec=30s", "Restart=on-failure", "User=smartbox",
		"ExecStart=/usr/bin/smartboxd --config /var/lib/smartbox/smartboxd.toml --socket /run/smartbox/smartboxd.sock --socket-group smartbox",
		"ConditionPathExists=/var/lib/smartbox/smartboxd.toml", "DevicePolicy=closed", "DeviceAllow=char-gpiochip rw",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=", "SystemCallFilter=@system-service", "SystemCallFilter=adjtimex",
		"ExecStartPre=+/bin/chown -R -h smartbox:smartbox /var/lib/smartbox"} {
		require.Regexp(t, "(?m)^"+regexp.QuoteMeta(line)+"$", unit, "a line of the unit")
	}
	require.NotContains(t, unit, "reads the NTP state with adjtimex", "smartboxd calls no adjtimex")

	// Every example config parses and validates, and is for example-box.
	for _, p := range boardprofile.All() {
		name := "usr/share/smartbox/examples/" + p.Name + ".toml"
		c, err := boxconfig.ParseConfig(name, data[name].body)
		require.NoError(t, err, name)
		require.NoError(t, c.Validate(), name)
		require.Equal(t, ExampleBoxID, c.BoxID, name)
		require.Equal(t, p.Hardware, c.Hardware.Profile, name)
	}

	// The binaries run and say what they are.
	dir := t.TempDir()
	for _, p := range Programs {
		bin := filepath.Join(dir, p)
		require.NoError(t, os.WriteFile(bin, data["usr/bin/"+p].body, 0o755))
		got, err := exec.Command(bin, "--version").CombinedOutput()
		require.NoError(t, err, "%s --version: %s", p, got)
		require.Equal(t, testVersionLine(p, "linux/amd64")+"\n", string(got))
	}

	// The tarball holds the same files, modes and contents.
	tgz, err := os.ReadFile(filepath.Join(out, tgzName))
	require.NoError(t, err)
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	tarball := readTar(t, plain)
	for name, e := range data {
		te, ok := tarball[name]
		require.True(t, ok, "%s in the tarball", name)
		require.Equal(t, e.mode, te.mode, name)
		require.Equal(t, e.body, te.body, name)
	}
}

type arMember struct {
	name string
	body []byte
}

// readAr reads a Debian package's ar archive (the common format: an
// 8-byte magic, then per member a 60-byte header and the body padded to
// an even length).
func readAr(t *testing.T, path string) []arMember {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(raw, []byte("!<arch>\n")), "ar magic")
	var ms []arMember
	for r := raw[8:]; len(r) > 0; {
		require.GreaterOrEqual(t, len(r), 60, "ar header")
		h := r[:60]
		require.Equal(t, "`\n", string(h[58:60]), "ar header end")
		size, err := strconv.Atoi(strings.TrimSpace(string(h[48:58])))
		require.NoError(t, err)
		name := strings.TrimSuffix(strings.TrimSpace(string(h[:16])), "/")
		r = r[60:]
		require.GreaterOrEqual(t, len(r), size)
		ms = append(ms, arMember{name: name, body: r[:size]})
		r = r[size+size%2:]
	}
	return ms
}

type tarEntry struct {
	mode  fs.FileMode
	uname string
	mtime time.Time
	body  []byte
}

// readTar reads a tar (gzipped if it starts so) into entries by name
// without the leading "./".
func readTar(t *testing.T, b []byte) map[string]tarEntry {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(r)
		require.NoError(t, err)
		r = zr
	}
	tr := tar.NewReader(bufio.NewReader(r))
	out := map[string]tarEntry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		mode := h.FileInfo().Mode() & (fs.ModePerm | fs.ModeDir)
		name := strings.TrimPrefix(h.Name, "./")
		if mode.IsDir() && !strings.HasSuffix(name, "/") {
			name += "/"
		}
		out[name] = tarEntry{mode: mode, uname: h.Uname, mtime: h.ModTime, body: body}
	}
}

func keys(m map[string]tarEntry) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}
