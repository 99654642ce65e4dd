package selftest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
)

// RunSocket runs the test through a running smartboxd's maintenance
// session (opts.Via is set to "socket"), and ends the session whatever
// happens (the daemon's lease ends it too if this process is killed).
func RunSocket(ctx context.Context, c *boxsocket.Client, p Prompter, opts Options) (*Report, error) {
	opts.Via = "socket"
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	s, err := c.BeginSession(ctx)
	if err != nil {
		return nil, fmt.Errorf("beginning the self-test on %s: %w", c.Path(), err)
	}
	renewCtx, stopRenew := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		renewLease(renewCtx, s)
	}()
	b := &socketBoard{c: c, s: s, sim: st.Hardware == "sim"}
	rep, err := Run(ctx, b, p, opts)
	stopRenew()
	<-renewed
	if eerr := s.End(context.WithoutCancel(ctx)); eerr != nil {
		err = errors.Join(err, fmt.Errorf("ending the self-test session (its lease ends it anyway): %w", eerr))
	}
	return rep, err
}

// renewLease keeps the session's lease while the test waits for a person:
// three times a lease, so that one lost renewal does not end it.
func renewLease(ctx context.Context, s *boxsocket.Session) {
	every := time.Duration(s.Info.LeaseMS) * time.Millisecond / 3
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.Renew(ctx) // a failure shows on the test's next request
		}
	}
}

// socketBoard is a Board over a maintenance session.
type socketBoard struct {
	c   *boxsocket.Client
	s   *boxsocket.Session
	sim bool // the simulator: its slots tell where a key physically is
}

func (b *socketBoard) Slots(ctx context.Context) ([]SlotInfo, error) {
	slots, err := b.c.Slots(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]SlotInfo, len(slots))
	for i, s := range slots {
		out[i] = SlotInfo{Slot: s.Slot, KeyID: s.KeyID, KeyName: s.KeyName}
		if b.sim {
			in := s.KeyInSlot
			out[i].Expected = &in
		}
	}
	return out, nil
}

func (b *socketBoard) Layout() []string { return b.s.Info.Layout }

func (b *socketBoard) Release(ctx context.Context, n int, d time.Duration) error {
	return b.s.Release(ctx, n, d)
}

func (b *socketBoard) Lock(ctx context.Context, n int) error { return b.s.Lock(ctx, n) }

func (b *socketBoard) Present(ctx context.Context, n int) (bool, error) { return b.s.Present(ctx, n) }

func (b *socketBoard) Next(ctx context.Context, timeout time.Duration) (Input, error) {
	in, err := b.s.Next(ctx, timeout)
	return Input{Kind: InputKind(in.Kind), Key: in.Key, Fob: in.Fob, Slot: in.Slot, Present: in.Present}, err
}

func (b *socketBoard) Checks(ctx context.Context) (Checks, error) {
	c, err := b.s.Checks(ctx)
	if err != nil {
		return Checks{}, err
	}
	st := c.Status
	return Checks{Clock: st.Clock, ClockTrusted: st.ClockTrusted, ClockSynced: st.ClockSynced, Simulated: b.sim,
		StoreErr: c.StoreErr, Cloud: st.Cloud, Broker: st.Broker}, nil
}

func (b *socketBoard) Probe(ctx context.Context) (ProbeResult, error) {
	res, err := b.c.Probe(ctx)
	var pe *boxsocket.ProbeError
	switch {
	case errors.As(err, &pe) && pe.Reason == boxsocket.ProbeOfflineOnly:
		return ProbeResult{}, fmt.Errorf("%w: an offline box (no [cloud])", ErrNotAvailable)
	case boxsocket.IsStatus(err, http.StatusNotFound):
		return ProbeResult{}, fmt.Errorf("%w: this smartboxd has no probe route (update it)", ErrNotAvailable)
	case err != nil:
		return ProbeResult{}, err
	}
	return ProbeResult{RTT: time.Duration(res.RTTMS * float64(time.Millisecond)), KeyID: res.KeyID}, nil
}
