package firmware

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// Package metadata.
const (
	PackageName = "smartbox"
	maintainer  = "SmartBox developers <smartbox-oss@users.noreply.github.com>"
	homepage    = "https://github.com/smartbox-oss/smartbox"
	description = "SmartBox key locker firmware: smartboxd and smartboxctl\n" +
		"smartboxd runs a key locker (keypad, slot locks, key sensors, fob reader)\n" +
		"and syncs it with the SmartBox bridge; smartboxctl provisions, tests and\n" +
		"inspects it."
)

// writeDeb writes the Debian package of es for t to w. The maintainer
// scripts come from scripts/ (see doc.go for what they do).
func writeDeb(w io.Writer, t Target, debVersion string, s Stamp, es []entry, staged map[string]string, scriptDir string) error {
	var contents files.Contents
	for _, e := range es {
		c := &files.Content{Destination: e.Dest, FileInfo: &files.ContentFileInfo{
			Mode: e.Mode, Owner: "root", Group: "root", MTime: s.BuildTime}}
		if e.Dir {
			c.Type = files.TypeDir
		} else {
			c.Source = staged[e.Dest]
		}
		contents = append(contents, c)
	}
	info := &nfpm.Info{
		Name:          PackageName,
		Arch:          t.DebArch,
		Platform:      t.GOOS,
		Version:       debVersion,
		VersionSchema: "none", // DebVersion made it what dpkg wants
		Section:       "misc",
		Priority:      "optional",
		Maintainer:    maintainer,
		Description:   description,
		Homepage:      homepage,
		MTime:         s.BuildTime,
		Overridables: nfpm.Overridables{
			// adduser for the postinst; nothing else (the binaries are
			// static).
			Depends:  []string{"adduser"},
			Contents: contents,
			Umask:    0o022,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(scriptDir, "postinst"),
				PreRemove:   filepath.Join(scriptDir, "prerm"),
				PostRemove:  filepath.Join(scriptDir, "postrm"),
			},
			Deb: nfpm.Deb{Arch: t.DebArch, Compression: "gzip"},
		},
	}
	if err := deb.Default.Package(nfpm.WithDefaults(info), w); err != nil {
		return fmt.Errorf("packaging %s for %s: %w", PackageName, t.Label, err)
	}
	return nil
}

// stageScripts writes the maintainer scripts into dir (nfpm reads them
// from disk).
func stageScripts(dir string) error {
	for _, name := range []string{"postinst", "prerm", "postrm"} {
		b, err := scripts.ReadFile("scripts/" + name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			return fmt.Errorf("staging %s: %w", name, err)
		}
	}
	return nil
}
