package firmware

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Programs are the binaries a package installs in /usr/bin, by their
// package path in the module.
var Programs = []string{"smartboxd", "smartboxctl"}

// Builder cross-compiles the programs.
type Builder struct {
	Go     string // the go command; "" is "go"
	Module string // the module's root directory; "" asks `go env GOMOD`
	Stamp  Stamp
}

// moduleDir is the module's root, where go build runs.
func (b Builder) moduleDir(ctx context.Context) (string, error) {
	if b.Module != "" {
		return b.Module, nil
	}
	out, err := exec.CommandContext(ctx, b.goCmd(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root (go env GOMOD): %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the SmartBox module (go env GOMOD is empty): run from the repository")
	}
	return filepath.Dir(mod), nil
}

func (b Builder) goCmd() string {
	if b.Go == "" {
		return "go"
	}
	return b.Go
}

// Build compiles program (one of Programs) for t into dir/program and
// returns its path: static (CGO_ENABLED=0: no libc to match on the board),
// -trimpath (no build machine paths in the binary), stamped.
func (b Builder) Build(ctx context.Context, t Target, program, dir string) (string, error) {
	mod, err := b.moduleDir(ctx)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, program)
	// -buildvcs=false: the stamp says which commit; the VCS stamp would
	// also fail a build from a tarball of the source.
	cmd := exec.CommandContext(ctx, b.goCmd(), "build", "-trimpath", "-buildvcs=false",
		"-ldflags", b.Stamp.LDFlags(), "-o", out, "./cmd/"+program)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.GOOS, "GOARCH="+t.GOARCH, "GOARM="+t.GOARM)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s for %s: %w\n%s", program, t.Platform(), err, stderr.String())
	}
	return out, nil
}

// BuildAll compiles every program for t into dir, by name.
func (b Builder) BuildAll(ctx context.Context, t Target, dir string) (map[string]string, error) {
	bins := map[string]string{}
	for _, p := range Programs {
		path, err := b.Build(ctx, t, p, dir)
		if err != nil {
			return nil, err
		}
		bins[p] = path
	}
	return bins, nil
}
