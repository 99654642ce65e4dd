package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
)

// Bounds of a run, each phase stated once.
const (
	// ConnectTimeout bounds the wait, after the depot started, for every
	// box to be online and current (50 boxes on 2 cores).
	ConnectTimeout = 2 * time.Minute
	// HealTimeout bounds undoing the faults (boxes powered on, each
	// BoxStartTimeout at most, one at a time).
	HealTimeout = 5 * time.Minute
	// QuiesceTimeout bounds the wait for quiescence after the heal: the
	// bridge's Fleetio retries reach a minute (the depot's schedule), boxes'
	// reconnect back-off half of one.
	QuiesceTimeout = 3 * time.Minute
	// CheckTimeout bounds the end checks.
	CheckTimeout = 5 * time.Minute
	// pollEvery is the tick of the connect and quiesce waits.
	pollEvery = 250 * time.Millisecond
)

// Options configure a run.
type Options struct {
	Boxes    int           // real smartboxd processes (1..depot.MaxBoxes)
	Duration time.Duration // of the workload and faults; the heal and checks come after
	Seed     uint64        // the schedule's and the workload's choices
	Dir      string        // the depot's directory ("" a temporary one, removed)
	Logger   *slog.Logger

	// The binaries ("" beside the running executable, then $PATH).
	Smartboxd, Smartboxctl, SmartboxBridge string
}

// Run runs the installation under load and faults for o.Duration, heals,
// waits for quiescence and checks. An error means the run could not be
// done (the depot did not start...); breaches are in the Summary.
func Run(ctx context.Context, o Options) (Summary, error) {
	s := Summary{Seed: o.Seed, Boxes: o.Boxes, Duration: o.Duration, Faults: map[FaultKind]int{}}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, err := depot.Start(ctx, depot.Options{Dir: o.Dir, Boxes: o.Boxes, Smartboxd: o.Smartboxd, Smartboxctl: o.Smartboxctl,
		SmartboxBridge: o.SmartboxBridge, BridgeProcess: true, Logger: log})
	if err != nil {
		return s, fmt.Errorf("starting the depot: %w", err)
	}
	defer d.Close()
	if err := waitFor(ctx, d, ConnectTimeout, false); err != nil {
		return s, fmt.Errorf("the boxes did not all connect: %w", err)
	}
	base, err := TakeBaseline(ctx, d)
	if err != nil {
		return s, fmt.Errorf("the bridge's baseline: %w", err)
	}
	j := NewJournal()
	w, err := newWorkload(ctx, d, j, o.Duration, log)
	if err != nil {
		return s, err
	}
	mon := StartMonitor(ctx, d)
	defer mon.Stop()

	rctx, cancel := context.WithTimeout(ctx, o.Duration)
	var wg sync.WaitGroup
	wg.Go(func() { w.run(rctx, rand.New(rand.NewPCG(o.Seed, ^o.Seed)), o.Boxes) })
	began := time.Now()
	for _, p := range Schedule(o.Seed, o.Boxes, o.Duration) {
		select {
		case <-rctx.Done():
		case <-time.After(time.Until(began.Add(p.At))):
		}
		if rctx.Err() != nil {
			break
		}
		wg.Go(func() {
			if err := inject(rctx, d, w, j, p); err != nil {
				log.Info("fault not injected or not undone", "kind", p.Kind, "box", p.Box, "err", err)
			}
		})
	}
	<-rctx.Done()
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return s, ctx.Err()
	}

	hctx, hcancel := context.WithTimeout(ctx, HealTimeout)
	herr := heal(hctx, d)
	hcancel()
	if herr != nil {
		s.Breaches = append(s.Breaches, Breach{Check: "quiesce", Detail: herr.Error()})
	}
	if err := waitFor(ctx, d, QuiesceTimeout, true); err != nil {
		s.Breaches = append(s.Breaches, Breach{Check: "quiesce", Detail: err.Error()})
	}
	mon.Stop()
	fill(&s, j)
	cctx, ccancel := context.WithTimeout(ctx, CheckTimeout)
	defer ccancel()
	if err := Check(cctx, d, j, mon, base, &s); err != nil {
		return s, fmt.Errorf("checking: %w", err)
	}
	return s, nil
}

// fill copies the journal's counts into s.
func fill(s *Summary, j *Journal) {
	for _, f := range j.Faults() {
		s.Faults[f.Kind]++
	}
	s.Assignments = len(j.Assignments())
	s.Typed = len(j.TypedCodes())
	j.mu.Lock()
	s.Changes, s.Ends, s.Takes, s.Returns = j.changed, j.ended, j.takes, j.returns
	j.mu.Unlock()
}

// waitFor waits until every box runs, is online and current in the cloud
// (and, if quiet, its outbox empty, Fleetio's deliveries done and the
// bridge's queue empty), within bound; the error says what was not.
func waitFor(ctx context.Context, d *depot.Depot, bound time.Duration, quiet bool) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		why := notQuiet(ctx, d, quiet)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not quiescent within %s: %s", bound, why)
		case <-tick.C:
		}
	}
}

// notQuiet says what is not yet settled ("" when all is).
func notQuiet(ctx context.Context, d *depot.Depot, quiet bool) string {
	var boxes []adminapi.BoxInfo
	if err := d.Admin().Do(ctx, http.MethodGet, "/v1/boxes", nil, &boxes); err != nil {
		return "the bridge's admin API: " + err.Error()
	}
	info := map[string]adminapi.BoxInfo{}
	for _, b := range boxes {
		info[b.ID] = b
	}
	for _, v := range d.Boxes() {
		b := info[v.ID]
		switch {
		case v.Process != depot.ProcessRunning:
			return fmt.Sprintf("box %s: process %s", v.ID, v.Process)
		case b.Status == nil || !b.Status.Online:
			return fmt.Sprintf("box %s: not online in the cloud", v.ID)
		case b.Status.Revision != b.Revision:
			return fmt.Sprintf("box %s: holds revision %d, the cloud's is %d", v.ID, b.Status.Revision, b.Revision)
		case quiet && b.Status.OutboxDepth != 0:
			return fmt.Sprintf("box %s: outbox holds %d events", v.ID, b.Status.OutboxDepth)
		}
		if quiet && v.State != nil {
			// The workload's last codes may have opened slots just before
			// it stopped: quiet waits for them to relock (the Monitor,
			// still running, calls a lock energised past its max release
			// time a breach), so the checks see the box at rest.
			for _, sl := range v.State.Slots {
				if sl.Released {
					return fmt.Sprintf("box %s: slot %d's lock energised", v.ID, sl.Slot)
				}
			}
		}
	}
	if !quiet {
		return ""
	}
	fctx, cancel := context.WithTimeout(ctx, pollEvery)
	err := d.Fleetio().Flush(fctx)
	cancel()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return "Fleetio's deliveries: " + err.Error()
	} else if err != nil {
		return "Fleetio's deliveries still pending"
	}
	return bridgeQueue(ctx, d)
}

// bridgeQueue says whether the bridge's webhook queue is empty, from its
// admin /healthz ("queue_depth N").
func bridgeQueue(ctx context.Context, d *depot.Depot) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.Admin().Base()+"/healthz", nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "the bridge's /healthz: " + err.Error()
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	sb.Write(buf[:n])
	if !strings.Contains(sb.String(), "queue_depth 0\n") {
		return "the bridge's webhook queue is not empty"
	}
	return ""
}
