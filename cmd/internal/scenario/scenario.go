// Package scenario is the simulator's scripted stories: each starts a fresh
// depot (cmd/internal/depot: the bridge, the fake Fleetio, the catchers and a
// real smartboxd process), plays what people and faults do, step by step,
// and stops at the first step that does not happen, saying which and what
// was seen instead. `smartbox-sim --scenario NAME` runs them headless, and
// `make test` runs them all (scenario_test.go).
package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
)

// StepTimeout bounds one step's wait: the slowest legitimate step is a box
// reconnecting after its network comes back (the link's back-off, capped at
// 30 s) and resending its outbox.
const StepTimeout = 45 * time.Second

// recheck is how often a step's condition is looked at again besides every
// change the depot signals: a few conditions (the bridge's bookings) change
// without a signal of their own.
const recheck = 250 * time.Millisecond

// Scenario is one story.
type Scenario struct {
	Name  string
	Story string // one line: what it shows
	Play  func(ctx context.Context, r *Run) error
}

// All is every scenario, in the order `all` runs them.
var All = []Scenario{
	{Name: "automatic", Story: "the seed article's Automatic flow: assignment, email, PIN typed, slot opens, key taken, fields filled", Play: playAutomatic},
	{Name: "prompt", Story: "a Prompt-mode vehicle: the admin is asked, creates the booking, the driver gets an SMS and opens the slot", Play: playPrompt},
	{Name: "changed-deleted", Story: "an assignment changed (new driver, new window) and deleted: the old PIN stops working", Play: playChangedDeleted},
	{Name: "offline", Story: "the box cut off: a PIN made before still works, the events reach the bridge after", Play: playOffline},
	{Name: "power-cut", Story: "the power pulled while a slot is released: it comes back locked and no event is lost", Play: playPowerCut},
	{Name: "forged-grant", Story: "a forged grant batch on the box's topic: refused, a security event, PINs keep working", Play: playForgedGrant},
	{Name: "selftest", Story: "smartboxctl selftest with a jammed lock and a dead sensor: both rows fail, the rest pass, exit status 1", Play: playSelftest},
}

// Select resolves a --scenario argument: a name, or "all".
func Select(name string) ([]Scenario, error) {
	if name == "all" {
		return All, nil
	}
	for _, s := range All {
		if s.Name == name {
			return []Scenario{s}, nil
		}
	}
	names := make([]string, 0, len(All))
	for _, s := range All {
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("no scenario %q: want one of %s, or all", name, strings.Join(names, ", "))
}

// RunAll plays each scenario on a fresh depot made from opts, printing each
// step to out, and returns the first failure.
func RunAll(ctx context.Context, list []Scenario, opts depot.Options, out io.Writer) error {
	for _, s := range list {
		fmt.Fprintf(out, "== %s: %s\n", s.Name, s.Story)
		began := time.Now()
		if err := RunOne(ctx, s, opts, out); err != nil {
			fmt.Fprintf(out, "FAIL %s (%.1f s)\n", s.Name, time.Since(began).Seconds())
			return fmt.Errorf("scenario %s: %w", s.Name, err)
		}
		fmt.Fprintf(out, "ok   %s (%.1f s)\n", s.Name, time.Since(began).Seconds())
	}
	return nil
}

// RunOne plays one scenario on a fresh depot.
func RunOne(ctx context.Context, s Scenario, opts depot.Options, out io.Writer) (err error) {
	if opts.Boxes == 0 {
		opts.Boxes = 1
	}
	d, err := depot.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("starting the depot: %w", err)
	}
	defer func() {
		if cerr := d.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("stopping the depot: %w", cerr)
		}
	}()
	r := &Run{D: d, out: out}
	return s.Play(ctx, r)
}

// Run is a scenario being played: the depot and the step counter.
type Run struct {
	D    *depot.Depot
	out  io.Writer
	step int
}

// StepError is a step that did not happen.
type StepError struct {
	Step int
	What string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %d (%s): %v", e.Step, e.What, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// Do runs an action as the next step.
func (r *Run) Do(what string, act func() error) error {
	r.step++
	if err := act(); err != nil {
		return &StepError{Step: r.step, What: what, Err: err}
	}
	fmt.Fprintf(r.out, "  %2d. %s\n", r.step, what)
	return nil
}

// Await is the next step: wait until check says it happened (nil), for at
// most StepTimeout. check returns an error saying what it sees instead; the
// last one is the step's failure.
func (r *Run) Await(ctx context.Context, what string, check func() error) error {
	r.step++
	deadline := time.NewTimer(StepTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for {
		changed := r.D.Changed()
		err := check()
		if err == nil {
			fmt.Fprintf(r.out, "  %2d. %s\n", r.step, what)
			return nil
		}
		if _, ok := errors.AsType[*fatal](err); ok {
			// Something happened that must not: no wait mends it.
			return &StepError{Step: r.step, What: what, Err: err}
		}
		select {
		case <-ctx.Done():
			return &StepError{Step: r.step, What: what, Err: errors.Join(ctx.Err(), err)}
		case <-deadline.C:
			return &StepError{Step: r.step, What: what, Err: fmt.Errorf("not within %s: %w", StepTimeout, err)}
		case <-changed:
		case <-tick.C:
		}
	}
}
