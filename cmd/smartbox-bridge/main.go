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
)

func main() {
	// SIGTERM (systemd stop) and SIGINT (Ctrl-C) end ctx: serve disconnects
	// from the broker, stops the embedded one and closes the stores.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `usage: smartbox-bridge COMMAND [flags]

The cloud side of SmartBox sync for a depot: box records and events in
DATA/bridge.db, an embedded MQTT broker (or an external one by URL), and a
local admin endpoint the other commands talk to.

  serve          run the bridge (--config FILE)
  signing-key    print the signing key as kid=base64, for smartboxctl provision
  register-box   --id ID --public-key B64 [--password-file F --slots N --name N --location L]
  boxes          list boxes: online, revision, outbox depth
  put-key        --box ID --key ID --fob UID --slot N [--name NAME]
  put-grant      --box ID --grant ID --kind booking|driver_code --code C --keys k1,k2
                 [--from RFC3339 --until RFC3339 --max-uses N --driver REF]
  revoke-grant   --box ID --grant ID
  events         --box ID [--after SEQ --limit N]
  release-slot   --box ID --slot N --by WHO --reason WHY [--ttl 10m --wait 30s]
  bookings       [--events] every grant of every box, Fleetio's marked, with events
  fleetio        the Fleetio integration: connect, link, book... (fleetio help)

Every command takes --config FILE (default ` + DefaultConfigPath + `) or
--data DIR to find the data directory of the running service.
`

type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

var commands = map[string]command{
	"serve":        cmdServe,
	"signing-key":  cmdSigningKey,
	"register-box": cmdRegisterBox,
	"boxes":        cmdBoxes,
	"put-key":      cmdPutKey,
	"put-grant":    cmdPutGrant,
	"revoke-grant": cmdRevokeGrant,
	"events":       cmdEvents,
	"release-slot": cmdReleaseSlot,
	"fleetio":      cmdFleetio,
	"bookings":     cmdBookings,
}

// flagErrHelp is flag.ErrHelp, for files that name flag sets by interface.
var flagErrHelp = flag.ErrHelp

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{msg: fmt.Sprintf(format, args...)} }

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "smartbox-bridge: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		if ue.msg != "" {
			fmt.Fprintf(stderr, "smartbox-bridge %s: %v\n", args[0], err)
		}
		return exitUsage
	default:
		fmt.Fprintf(stderr, "smartbox-bridge %s: %v\n", args[0], err)
		return exitFailure
	}
}

// newFlagSet makes a command's flags with the data-dir flags every command
// shares.
func newFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *dirFlags) {
	fs := flag.NewFlagSet("smartbox-bridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := &dirFlags{}
	fs.StringVar(&d.config, "config", DefaultConfigPath, "config file (TOML)")
	fs.StringVar(&d.data, "data", "", "data directory, overriding the config's data_dir")
	return fs, d
}

type dirFlags struct{ config, data string }

// parse parses flags; a flag error has been printed by the flag package.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newFlagSet("serve", stderr)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", *logLevel)
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
	if err := s.run(ctx); err != nil {
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
