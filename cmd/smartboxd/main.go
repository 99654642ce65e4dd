package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

func main() {
	// SIGTERM (systemd stop) and SIGINT (Ctrl-C) end ctx: the controller
	// relocks every slot and smartboxd exits 0.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// run is main without the process: flags, config, daemon. It returns the
// exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("smartboxd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", DefaultConfigPath, "config file (TOML)")
	hardware := fs.String("hardware", "", `hardware profile, overriding the config's: "sim" or "smartbox-v1"`)
	dataDir := fs.String("data", "", "data directory (box.db), overriding the config's data_dir")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	simClock := fs.String("sim-clock", "", "with the sim profile: the simulated board's clock starts at this RFC 3339 time (a board without an RTC battery boots in 1970)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "smartboxd: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	switch *hardware {
	case "", ProfileSim, ProfileSmartBoxV1:
	default:
		fmt.Fprintf(stderr, "smartboxd: --hardware %q: want %q or %q\n", *hardware, ProfileSim, ProfileSmartBoxV1)
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "smartboxd: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "smartboxd: %v\n", err)
		return exitFailure
	}
	if *hardware != "" {
		cfg.Hardware.Profile = *hardware
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "smartboxd: %v\n", err)
		return exitFailure
	}
	var clock box.Clock
	if *simClock != "" {
		t, err := time.Parse(time.RFC3339, *simClock)
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "smartboxd: --sim-clock %q: want an RFC 3339 time such as 1970-01-01T00:00:00Z\n", *simClock)
			return exitUsage
		case cfg.Hardware.Profile != ProfileSim:
			// A real box's clock is the system's; only a simulated board's
			// may be set from the command line.
			fmt.Fprintf(stderr, "smartboxd: --sim-clock needs the %q hardware profile, not %q\n", ProfileSim, cfg.Hardware.Profile)
			return exitUsage
		}
		clock = offsetClock{offset: time.Until(t)}
	}

	bt, btSource, err := resolveBuildTime(buildTime)
	if err != nil {
		fmt.Fprintf(stderr, "smartboxd: %v\n", err)
		return exitFailure
	}
	sw := softwareVersion(version)
	log.Info("starting", "box_id", cfg.BoxID, "profile", cfg.Hardware.Profile, "data", cfg.DataDir,
		"slots", cfg.Hardware.Slots.Count, "build_time", bt, "build_time_from", btSource, "software", sw)

	opts := daemonOptions{Log: log, BuildTime: bt, Clock: clock, Software: sw}
	if cfg.Hardware.Profile == ProfileSim {
		opts.Stdin, opts.Stdout = stdin, stdout
		if f, ok := stdin.(*os.File); ok {
			opts.StdinIsTerm = isTerminal(f.Fd())
		}
	}
	d, err := newDaemon(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "smartboxd: %v\n", err)
		return exitFailure
	}
	if err := d.run(ctx); err != nil {
		fmt.Fprintf(stderr, "smartboxd: %v\n", err)
		return exitFailure
	}
	log.Info("stopped; every slot relocked")
	return exitOK
}
