package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/scenario"
	"github.com/smartbox-oss/smartbox/cmd/internal/simweb"
)

// DefaultListen is the page's address: loopback, a port unlikely to be taken.
const DefaultListen = "127.0.0.1:8400"

// The page server's bounds: a request's headers (a slow client holds no
// connection for long), and its shutdown once the live streams are closed.
const (
	readHeaderTimeout = 10 * time.Second
	shutdownTimeout   = 2 * time.Second
)

func main() {
	// Ctrl-C and SIGTERM end ctx: every box relocks and stops, then the rest.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Exit(runSim(ctx, args, stdin, stdout, stderr), "smartbox-sim", stderr)
}

func runSim(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("smartbox-sim", stderr)
	listen := fs.String("listen", DefaultListen, "the page's address (host:port; port 0 picks a free one); loopback only unless --allow-remote")
	allowRemote := fs.Bool("allow-remote", false, "let --listen be an address other machines reach (the page has no login and controls the whole installation)")
	boxes := fs.Int("boxes", 1, fmt.Sprintf("how many boxes (smartboxd processes) run, 1..%d", depot.MaxBoxes))
	dataDir := fs.String("data", "", `where the installation lives (cleared at start); "" a temporary directory`)
	smartboxd := fs.String("smartboxd", "", "the smartboxd binary (default: beside this program, then $PATH)")
	smartboxctl := fs.String("smartboxctl", "", "the smartboxctl binary that provisions each box (default: beside this program, then beside smartboxd, then $PATH)")
	console := fs.Bool("console", false, "box 1's line console on this terminal (type help), beside the page")
	scen := fs.String("scenario", "", `run a scripted story headless and exit (NAME, "all", or "list")`)
	logLevel := fs.String("log-level", "warn", cli.LogLevelUsage)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *boxes < 1 || *boxes > depot.MaxBoxes {
		return cli.Usagef("--boxes %d: want 1..%d", *boxes, depot.MaxBoxes)
	}
	level, err := cli.ParseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts := depot.Options{Dir: *dataDir, Boxes: *boxes, Smartboxd: *smartboxd, Smartboxctl: *smartboxctl, Logger: log}

	if *scen != "" {
		if *scen == "list" {
			for _, s := range scenario.All {
				fmt.Fprintf(stdout, "%-16s %s\n", s.Name, s.Story)
			}
			return nil
		}
		list, err := scenario.Select(*scen)
		if err != nil {
			return cli.Usagef("--scenario: %v", err)
		}
		return scenario.RunAll(ctx, list, opts, stdout)
	}

	// The page drives every box, the broker and Fleetio, with no login:
	// on an address others reach, anyone on the network could.
	if !isLoopbackListen(*listen) {
		if !*allowRemote {
			return cli.Usagef("--listen %s: not a loopback address; the page has no login and controls the whole installation, so anyone who reaches it could open every slot. Use 127.0.0.1, or pass --allow-remote if you mean it", *listen)
		}
		fmt.Fprintf(stderr, "warning: --allow-remote: the page on %s has no login; anyone who reaches it controls the whole installation\n", *listen)
	}

	// The page's port first: a port in use is said at once, before
	// anything starts.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("the page cannot listen on %s (in use? pass --listen 127.0.0.1:0 for a free port): %w", *listen, err)
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String()
	opts.AdminLink = func(assignmentID string) string { return url + "/#reservation-" + assignmentID }
	if *console {
		opts.Console, opts.ConsoleOut = stdin, stdout
	}

	began := time.Now()
	d, err := depot.Start(ctx, opts)
	if err != nil {
		return err
	}
	// Any Host header only when other machines are meant to reach the
	// page: on loopback the Host check is what stops a DNS-rebinding page.
	page := simweb.New(d, simweb.Options{Logger: log, AnyHost: *allowRemote && !isLoopbackListen(*listen)})
	srv := &http.Server{Handler: page, ReadHeaderTimeout: readHeaderTimeout}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "SmartBox simulator: %d box(es), bridge, fake Fleetio, mail and SMS catchers; ready in %.1f s.\n",
		*boxes, time.Since(began).Seconds())
	fmt.Fprintf(stdout, "Open %s\n", url)
	fmt.Fprintf(stdout, "Data in %s. Ctrl-C stops everything (every slot relocks).\n", d.Dir())

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-served:
		runErr = fmt.Errorf("the page server stopped: %w", err)
	case <-consoleDone(d, *console):
		// `quit` at box 1's console: the person is done.
	}
	// The page's live streams end first, so that the server's Shutdown has
	// nothing to wait for.
	_ = page.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(sctx)
	closeErr := d.Close()
	if closeErr == nil {
		fmt.Fprintln(stdout, "stopped; every slot relocked")
	}
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return errors.Join(runErr, closeErr)
}

// consoleDone is closed when box 1's console process ends (quit), if the
// console is on; otherwise never.
func consoleDone(d *depot.Depot, console bool) <-chan struct{} {
	if !console {
		return nil
	}
	ch := make(chan struct{})
	go func() {
		for {
			changed := d.Changed()
			if v := d.Boxes()[0]; v.Process == depot.ProcessExited && v.ExitCode == 0 {
				close(ch)
				return
			}
			<-changed
		}
	}()
	return ch
}

// isLoopbackListen reports whether the --listen address (host:port) is
// reachable from this machine only ("" or ":8400" is every interface).
func isLoopbackListen(addr string) bool {
	_, _, err := net.SplitHostPort(addr)
	return err == nil && simweb.IsLoopback(addr)
}
