package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxhw"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/ntpsync"
	"github.com/smartbox-oss/smartbox/cmd/internal/selftest"
)

// selftestSignals end a self-test through its defers, which de-energise
// every lock it energised: a dropped SSH session (SIGHUP) and a ^\
// (SIGQUIT) as well as ^C and a stop. Only SIGKILL cannot be caught (see
// doc.go).
var selftestSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// selftestStdin is where the technician's answers come from (tests swap it).
var selftestStdin io.Reader = os.Stdin

// errSelftestFailed is the test's verdict when a row failed: exit 1, the
// table (or JSON) already says which.
var errSelftestFailed = errors.New("the self-test failed: see the rows marked FAIL")

func cmdSelftest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("selftest", stderr)
	sock := fs.String("socket", boxsocket.DefaultPath, "smartboxd's local socket")
	cfgPath := fs.String("config", "", "smartboxd's config (needed when smartboxd is stopped: the test then drives the hardware)")
	yes := fs.Bool("yes", false, "answer yes to every confirmation (the test still waits for the hardware)")
	asJSON := fs.Bool("json", false, "print the report as JSON (stable: see cmd/internal/selftest.Report)")
	only := fs.String("only", "", "comma-separated groups to run: "+strings.Join(groupList(), ","))
	if err := fs.Parse(args); err != nil {
		return err
	}
	groups, err := selftest.ParseGroups(*only)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	ctx, stop := signal.NotifyContext(ctx, selftestSignals...)
	defer stop()
	p := newTermPrompter(ctx, selftestStdin, stderr, *yes)
	opts := selftest.Options{Groups: groups}

	c := boxsocket.Dial(*sock)
	defer c.Close()
	var rep *selftest.Report
	if _, serr := c.Status(ctx); serr == nil {
		rep, err = selftest.RunSocket(ctx, c, p, opts)
	} else {
		if *cfgPath == "" {
			return fmt.Errorf("smartboxd does not answer on %s (%v): start it, give its --socket, or stop it and give --config FILE to test the hardware directly", *sock, serr)
		}
		opts.Via = "hardware"
		rep, err = selftestHardware(ctx, *cfgPath, p, opts)
	}
	if rep != nil {
		var werr error
		if *asJSON {
			werr = rep.WriteJSON(stdout)
		} else {
			werr = rep.WriteTable(stdout)
		}
		err = errors.Join(err, werr)
	}
	if err == nil && rep.Failed() {
		err = errSelftestFailed
	}
	return err
}

func groupList() []string {
	var s []string
	for _, g := range selftest.Groups {
		s = append(s, string(g))
	}
	return s
}

// termPrompter asks on stderr and reads the answers from stdin, a line
// each.
type termPrompter struct {
	out   io.Writer
	yes   bool
	lines <-chan string // closed at EOF
}

func newTermPrompter(ctx context.Context, in io.Reader, out io.Writer, yes bool) *termPrompter {
	lines := make(chan string)
	if !yes {
		// A read on stdin cannot be interrupted: it runs on its own and
		// is left behind when the command ends.
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(in)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return &termPrompter{out: out, yes: yes, lines: lines}
}

func (p *termPrompter) AssumeYes() bool { return p.yes }

func (p *termPrompter) Say(instruction string) { fmt.Fprintln(p.out, "> "+instruction) }

func (p *termPrompter) Confirm(ctx context.Context, question string) (bool, error) {
	if p.yes {
		fmt.Fprintf(p.out, "> %s yes (--yes)\n", question)
		return true, nil
	}
	for {
		fmt.Fprintf(p.out, "> %s [y/n] ", question)
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case line, ok := <-p.lines:
			if !ok {
				return false, errors.New("no answer (stdin closed): run with --yes to answer yes to every question")
			}
			switch strings.ToLower(strings.TrimSpace(line)) {
			case "y", "yes":
				return true, nil
			case "n", "no":
				return false, nil
			}
		}
	}
}

// selftestHardware runs the test on a stopped box's hardware.
func selftestHardware(ctx context.Context, cfgPath string, p selftest.Prompter, opts selftest.Options) (*selftest.Report, error) {
	cfg, err := boxconfig.LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return selftest.RunHardware(ctx, cfg, p, opts, boxhw.Options{Log: discardLogger}, ntpsync.Synced)
}
