package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sim/netcut"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// Fleetio's misbehaviour per fault: a few failed requests, which the
// bridge's client retries (honouring Retry-After for a 429).
const (
	fleetioFailures   = 3
	fleetioRetryAfter = 1 // seconds
)

// inject does p (and, for a fault that lasts, waits p.For and undoes it).
// It records the fault once injected; a fault that could not be injected
// (its box down already) is not counted.
func inject(ctx context.Context, d *depot.Depot, w *workload, j *Journal, p Planned) error {
	boxID := ""
	if p.Box >= 0 {
		boxID = d.Boxes()[p.Box].ID
	}
	at := time.Now()
	record := func() { j.AddFault(Fault{Kind: p.Kind, Box: boxID, At: at, For: p.For}) }
	hold := func() {
		select {
		case <-ctx.Done():
		case <-time.After(p.For):
		}
	}
	f := d.Fleetio()
	switch p.Kind {
	case FaultBoxKill:
		if p.MidCode {
			if pin, id := w.anyPIN(boxID); pin != "" {
				_ = w.press(ctx, boxID, pin, id)
			}
		}
		if err := d.SetPower(ctx, boxID, false); err != nil {
			return err
		}
		record()
		hold()
		return d.SetPower(context.WithoutCancel(ctx), boxID, true)
	case FaultNetworkCut:
		mode := netcut.Reset
		if p.Blackhole {
			mode = netcut.Blackhole
		}
		if err := d.SetNetwork(boxID, mode); err != nil {
			return err
		}
		record()
		hold()
		return d.SetNetwork(boxID, 0)
	case FaultClockSkew:
		if err := d.SetClock(ctx, boxID, boxsocket.ClockRequest{At: time.Now().Add(p.Skew)}); err != nil {
			return err
		}
		record()
		hold()
		// The box may have died meanwhile (killed); heal resets it then.
		_ = d.SetClock(context.WithoutCancel(ctx), boxID, boxsocket.ClockRequest{Reset: true})
		return nil
	case FaultDuplicateHook:
		f.DuplicateDeliveries(true)
		record()
		hold()
		f.DuplicateDeliveries(false)
	case FaultReorderHooks:
		f.PauseDeliveries()
		record()
		hold()
		f.ResumeDeliveries(fleetiotest.Reversed)
	case FaultFleetio429:
		f.SetRetryAfter(fleetioRetryAfter)
		f.FailNext(fleetioFailures, 429)
		record()
	case FaultFleetio500:
		f.FailNext(fleetioFailures, 500)
		record()
	case FaultBrokerRestart:
		record()
		return d.RestartBroker(ctx)
	case FaultBridgeKill:
		record()
		return d.KillBridge(ctx)
	default:
		return fmt.Errorf("unknown fault kind %q", p.Kind)
	}
	return nil
}

// heal undoes every fault that may still be on: every box powered, its
// network whole and its clock right, Fleetio's deliveries flowing, single
// and in order.
func heal(ctx context.Context, d *depot.Depot) error {
	f := d.Fleetio()
	f.DuplicateDeliveries(false)
	f.ResumeDeliveries(fleetiotest.InOrder)
	var errs []error
	for _, v := range d.Boxes() {
		if err := d.SetNetwork(v.ID, 0); err != nil {
			errs = append(errs, err)
		}
		if err := d.SetPower(ctx, v.ID, true); err != nil {
			errs = append(errs, err)
			continue
		}
		if v.ClockOffsetS != 0 {
			if err := d.SetClock(ctx, v.ID, boxsocket.ClockRequest{Reset: true}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if !d.BrokerUp() {
		if err := d.RestartBroker(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("healing: %v", errs)
	}
	return nil
}
