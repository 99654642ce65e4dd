package firmware

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/smartbox-oss/smartbox/cmd/internal/boardprofile"
	"github.com/smartbox-oss/smartbox/cmd/smartboxd/dist"
)

//go:embed scripts
var scripts embed.FS

// Where a package puts things on the box.
const (
	BinDir      = "/usr/bin"
	UnitPath    = "/lib/systemd/system/smartboxd.service"
	UdevPath    = "/lib/udev/rules.d/60-smartbox-gpio.rules"
	ExamplesDir = "/usr/share/smartbox/examples"
	DataDir     = "/var/lib/smartbox"
	// ExampleBoxID is the box_id of the example configs: provisioning
	// writes a box's own.
	ExampleBoxID = "example-box"
)

// Modes. The data directory is the smartbox user's alone (postinst owns it
// to smartbox:smartbox): the store and the device key live there.
const (
	modeProgram fs.FileMode = 0o755
	modeFile    fs.FileMode = 0o644
	modeDataDir fs.FileMode = 0o750
)

// entry is one thing a package installs.
type entry struct {
	Dest string      // absolute path on the box
	Mode fs.FileMode // permission bits
	Dir  bool
	Body []byte // a file's content (nil with src)
	src  string // a file's content from disk (the binaries)
}

// payload is everything a package for these binaries installs, in path
// order: the deb and the tarball are built from this one list.
func payload(bins map[string]string) ([]entry, error) {
	var es []entry
	for _, p := range Programs {
		src, ok := bins[p]
		if !ok {
			return nil, fmt.Errorf("payload: no %s binary built", p)
		}
		es = append(es, entry{Dest: BinDir + "/" + p, Mode: modeProgram, src: src})
	}
	es = append(es, entry{Dest: UnitPath, Mode: modeFile, Body: dist.Unit})
	udev, err := scripts.ReadFile("scripts/60-smartbox-gpio.rules")
	if err != nil {
		return nil, err
	}
	es = append(es, entry{Dest: UdevPath, Mode: modeFile, Body: udev})
	for _, p := range boardprofile.All() {
		b, err := p.Render(boardprofile.Params{BoxID: ExampleBoxID})
		if err != nil {
			return nil, fmt.Errorf("example config for board profile %s: %w", p.Name, err)
		}
		es = append(es, entry{Dest: ExamplesDir + "/" + p.Name + ".toml", Mode: modeFile, Body: b})
	}
	es = append(es, entry{Dest: DataDir, Mode: modeDataDir, Dir: true})
	sort.Slice(es, func(i, j int) bool { return es[i].Dest < es[j].Dest })
	return es, nil
}

// stage writes the payload's files under root (nfpm packs files from
// disk) and returns each file's path there, by Dest.
func stage(root string, es []entry) (map[string]string, error) {
	paths := map[string]string{}
	for _, e := range es {
		if e.Dir {
			continue
		}
		if e.src != "" {
			paths[e.Dest] = e.src
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(e.Dest))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("staging %s: %w", e.Dest, err)
		}
		if err := os.WriteFile(p, e.Body, e.Mode); err != nil {
			return nil, fmt.Errorf("staging %s: %w", e.Dest, err)
		}
		paths[e.Dest] = p
	}
	return paths, nil
}
