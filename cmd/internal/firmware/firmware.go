package firmware

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Artifact is one file a build wrote into the output directory.
type Artifact struct {
	Target Target
	Name   string // file name in the output directory
	Size   int64
}

// Options are a firmware build's.
type Options struct {
	Builder
	Out string // the output directory (dist/), made if missing
	// Log gets one line per step; nil: none.
	Log io.Writer
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Run builds the targets: binaries, then per target the .deb and the
// .tar.gz, then SHA256SUMS over every artifact of this run.
func Run(ctx context.Context, o Options, targets []Target) ([]Artifact, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("creating the output directory: %w", err)
	}
	work, err := os.MkdirTemp("", "smartbox-firmware-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	var arts []Artifact
	for _, t := range targets {
		dir := filepath.Join(work, t.Label)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		o.logf("building %s for %s", Programs, t.Platform())
		bins, err := o.BuildAll(ctx, t, dir)
		if err != nil {
			return nil, err
		}
		for _, p := range Programs {
			if fi, err := os.Stat(bins[p]); err == nil {
				o.logf("  %s %s: %d bytes", t.Label, p, fi.Size())
			}
		}
		got, err := Package(o, t, bins, dir)
		if err != nil {
			return nil, err
		}
		arts = append(arts, got...)
	}
	var names []string
	for _, a := range arts {
		names = append(names, a.Name)
		o.logf("  %s: %d bytes", a.Name, a.Size)
	}
	if err := writeSums(o.Out, names); err != nil {
		return nil, err
	}
	o.logf("wrote %s", filepath.Join(o.Out, SumsFile))
	return arts, nil
}

// Package writes t's .deb and .tar.gz of bins (by program) into o.Out,
// using work (a scratch directory) for staging.
func Package(o Options, t Target, bins map[string]string, work string) ([]Artifact, error) {
	ver, err := DebVersion(o.Stamp.Version)
	if err != nil {
		return nil, err
	}
	es, err := payload(bins)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(work, "root")
	staged, err := stage(root, es)
	if err != nil {
		return nil, err
	}
	scriptDir := filepath.Join(work, "scripts")
	if err := os.MkdirAll(scriptDir, 0o755); err != nil {
		return nil, err
	}
	if err := stageScripts(scriptDir); err != nil {
		return nil, err
	}
	base := fmt.Sprintf("%s_%s_%s", PackageName, ver, t.Label)
	var arts []Artifact
	for _, a := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{base + ".deb", func(w io.Writer) error { return writeDeb(w, t, ver, o.Stamp, es, staged, scriptDir) }},
		{base + ".tar.gz", func(w io.Writer) error { return writeTarball(w, o.Stamp, es, staged) }},
	} {
		p := filepath.Join(o.Out, a.name)
		if err := createAtomic(p, 0o644, a.write); err != nil {
			return nil, err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		arts = append(arts, Artifact{Target: t, Name: a.name, Size: fi.Size()})
	}
	return arts, nil
}
