package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

func main() {
	os.Exit(runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// commands are the fleet manager's; without one, the arguments are the
// fake's flags (fake-fleetio --listen ... as the demo starts it).
var commands = &cli.Set{
	Name: "fake-fleetio",
	Header: `usage: fake-fleetio [flags]        serve the fake Fleetio account (fake-fleetio serve -h: the flags)
       fake-fleetio COMMAND [flags]

`,
	Width: 10,
	Commands: []cli.Command{
		{Name: "serve", Summary: "serve the fake account (the default)", Run: run},
		{Name: "assign", Summary: "--api-key K --vehicle ID --contact ID [--hours 8 --wait 30s]: create an assignment\n" +
			"and wait for the Keycafe fields the bridge writes back", Run: manager("assign")},
		{Name: "unassign", Summary: "--api-key K ASSIGNMENT: delete an assignment", Run: manager("unassign")},
	},
}

// runMain is main without the process: it returns the exit code.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		args = append([]string{"serve"}, args...)
	}
	return commands.Main(ctx, args, stdout, stderr)
}

// run starts the fake and serves until ctx ends or a signal comes.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fake-fleetio", stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on (host:port)")
	key := fs.String("api-key", "", "the account's API key (required)")
	account := fs.String("account-token", "", "the account token (required)")
	hookURL := fs.String("webhook-url", "", "where vehicle_assignment_* webhooks go (empty: recorded, not sent)")
	hookSecret := fs.String("webhook-secret", "", "webhook secret for X-Fleetio-Webhook-Signature")
	hookAuth := fs.String("webhook-authorization", "", "fixed Authorization header value for webhooks")
	retries := fs.String("retry-intervals", "1s,5s,30s,2m,10m", "comma-separated waits before each webhook retry")
	seed := fs.Bool("seed", false, "add a few vehicles and contacts")
	verbose := fs.Bool("v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" || *account == "" {
		return cli.Usagef("--api-key and --account-token are required")
	}
	intervals, err := parseIntervals(*retries)
	if err != nil {
		return cli.Usagef("--retry-intervals: %v", err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	f := fleetiotest.New(fleetiotest.Options{
		APIKey: *key, AccountToken: *account,
		WebhookURL: *hookURL, WebhookSecret: *hookSecret, WebhookAuthorization: *hookAuth,
		RetryIntervals: intervals, TriggeredBy: "fleet.manager@example.com", Logger: log,
	})
	defer f.Close()
	if *seed {
		if err := seedAccount(f); err != nil {
			return err
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/api/", f)
	mux.Handle("/_fake/", f.ControlHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := listenTCP(*listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())
	log.Info("fake fleetio serving", "base", "http://"+ln.Addr().String(), "api", "http://"+ln.Addr().String()+"/api", "webhook_url", *hookURL)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func parseIntervals(s string) ([]time.Duration, error) {
	out := []time.Duration{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		d, err := time.ParseDuration(p)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%q is not a duration like 5s", p)
		}
		out = append(out, d)
	}
	return out, nil
}

func seedAccount(f *fleetiotest.Server) error {
	for _, v := range []fleetio.Vehicle{
		{Name: "Van 7", LicensePlate: "KC-7007", VIN: "1FTBW2CM5GKA12345", Year: 2021, Make: "Ford", Model: "Transit"},
		{Name: "Truck 12", LicensePlate: "KC-1212", VIN: "4V4NC9EH0LN123456", Year: 2020, Make: "Volvo", Model: "VNL"},
		{Name: "Car 3", LicensePlate: "KC-3003", VIN: "JTDKN3DU5A0123456", Year: 2019, Make: "Toyota", Model: "Prius"},
	} {
		if _, err := f.AddVehicle(v); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	for _, c := range []fleetio.Contact{
		{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", EmployeeNumber: "E-100", MobilePhoneNumber: "+15550100"},
		{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com", EmployeeNumber: "E-101"},
	} {
		if _, err := f.AddContact(c); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	for _, k := range []string{fleetio.FieldAccessInstructions, fleetio.FieldAccessLink, fleetio.FieldAccessCode} {
		f.DefineCustomField(k, false)
	}
	return nil
}
