// Command mkfirmware is `make firmware`: it cross-compiles smartboxd and
// smartboxctl and packages them per target into --out (see package
// cmd/internal/firmware).
//
//	go run ./cmd/internal/firmware/mkfirmware --out dist --version v1.2.3 \
//	    --commit $(git rev-parse HEAD) --build-time 2026-12-02T10:00:00Z [--targets all]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/buildinfo"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/firmware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(cli.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr), "mkfirmware", os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("mkfirmware", stderr)
	out := fs.String("out", "dist", "output directory")
	version := fs.String("version", buildinfo.DevVersion, "version to stamp (git describe --tags --always --dirty)")
	commit := fs.String("commit", "", "commit to stamp (git rev-parse HEAD)")
	buildTime := fs.String("build-time", "", "build time to stamp, RFC 3339 (the last commit's); empty: now")
	targets := fs.String("targets", "all", "targets: all, or a comma list of armv6, armhf, arm64, amd64")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ts, err := firmware.TargetsByLabel(*targets)
	if err != nil {
		return cli.Usagef("--targets: %v", err)
	}
	bt := time.Now().UTC().Truncate(time.Second)
	if *buildTime != "" {
		if bt, err = time.Parse(time.RFC3339, *buildTime); err != nil {
			return cli.Usagef("--build-time %q: want RFC 3339, e.g. 2026-12-02T10:00:00Z", *buildTime)
		}
	}
	start := time.Now()
	o := firmware.Options{Builder: firmware.Builder{Stamp: firmware.Stamp{Version: *version, Commit: *commit, BuildTime: bt}},
		Out: *out, Log: stdout}
	if _, err := firmware.Run(ctx, o, ts); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "firmware for %d targets in %s, in %s\n", len(ts), *out, time.Since(start).Round(100*time.Millisecond))
	return nil
}
