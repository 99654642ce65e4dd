package selftest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxhw"
	"github.com/smartbox-oss/smartbox/store"
)

// Bounds of the direct (stopped daemon) path.
const (
	// storeLockWait bounds the wait for the store's file lock: a store
	// held that long is held by a running smartboxd.
	storeLockWait = time.Second
	// hwInputs bounds the inputs kept unread (see the daemon's
	// sessionInputs: a person presses one key at a time).
	hwInputs = 64
)

// daemonStopped is the broker row's Cloud on the direct path.
const daemonStopped = "smartboxd stopped"

// RunHardware runs the test on a stopped box: it opens the hardware
// itself (boxhw: every lock de-energised on sight and at the end) and the
// store, records the session and each release in the outbox as the
// daemon would, and closes everything, locks first, whatever happened.
// ntp says whether NTP keeps the system clock synchronised (smartboxctl's
// adjtimex check, one definition with doctor's); nil: not known.
func RunHardware(ctx context.Context, cfg *boxconfig.Config, p Prompter, opts Options, hwOpts boxhw.Options, ntp func() (bool, error)) (_ *Report, err error) {
	opts.Via = "hardware"
	st, err := store.Open(filepath.Join(cfg.DataDir, "box.db"), store.Options{BoxID: cfg.BoxID, Slots: cfg.Hardware.Slots.Count,
		Timeout: storeLockWait, Logger: hwOpts.Log})
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			return nil, fmt.Errorf("%w: smartboxd runs: test through its socket (--socket PATH)", err)
		}
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	h, err := boxhw.Open(cfg, hwOpts)
	if err != nil {
		return nil, fmt.Errorf("opening the hardware: %w", err)
	}
	return runOn(ctx, cfg, st, h, ntp, p, opts)
}

// runOn runs the test on opened hardware and closes it (locks first).
func runOn(ctx context.Context, cfg *boxconfig.Config, st *store.Store, h *boxhw.Hardware, ntp func() (bool, error), p Prompter, opts Options) (_ *Report, err error) {
	b := &hwBoard{cfg: cfg, st: st, h: h, ntp: ntp, inputs: make(chan Input, hwInputs)}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		// Locks first, then the record of the end.
		err = errors.Join(err, h.Close(), b.audit(box.Event{Type: box.EventMaintenanceEnded, Detail: "selftest on the stopped box: ended"}))
	}()
	if err := b.audit(box.Event{Type: box.EventMaintenanceBegan, Detail: "selftest on the stopped box"}); err != nil {
		return nil, fmt.Errorf("recording the test's start: %w", err)
	}
	wg.Go(func() {
		_ = h.Keypad.Run(runCtx, func(k rune) { b.offer(Input{Kind: InputKey, Key: string(k)}) })
	})
	wg.Go(func() {
		_ = h.Reader.Run(runCtx, func(uid string) { b.offer(Input{Kind: InputFob, Fob: uid}) })
	})
	wg.Go(func() {
		_ = h.Slots.Watch(runCtx, func(n int, present bool) { b.offer(Input{Kind: InputSensor, Slot: n, Present: present}) })
	})
	return Run(runCtx, b, p, opts)
}

// hwBoard is a Board on hardware opened by this process.
type hwBoard struct {
	cfg    *boxconfig.Config
	st     *store.Store
	h      *boxhw.Hardware
	ntp    func() (bool, error) // nil: not known
	inputs chan Input
}

func (b *hwBoard) offer(in Input) {
	select {
	case b.inputs <- in:
	default: // nobody reads: dropped, as the daemon's session does
	}
}

// audit records events stamped now, untrusted if before the store's
// clock floor.
func (b *hwBoard) audit(evs ...box.Event) error {
	now := time.Now()
	floor, err := b.st.ClockFloor()
	if err != nil {
		return err
	}
	for i := range evs {
		evs[i].Time, evs[i].ClockUntrusted = now, now.Before(floor)
	}
	_, err = b.st.Commit(box.Change{Events: evs})
	return err
}

func (b *hwBoard) Slots(context.Context) ([]SlotInfo, error) {
	keys, err := b.st.Keys()
	if err != nil {
		return nil, fmt.Errorf("reading the keys: %w", err)
	}
	home := map[int]box.Key{}
	for _, k := range keys {
		home[k.Slot] = k
	}
	out := make([]SlotInfo, b.cfg.Hardware.Slots.Count)
	for i := range out {
		n := i + 1
		out[i] = SlotInfo{Slot: n, KeyID: home[n].ID, KeyName: home[n].Name}
		if b.h.Sim != nil {
			in := b.h.Sim.Slots.Occupied(n)
			out[i].Expected = &in
		}
	}
	return out, nil
}

func (b *hwBoard) Layout() []string { return b.cfg.Hardware.Keypad.Layout }

func (b *hwBoard) Release(_ context.Context, n int, d time.Duration) error {
	// Recorded first: a release the outbox cannot hold does not happen.
	if err := b.audit(box.Event{Type: box.EventSlotReleased, Slot: n, Purpose: box.PurposeSelftest, Detail: "selftest on the stopped box"}); err != nil {
		return fmt.Errorf("recording the release of slot %d: %w (not released)", n, err)
	}
	return b.h.Slots.Release(n, d)
}

func (b *hwBoard) Lock(_ context.Context, n int) error {
	if err := b.h.Slots.Lock(n); err != nil {
		return err
	}
	return b.audit(box.Event{Type: box.EventSlotRelocked, Slot: n, Purpose: box.PurposeSelftest, Detail: "selftest on the stopped box"})
}

func (b *hwBoard) Present(_ context.Context, n int) (bool, error) { return b.h.Slots.Present(n) }

func (b *hwBoard) Next(ctx context.Context, timeout time.Duration) (Input, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case in := <-b.inputs:
		return in, nil
	case <-t.C:
		return Input{}, nil
	case <-ctx.Done():
		return Input{}, ctx.Err()
	}
}

func (b *hwBoard) Checks(context.Context) (Checks, error) {
	now := time.Now()
	c := Checks{Clock: now, Cloud: daemonStopped, Simulated: b.h.Sim != nil}
	// The floor smartboxd last kept: the clock is trusted at or after it.
	floor, err := b.st.ClockFloor()
	if err != nil {
		return c, fmt.Errorf("reading the clock floor: %w", err)
	}
	c.ClockTrusted = !now.Before(floor)
	if !c.Simulated && b.ntp != nil {
		// An error reads as not synchronised: the row says to check NTP.
		c.ClockSynced, _ = b.ntp()
	}
	c.StoreErr = StoreCheck(b.st, b.cfg.BoxID)
	return c, nil
}

// StoreCheck is the store row's check, for the daemon's session and the
// direct path alike: bbolt's consistency check over the whole file, and
// the identity against the config's box id. "" when both pass.
func StoreCheck(st *store.Store, boxID string) string {
	if err := st.Verify(); err != nil {
		return err.Error() + ": restore the store from the cloud (reflash) or replace the SD card"
	}
	if id, err := st.Identity(); err != nil || id.BoxID != boxID {
		return fmt.Sprintf("the store is box %q's, the config says %q: wrong data directory or SD card", id.BoxID, boxID)
	}
	return ""
}

func (b *hwBoard) Probe(context.Context) (ProbeResult, error) {
	return ProbeResult{}, fmt.Errorf("%w: smartboxd is stopped (the probe goes through its cloud link)", ErrNotAvailable)
}
