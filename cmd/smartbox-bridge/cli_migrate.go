package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
)

// cmdMigrate moves a depot onto PostgreSQL: data_dir's bbolt stores and
// secret files into the empty database the config's [store] names
// (bridge.MoveToPostgres). The steps for an admin: stop the bridge, add
// [store] to the config, run this, start serve (as many replicas as
// wanted). The files stay where they are: going back is the old config.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newFlagSet("migrate", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfigFor(d, true)
	if err != nil {
		return err
	}
	url, err := cfg.storeURL()
	if err != nil {
		return err
	}
	if url == "" {
		return cli.Usagef("the config has no [store] url or url_file: name the PostgreSQL database to move into")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := bridge.MoveToPostgres(ctx, cfg.DataDir, url, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "moved %s into %s:\n", cfg.DataDir, pgdb.Redact(url))
	fmt.Fprintf(stdout, "  secrets       %d (signing key, CA, admin token)\n", rep.Secrets)
	fmt.Fprintf(stdout, "  box accounts  %d\n", rep.Accounts)
	c := rep.Cloud
	fmt.Fprintf(stdout, "  cloud         %d boxes, %d keys, %d grants, %d log entries, %d events, %d commands\n",
		c.Boxes, c.Keys, c.Grants, c.LogEntries, c.Events, c.Commands)
	total := 0
	for _, n := range rep.Bookings {
		total += n
	}
	fmt.Fprintf(stdout, "  bookings      %d records\n", total)
	fmt.Fprintf(stdout, "start `smartbox-bridge serve` with this config; the files in %s are left as they were\n", cfg.DataDir)
	return nil
}
