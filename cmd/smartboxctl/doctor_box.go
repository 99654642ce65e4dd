package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/ntpsync"
)

// Bounds of the doctor's look at a running daemon.
const (
	// socketAnswerWait bounds the status request: the socket is local, a
	// daemon that takes longer is stuck, which is the finding.
	socketAnswerWait = 3 * time.Second
	// outboxStaleAfter is how long events may wait in the outbox without
	// an ack before the outbox counts as not draining: three times the
	// link's longest wait for an ack (link.DefaultMaxAckWait, 5 minutes).
	outboxStaleAfter = 15 * time.Minute
)

// checkDaemon asks smartboxd's socket for its status.
func (d *doctor) checkDaemon(ctx context.Context) {
	fi, err := os.Lstat(d.socketPath)
	if errors.Is(err, fs.ErrNotExist) {
		d.problem("daemon", fmt.Sprintf("smartboxd is not running: no socket at %s", d.socketPath),
			"start it ('systemctl start smartboxd'; 'journalctl -u smartboxd' says why it stopped), or pass --socket PATH if it serves elsewhere")
		return
	}
	if err == nil && fi.Mode().Type() != fs.ModeSocket {
		d.problem("daemon", fmt.Sprintf("%s is not a socket (%s)", d.socketPath, fi.Mode().Type()),
			"remove it and restart smartboxd, or pass --socket PATH")
		return
	}
	c := boxsocket.Dial(d.socketPath)
	sctx, cancel := context.WithTimeout(ctx, socketAnswerWait)
	defer cancel()
	st, err := c.Status(sctx)
	switch {
	case err == nil:
		d.client, d.status = c, &st
		d.ok("daemon", "smartboxd %s answers on %s: box %s, up %s", st.Software, d.socketPath, st.BoxID,
			(time.Duration(st.UptimeS) * time.Second).String())
		if d.cfg != nil && st.BoxID != d.cfg.BoxID {
			d.problem("daemon", fmt.Sprintf("the running smartboxd is box %q but %s says %q", st.BoxID, d.configPath, d.cfg.BoxID),
				"check --config and --socket name the same box; restart smartboxd if the config changed")
		}
		return
	case errors.Is(err, syscall.ECONNREFUSED):
		d.problem("daemon", fmt.Sprintf("a socket file is at %s but nothing answers: smartboxd died without removing it", d.socketPath),
			"restart smartboxd ('systemctl restart smartboxd'; 'journalctl -u smartboxd' says why it stopped); it removes a stale socket at start")
	case errors.Is(err, fs.ErrPermission):
		d.problem("daemon", fmt.Sprintf("no permission to connect to %s", d.socketPath),
			"run doctor as root, or as a member of the socket's group (smartbox)")
	case errors.Is(err, context.DeadlineExceeded):
		d.problem("daemon", fmt.Sprintf("smartboxd's socket %s accepts but does not answer within %s: the daemon is stuck", d.socketPath, socketAnswerWait),
			"restart smartboxd ('systemctl restart smartboxd') and report it with 'journalctl -u smartboxd'")
	default:
		d.problem("daemon", fmt.Sprintf("smartboxd's socket %s: %v", d.socketPath, err),
			"restart smartboxd ('systemctl restart smartboxd')")
	}
	c.Close()
}

// checkSigning checks that what the cloud signs verifies with the box's
// keys: the probe through the running daemon, else the last refused sync
// it reports.
func (d *doctor) checkSigning(ctx context.Context) {
	if d.cfg != nil && d.cfg.Cloud == nil {
		d.skipped("signing", "offline-only box")
		return
	}
	if d.status == nil {
		d.skipped("signing", "smartboxd is not running: the signed round trip goes through it")
		return
	}
	if d.status.Cloud != "connected" {
		d.refusedSync("signing", "the box is not connected to the broker, so no round trip")
		return
	}
	res, err := d.client.Probe(ctx)
	var pe *boxsocket.ProbeError
	switch {
	case err == nil:
		d.ok("signing", "a signed round trip to the cloud verified with the box's key %q in %.0f ms", res.KeyID, res.RTTMS)
	case errors.As(err, &pe) && pe.Reason == boxsocket.ProbeBadSignature:
		d.problem("signing", "the bridge's signing key does not match the box's: "+pe.Message,
			"provision the box again with the bridge's current signing key ('smartbox-bridge signing-key' prints it; 'smartboxctl provision'), then restart smartboxd: until then it applies no grant the bridge sends")
	case errors.As(err, &pe) && pe.Reason == boxsocket.ProbeWrongBox:
		d.problem("signing", "the bridge signs for another identity of this box: "+pe.Message,
			"register this store's sync key with the bridge again ('smartboxctl identity' prints it; re-flashing a card needs it), then restart smartboxd")
	case errors.As(err, &pe) && pe.Reason == boxsocket.ProbeTimedOut:
		d.problem("signing", "the cloud did not answer a signed round trip: "+pe.Message,
			"check the bridge runs and is connected to the same broker ('smartbox-bridge' logs); a bridge older than this box does not answer probes")
	case boxsocket.IsStatus(err, http.StatusNotFound):
		d.refusedSync("signing", "this smartboxd is too old for the probe")
	default:
		d.problem("signing", fmt.Sprintf("the signed round trip failed: %v", err), "run doctor again; if it persists, restart smartboxd")
	}
}

// refusedSync reports Status.SyncRefused when the probe cannot run.
func (d *doctor) refusedSync(check, why string) {
	st := d.status
	if st.SyncRefused == "" {
		d.skipped(check, "%s; no refused sync since smartboxd started", why)
		return
	}
	d.problem(check, fmt.Sprintf("the box refused a message from the cloud at %s: %s", st.SyncRefusedAt.Format(time.RFC3339), st.SyncRefused),
		"if it says bad signature or unknown signing key: provision the box with the bridge's current signing key; if another identity: register the box with the bridge again")
}

// checkClock checks the box clock against its floor, and NTP.
func (d *doctor) checkClock() {
	if st := d.status; st != nil {
		if !st.ClockTrusted {
			d.problem("clock", fmt.Sprintf("the box clock says %s, before its floor %s (the build time, the config's clock.floor or the last time the box saw): it is not trusted",
				st.Clock.Format(time.RFC3339), st.ClockFloor.Format(time.RFC3339)),
				"set the time (NTP: check the network and 'timedatectl'; a board without a battery-backed RTC starts in the past); windowed grants follow clock.untrusted until then")
		} else {
			d.ok("clock", "the box clock %s is trusted (floor %s)", st.Clock.Format(time.RFC3339), st.ClockFloor.Format(time.RFC3339))
		}
		if st.Hardware == boxconfig.ProfileSim {
			d.skipped("ntp", "the sim profile's clock is its own")
		} else {
			d.ntpFinding(st.ClockSynced)
		}
		return
	}
	// The daemon is stopped: the system clock against what is known here.
	now := time.Now()
	floor, from := buildTimeOfThisTool()
	if d.cfg != nil && d.cfg.Clock.Floor.After(floor) {
		floor, from = d.cfg.Clock.Floor, "the config's clock.floor"
	}
	if floor.IsZero() {
		d.skipped("clock", "smartboxd is not running and this build has no build time to compare the system clock (%s) with", now.UTC().Format(time.RFC3339))
	} else if now.Before(floor) {
		d.problem("clock", fmt.Sprintf("the system clock says %s, before %s (%s): smartboxd will not trust it", now.UTC().Format(time.RFC3339),
			floor.UTC().Format(time.RFC3339), from),
			"set the time (NTP: check the network and 'timedatectl'; a board without a battery-backed RTC starts in the past)")
	} else {
		d.ok("clock", "the system clock %s is after %s (%s)", now.UTC().Format(time.RFC3339), floor.UTC().Format(time.RFC3339), from)
	}
	if synced, err := ntpsync.Synced(); err != nil {
		d.skipped("ntp", "%v", err)
	} else {
		d.ntpFinding(synced)
	}
}

func (d *doctor) ntpFinding(synced bool) {
	if synced {
		d.ok("ntp", "the system clock is synchronised (NTP)")
		return
	}
	d.problem("ntp", "the system clock is not synchronised by NTP",
		"check the network and the time service ('timedatectl status', 'systemctl status systemd-timesyncd'); the box needs its clock for booking windows")
}

// buildTimeOfThisTool is the commit time go build stamped into smartboxctl
// (smartboxd's build is normally the same commit), else the zero time.
func buildTimeOfThisTool() (time.Time, string) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t, "this build's commit time"
				}
			}
		}
	}
	return time.Time{}, "no build time known"
}

// checkOutbox says whether events leave the outbox.
func (d *doctor) checkOutbox() {
	st := d.status
	switch {
	case d.cfg != nil && d.cfg.Cloud == nil:
		d.skipped("outbox", "offline-only box: events stay in the outbox")
		return
	case st == nil:
		d.skipped("outbox", "smartboxd is not running")
		return
	case st.Outbox == 0:
		d.ok("outbox", "empty: every event reached the cloud")
		return
	}
	now := time.Now()
	up := time.Duration(st.UptimeS) * time.Second
	switch {
	case st.Cloud != "connected" && up >= outboxStaleAfter:
		d.problem("outbox", fmt.Sprintf("%d events wait in the outbox and the box has not been connected to the cloud (%s)", st.Outbox, st.Cloud),
			"fix the broker connection (see the broker finding); the events go once it is back")
	case !st.LastAck.IsZero() && now.Sub(st.LastAck) >= outboxStaleAfter:
		d.problem("outbox", fmt.Sprintf("%d events wait in the outbox and the cloud last acknowledged events %s ago (at %s)", st.Outbox,
			now.Sub(st.LastAck).Round(time.Second), st.LastAck.Format(time.RFC3339)),
			"check the bridge runs and takes this box's events (its log: throttled, refused); the box keeps them until acknowledged")
	case st.LastAck.IsZero() && up >= outboxStaleAfter:
		d.problem("outbox", fmt.Sprintf("%d events wait in the outbox and the cloud acknowledged none in the %s smartboxd has run", st.Outbox, up.Round(time.Second)),
			"check the bridge runs and takes this box's events (its log: throttled, refused, box not registered)")
	case st.Cloud != "connected":
		d.ok("outbox", "%d events wait for the connection (smartboxd up %s, %q)", st.Outbox, up, st.Cloud)
	default:
		d.ok("outbox", "%d events wait, draining (last ack %s)", st.Outbox, ackAge(st.LastAck, now))
	}
}

func ackAge(t, now time.Time) string {
	if t.IsZero() {
		return "none yet"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}
