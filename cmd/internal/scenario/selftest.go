package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/selftest"
)

// The faults the self-test story injects, and the rows they must fail.
const (
	jammedSlot     = 3
	deadSensorSlot = 5
)

// simNotAvailable are the rows the simulator cannot make: its clock is its
// own, not NTP's.
var simNotAvailable = map[string]bool{"clock NTP": true}

// playSelftest: a technician runs `smartboxctl selftest` on a box with a
// jammed lock and a dead key sensor; the two rows fail, every other
// passes, the exit status is 1, and the box is left locked with its keys
// home.
func playSelftest(ctx context.Context, r *Run) error {
	yes := true
	if err := r.Do(fmt.Sprintf("slot %d's latch jams", jammedSlot), func() error {
		return r.D.SetSlotFault(ctx, boxA, jammedSlot, boxsocket.SlotFault{Jammed: &yes})
	}); err != nil {
		return err
	}
	if err := r.Do(fmt.Sprintf("slot %d's key sensor dies", deadSensorSlot), func() error {
		return r.D.SetSlotFault(ctx, boxA, deadSensorSlot, boxsocket.SlotFault{SensorDead: &yes})
	}); err != nil {
		return err
	}
	// The broker and signed round-trip rows need the box online.
	if err := r.Await(ctx, "the box is connected to the bridge", r.boxStatus(boxA, func(s boxsocket.Status) error {
		if s.Cloud != "connected" {
			return fmt.Errorf("the box says %q", s.Cloud)
		}
		return nil
	})); err != nil {
		return err
	}
	var run *depot.SelftestRun
	if err := r.Do("the technician runs smartboxctl selftest --yes --json, doing what it asks at the box", func() error {
		var err error
		run, err = r.D.Selftest(ctx, boxA)
		return err
	}); err != nil {
		return err
	}
	if err := r.Do("the jammed lock and the dead sensor fail, every other row passes, exit status 1", func() error {
		return checkSelftest(run)
	}); err != nil {
		return err
	}
	return r.Await(ctx, "every slot is locked again and every key home", func() error {
		v, err := r.view(boxA)
		if err != nil {
			return err
		}
		if v.State == nil {
			return errors.New("the box has sent no state")
		}
		for _, s := range v.State.Slots {
			switch {
			case s.Released:
				return fmt.Errorf("slot %d is still released", s.Slot)
			case !s.KeyInSlot:
				return fmt.Errorf("slot %d's key is not in it", s.Slot)
			}
		}
		return nil
	})
}

// checkSelftest says what in the run is not what the faults make.
func checkSelftest(run *depot.SelftestRun) error {
	rep := run.Report
	if run.ExitCode != 1 {
		return fmt.Errorf("exit status %d, want 1 (a row failed)", run.ExitCode)
	}
	if rep.Error != "" {
		return fmt.Errorf("the test stopped before its end: %s", rep.Error)
	}
	if rep.Via != "socket" {
		return fmt.Errorf("ran via %q, want the running daemon's socket", rep.Via)
	}
	want := map[string]selftest.Result{
		fmt.Sprintf("slot %d lock", jammedSlot):       selftest.Fail,
		fmt.Sprintf("slot %d sensor", deadSensorSlot): selftest.Fail,
	}
	var wrong []string
	seen := map[string]bool{}
	for _, row := range rep.Rows {
		seen[row.Name] = true
		w, ok := want[row.Name]
		switch {
		case ok:
		case simNotAvailable[row.Name]:
			w = selftest.NotAvailable
		default:
			w = selftest.Pass
		}
		if row.Result != w {
			wrong = append(wrong, fmt.Sprintf("%s: %s (%s), want %s", row.Name, row.Result, row.Detail, w))
		}
	}
	for name := range want {
		if !seen[name] {
			wrong = append(wrong, "no row "+name)
		}
	}
	// Every group ran: 12 sensors, 12 locks, 12 keypad keys, the
	// reader, two clock rows, the store, the broker, the round trip.
	if n, wantN := len(rep.Rows), 3*depot.SlotsPerBox+6; n != wantN {
		wrong = append(wrong, fmt.Sprintf("%d rows, want %d", n, wantN))
	}
	if len(wrong) > 0 {
		return errors.New(strings.Join(wrong, "; "))
	}
	return nil
}
