package main

import (
	"context"
	"log/slog"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
)

// systemd runs smartboxd as Type=notify with WatchdogSec (see
// dist/smartboxd.service): it waits for READY=1 before it counts the box as
// started, and kills and restarts the process when WATCHDOG=1 stops coming.
// Outside systemd (no NOTIFY_SOCKET) every message is a no-op.
//
// The watchdog is petted only when the controller's loop has just answered
// (Controller.Flush: a no-op queued behind every key press, fob and sensor
// change, which returns once the loop has run it), never by a bare ticker:
// a controller wedged in a handler must get the process killed, and the
// next start de-energises every lock before anything else (newDaemon).

// notifier speaks sd_notify for one run of the daemon.
type notifier struct {
	log *slog.Logger
	// interval is how often the controller is asked and, when it answers,
	// the watchdog petted: half of systemd's WATCHDOG_USEC (the usual
	// sd_watchdog_enabled advice), so that one late answer is not yet a
	// kill. Zero: no watchdog (not under systemd, or no WatchdogSec).
	interval time.Duration
}

// newNotifier reads systemd's environment. A malformed WATCHDOG_USEC is
// logged and the watchdog left off: systemd sets it, so only a person
// running smartboxd by hand can get it wrong, and refusing to start would
// not make the box safer.
func newNotifier(log *slog.Logger) *notifier {
	n := &notifier{log: log}
	wd, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("ignoring systemd's watchdog setting", "err", err)
	}
	n.interval = wd / 2
	return n
}

// send sends one state; a failure is logged, not fatal (the watchdog then
// restarts the box, which is what a box systemd cannot hear from needs).
func (n *notifier) send(state string) {
	if _, err := sdnotify.SdNotify(false, state); err != nil {
		n.log.Warn("telling systemd", "state", state, "err", err)
	}
}

// run sends READY=1 once flush (the controller's Flush) first returns, then
// WATCHDOG=1 each time a probe started every interval returns, and
// STOPPING=1 when ctx ends (the daemon is stopping). It starts no probe
// while one is unanswered: a wedged controller leaks one goroutine, not one
// per interval.
func (n *notifier) run(ctx context.Context, flush func()) {
	// Buffered: a probe that returns after run has (the controller's
	// Flush returns when it stops) never blocks.
	answered := make(chan struct{}, 1)
	probe := func() {
		go func() {
			flush()
			answered <- struct{}{}
		}()
	}
	probe()
	select {
	case <-ctx.Done():
		n.send(sdnotify.SdNotifyStopping)
		return
	case <-answered:
	}
	// "ready" is also the line that marks keypad ready for a person or a
	// benchmark reading the log: the keypad, reader and key sensor loops
	// were started before the controller, which has now recorded
	// box_started and handles input.
	n.log.Info("ready: the controller answers; keypad, reader and key sensors running", "watchdog_every", n.interval)
	n.send(sdnotify.SdNotifyReady)
	var tick <-chan time.Time
	if n.interval > 0 {
		t := time.NewTicker(n.interval)
		defer t.Stop()
		tick = t.C
	}
	waiting := false // a probe is unanswered
	since := time.Now()
	for {
		select {
		case <-ctx.Done():
			n.send(sdnotify.SdNotifyStopping)
			return
		case <-tick:
			if waiting {
				n.log.Error("the controller has not answered: not petting systemd's watchdog (it restarts smartboxd)",
					"waiting", time.Since(since).Round(time.Millisecond))
				continue
			}
			waiting, since = true, time.Now()
			probe()
		case <-answered:
			waiting = false
			n.send(sdnotify.SdNotifyWatchdog)
		}
	}
}
