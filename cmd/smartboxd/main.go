package main

import (
	"context"
	"flag"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/buildinfo"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/sim"
)

func main() {
	// SIGTERM (systemd stop) and SIGINT (Ctrl-C) end ctx: the controller
	// relocks every slot and smartboxd exits 0.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: flags, config, daemon. It returns the
// exit code (cmd/internal/cli's: 0 done, 1 failed, 2 a wrong command line).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Exit(runDaemon(ctx, args, stdin, stdout, stderr), "smartboxd", stderr)
}

// runDaemon is run before its error is reported: a mistake on the command
// line is a cli.UsageError.
func runDaemon(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("smartboxd", stderr)
	configPath := fs.String("config", boxconfig.DefaultConfigPath, "config file (TOML)")
	hardware := fs.String("hardware", "", `hardware profile, overriding the config's: "sim" or "smartbox-v1"`)
	dataDir := fs.String("data", "", "data directory (box.db), overriding the config's data_dir")
	logLevel := fs.String("log-level", "info", cli.LogLevelUsage)
	simClock := fs.String("sim-clock", "", "with the sim profile: the simulated board's clock starts at this RFC 3339 time (a board without an RTC battery boots in 1970)")
	simKeys := fs.String("sim-keys", "all", `with the sim profile: the slots holding a key at start: "all", "none" or a list such as 1,2,5`)
	socket := fs.String("socket", defaultSocket(), "serve the local admin socket (HTTP and JSON, mode 0600) at this path; default: $RUNTIME_DIRECTORY/"+boxsocket.SocketName+" when systemd sets RUNTIME_DIRECTORY, else none")
	socketGroup := fs.String("socket-group", "", "make the socket 0660 with this group (the unit passes smartbox), so that its members may use smartboxctl; empty: 0600")
	showVersion := fs.Bool("version", false, "print the version, commit, build time and platform, and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socketGroup != "" && *socket == "" {
		return cli.Usagef("--socket-group %q: there is no socket (give --socket, or run under systemd with RuntimeDirectory=)", *socketGroup)
	}
	if *showVersion {
		return buildinfo.Fprint(stdout, "smartboxd")
	}
	switch *hardware {
	case "", boxconfig.ProfileSim, boxconfig.ProfileSmartBoxV1:
	default:
		return cli.Usagef("--hardware %q: want %q or %q", *hardware, boxconfig.ProfileSim, boxconfig.ProfileSmartBoxV1)
	}
	level, err := cli.ParseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := boxconfig.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	if *hardware != "" {
		cfg.Hardware.Profile = *hardware
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var clock box.Clock
	if *simClock != "" {
		t, err := time.Parse(time.RFC3339, *simClock)
		switch {
		case err != nil:
			return cli.Usagef("--sim-clock %q: want an RFC 3339 time such as 1970-01-01T00:00:00Z", *simClock)
		case cfg.Hardware.Profile != boxconfig.ProfileSim:
			// A real box's clock is the system's; only a simulated board's
			// may be set from the command line.
			return cli.Usagef("--sim-clock needs the %q hardware profile, not %q", boxconfig.ProfileSim, cfg.Hardware.Profile)
		}
		clock = newOffsetClock(t)
	}
	simKeysSet := false
	fs.Visit(func(f *flag.Flag) { simKeysSet = simKeysSet || f.Name == "sim-keys" })
	var simSlots *sim.Slots
	switch {
	case cfg.Hardware.Profile == boxconfig.ProfileSim:
		keys, err := parseSimKeys(*simKeys, cfg.Hardware.Slots.Count)
		if err != nil {
			return err
		}
		simSlots = sim.NewSlotsHolding(keys)
	case simKeysSet:
		return cli.Usagef("--sim-keys needs the %q hardware profile, not %q", boxconfig.ProfileSim, cfg.Hardware.Profile)
	}

	bi, err := buildinfo.Read()
	if err != nil {
		return err
	}
	sw := bi.Software("smartboxd")
	log.Info("starting", "box_id", cfg.BoxID, "profile", cfg.Hardware.Profile, "data", cfg.DataDir,
		"slots", cfg.Hardware.Slots.Count, "build_time", bi.BuildTime, "build_time_from", bi.BuildTimeFrom, "software", sw)

	opts := daemonOptions{Log: log, BuildTime: bi.BuildTime, Clock: clock, Software: sw, Socket: *socket, SocketGroup: *socketGroup, simSlots: simSlots}
	if cfg.Hardware.Profile == boxconfig.ProfileSim {
		opts.Stdin, opts.Stdout = stdin, stdout
		if f, ok := stdin.(*os.File); ok {
			opts.StdinIsTerm = isTerminal(f.Fd())
		}
	}
	d, err := newDaemon(cfg, opts)
	if err != nil {
		return err
	}
	if err := d.run(ctx); err != nil {
		return err
	}
	log.Info("stopped; every slot relocked")
	return nil
}

// parseSimKeys reads --sim-keys for n slots: "all", "none" or a comma list
// of slot numbers. A bad list is a usage error naming it.
func parseSimKeys(s string, n int) ([]bool, error) {
	keys := make([]bool, n)
	switch s = strings.TrimSpace(s); s {
	case "all":
		for i := range keys {
			keys[i] = true
		}
		return keys, nil
	case "none":
		return keys, nil
	}
	for _, f := range strings.Split(s, ",") {
		slot, err := strconv.Atoi(strings.TrimSpace(f))
		switch {
		case err != nil:
			return nil, cli.Usagef("--sim-keys %q: %q is not a slot number (want \"all\", \"none\" or a list such as 1,2,5)", s, f)
		case slot < 1 || slot > n:
			return nil, cli.Usagef("--sim-keys %q: slot %d is not in 1..%d", s, slot, n)
		case keys[slot-1]:
			return nil, cli.Usagef("--sim-keys %q: slot %d is listed twice", s, slot)
		}
		keys[slot-1] = true
	}
	return keys, nil
}

// defaultSocket is the admin socket's path when --socket is not given:
// $RUNTIME_DIRECTORY/smartboxd.sock under systemd (RuntimeDirectory=
// smartbox makes it boxsocket.DefaultPath), else none.
func defaultSocket() string {
	dir := os.Getenv("RUNTIME_DIRECTORY")
	if dir == "" {
		return ""
	}
	// Several RuntimeDirectory= entries come colon-separated: the first.
	dir, _, _ = strings.Cut(dir, ":")
	return filepath.Join(dir, boxsocket.SocketName)
}
