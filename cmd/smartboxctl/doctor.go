package main

// smartboxctl doctor: what is wrong with this box, in words, and what to do.
// One finding per check: "ok" with what was checked, "problem" with what is
// wrong and the fix, or "skipped" with why it could not be checked. The
// checks are in doctor_*.go, one file per subject.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
)

// Finding states.
const (
	stateOK      = "ok"
	stateProblem = "problem"
	stateSkipped = "skipped"
)

// finding is one check's verdict. The JSON form is for scripts and is
// stable: check, state, what, and fix on a problem.
type finding struct {
	Check string `json:"check"` // config, pins, reader, daemon, store, broker, signing, clock, ntp, outbox, disk
	State string `json:"state"` // ok, problem, skipped
	// What is what was found, in words: what was checked and is fine, what
	// is wrong (naming what and where), or why the check could not run.
	What string `json:"what"`
	Fix  string `json:"fix,omitempty"` // what to do, on a problem
}

// doctor holds what the checks found out so far: later checks use it (the
// store is not opened when the daemon answers, the broker is not dialled
// while the daemon is connected to it).
type doctor struct {
	configPath string
	socketPath string
	dataDir    string
	// cfg is the config, nil when it does not load or validate.
	cfg *boxconfig.Config
	// creds are [cloud]'s credentials, nil when they could not be read.
	creds *boxconfig.Credentials
	// status is the running daemon's, nil when its socket does not answer.
	status *boxsocket.Status
	client *boxsocket.Client

	findings []finding
}

func (d *doctor) ok(check, format string, args ...any) {
	d.findings = append(d.findings, finding{Check: check, State: stateOK, What: fmt.Sprintf(format, args...)})
}

func (d *doctor) problem(check, what, fix string) {
	d.findings = append(d.findings, finding{Check: check, State: stateProblem, What: what, Fix: fix})
}

func (d *doctor) skipped(check, format string, args ...any) {
	d.findings = append(d.findings, finding{Check: check, State: stateSkipped, What: fmt.Sprintf(format, args...)})
}

// problems counts the findings that are problems.
func (d *doctor) problems() int {
	n := 0
	for _, f := range d.findings {
		if f.State == stateProblem {
			n++
		}
	}
	return n
}

func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("doctor", stderr)
	configPath := fs.String("config", boxconfig.DefaultConfigPath, "smartboxd's config file")
	socketPath := fs.String("socket", boxsocket.DefaultPath, "smartboxd's local socket")
	dataDir := fs.String("data", "", "data directory (the store is DIR/box.db); default: the config's data_dir")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if _, err := fs.ParseArgs(args); err != nil {
		return err
	}
	d := &doctor{configPath: *configPath, socketPath: *socketPath, dataDir: *dataDir}
	d.run(ctx)
	if err := d.print(stdout, *asJSON); err != nil {
		return err
	}
	if n := d.problems(); n > 0 {
		return fmt.Errorf("%d problem(s) found", n)
	}
	return nil
}

// run runs every check, in an order where each can use what the earlier
// ones found.
func (d *doctor) run(ctx context.Context) {
	d.checkConfig()
	if d.dataDir == "" {
		d.dataDir = boxconfig.DefaultDataDir
		if d.cfg != nil {
			d.dataDir = d.cfg.DataDir
		}
	}
	d.checkDaemon(ctx)
	if d.client != nil {
		defer d.client.Close()
	}
	d.checkPins()
	d.checkReader()
	d.checkStore()
	d.checkBroker(ctx)
	d.checkSigning(ctx)
	d.checkClock()
	d.checkOutbox()
	d.checkDisk()
}

// print writes the findings: a line per finding (a problem's fix on the
// next, indented), or JSON.
func (d *doctor) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			OK       bool      `json:"ok"`
			Findings []finding `json:"findings"`
		}{d.problems() == 0, d.findings})
	}
	var b strings.Builder
	for _, f := range d.findings {
		label := f.State
		if f.State == stateProblem {
			label = "PROBLEM"
		}
		fmt.Fprintf(&b, "%-8s %-8s %s\n", label, f.Check, f.What)
		if f.Fix != "" {
			fmt.Fprintf(&b, "%-17s what to do: %s\n", "", f.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
