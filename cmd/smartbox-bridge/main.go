package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/smartbox-oss/smartbox/cmd/internal/buildinfo"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
)

func main() {
	// SIGTERM (systemd stop) and SIGINT (Ctrl-C) end ctx: serve disconnects
	// from the broker, stops the embedded one and closes the stores.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes, as the kit defines them.
const (
	exitOK      = cli.ExitOK
	exitFailure = cli.ExitFailure
	exitUsage   = cli.ExitUsage
)

// commands are smartbox-bridge's: serve, and the admin client commands that
// talk to the running service.
var commands = &cli.Set{
	Name: "smartbox-bridge",
	Header: `usage: smartbox-bridge COMMAND [flags]

The cloud side of SmartBox sync for a depot: box records and events in
DATA/cloud.db, an embedded MQTT broker (or an external one by URL), and a
local admin endpoint the other commands talk to.

`,
	Width: 15,
	Commands: []cli.Command{
		{Name: "serve", Summary: "run the bridge (--config FILE)", Run: cmdServe},
		{Name: "migrate", Summary: "move data_dir's stores and secrets into the [store] PostgreSQL database\n" +
			"(stop the bridge first; the database must be empty)", Run: cmdMigrate},
		{Name: "signing-key", Summary: "print the signing key as kid=base64, for smartboxctl provision", Run: cmdSigningKey},
		{Name: "register-box", Summary: "--id ID --public-key B64 [--password-file F --slots N --name N --location L]\n" +
			"or --record FILE [--cert-out FILE]: a record of smartboxctl provision --offline", Run: cmdRegisterBox},
		{Name: "provisioning", Summary: "what a new box is given: broker URL, signing key, CA", Run: cmdProvisioning},
		{Name: "boxes", Summary: "list boxes: online, revision, outbox depth", Run: cmdBoxes},
		{Name: "put-key", Summary: "--box ID --key ID --fob UID --slot N [--name NAME]", Run: cmdPutKey},
		{Name: "put-grant", Summary: "--box ID --grant ID --kind booking|driver_code --code C --keys k1,k2\n" +
			"[--from RFC3339 --until RFC3339 --max-uses N --driver REF]", Run: cmdPutGrant},
		{Name: "revoke-grant", Summary: "--box ID --grant ID", Run: cmdRevokeGrant},
		{Name: "events", Summary: "--box ID [--after SEQ --limit N]", Run: cmdEvents},
		{Name: "release-slot", Summary: "--box ID --slot N --by WHO --reason WHY [--ttl 10m --wait 30s]", Run: cmdReleaseSlot},
		{Name: "restore-keypad", Summary: "--box ID --by WHO --reason WHY [--ttl 10m --wait 30s]: reopen a keypad\n" +
			"closed by too many wrong codes", Run: cmdRestoreKeypad},
		{Name: "bookings", Summary: "[--events] every grant of every box, Fleetio's marked, with events", Run: cmdBookings},
		{Name: "fleetio", Summary: "the Fleetio integration: connect, link, book... (fleetio help)", Run: fleetioCommands.Run},
	},
	Footer: `
Every command takes --config FILE (default ` + DefaultConfigPath + `) or
--data DIR to find the data directory of the running service.
`,
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "--version" {
		return cli.Exit(buildinfo.Fprint(stdout, "smartbox-bridge"), "smartbox-bridge", stderr)
	}
	return commands.Main(ctx, args, stdout, stderr)
}

// newFlagSet makes a command's flags with the data-dir flags every command
// shares.
func newFlagSet(name string, stderr io.Writer) (*cli.FlagSet, *dirFlags) {
	fs := cli.NewFlagSet("smartbox-bridge "+name, stderr)
	d := &dirFlags{}
	fs.StringVar(&d.config, "config", DefaultConfigPath, "config file (TOML)")
	fs.StringVar(&d.data, "data", "", "data directory, overriding the config's data_dir")
	return fs, d
}

type dirFlags struct{ config, data string }

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newFlagSet("serve", stderr)
	logLevel := fs.String("log-level", "info", cli.LogLevelUsage)
	if err := fs.Parse(args); err != nil {
		return err
	}
	level, err := cli.ParseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := loadConfigFor(d, true)
	if err != nil {
		return err
	}
	s, err := startService(cfg, log, stdout)
	if err != nil {
		return err
	}
	if err := s.run(ctx, log); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// loadConfigFor loads the config named by the flags. The client commands
// need only the data dir: with --data they skip the config file entirely.
func loadConfigFor(d *dirFlags, serve bool) (*Config, error) {
	if d.data != "" && !serve {
		return &Config{DataDir: d.data}, nil
	}
	src, err := os.ReadFile(d.config)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(d.config, src)
	if err != nil {
		return nil, err
	}
	if d.data != "" {
		cfg.DataDir = d.data
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}
