package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/link"
)

// How long a stopping box waits for the cloud to acknowledge its last events
// (box_stopped above all) before it disconnects anyway, and for the link to
// publish its offline status and close. Bounded so that systemd's stop
// timeout (90 s by default) is never the thing that ends smartboxd; the
// events that miss the cut stay in the outbox and go at the next start.
const (
	linkDrainWait = 3 * time.Second
	linkStopWait  = 10 * time.Second
	linkDrainPoll = 25 * time.Millisecond
)

// kickOnCommit is the store as the controller sees it: every successful
// commit tells the link that the outbox has new events. Kick never blocks,
// so a PIN check never waits on the network.
// It also remembers the events for the console (see recentEvents).
// And it tells the socket's watchers (changed) that there is news.
type kickOnCommit struct {
	box.Store
	kick    func()
	recent  *recentEvents
	changed func()
}

func (k kickOnCommit) Commit(c box.Change) ([]box.Event, error) {
	evs, err := k.Store.Commit(c)
	if err == nil && len(evs) > 0 {
		k.recent.add(evs)
		k.kick()
		if k.changed != nil {
			k.changed()
		}
	}
	return evs, err
}

// kickLink tells the link (if any) to drain now.
func (d *daemon) kickLink() {
	if d.link != nil {
		d.link.Kick()
	}
}

// newLink makes the sync link when the config has [cloud]. The box must
// have been provisioned (the cloud's signing keys in the store): without
// them it could verify nothing the cloud sends.
func (d *daemon) newLink(creds boxconfig.Credentials, opts daemonOptions) error {
	cc := d.cfg.Cloud
	if cc == nil {
		d.log.Info("no [cloud] in the config: this box is offline-only and keeps the records it has")
		return nil
	}
	prov, err := d.store.Provision()
	if errors.Is(err, store.ErrNotProvisioned) {
		return fmt.Errorf("%s: [cloud] is set but the store %s was never provisioned with the cloud's signing key: "+
			"run 'smartboxctl provision --data %s --cloud-key KID=BASE64' (stop smartboxd first), or remove [cloud] for an offline box",
			d.cfg.Name(), d.store.Path(), d.cfg.DataDir)
	}
	if err != nil {
		return fmt.Errorf("reading the box's provisioning: %w", err)
	}
	if prov.BrokerURL != "" && prov.BrokerURL != cc.BrokerURL {
		// Informational only (the config decides), but worth a line: a
		// box pointed at the wrong broker looks merely offline.
		d.log.Warn("the config's broker differs from the one the box was provisioned for",
			"config", cc.BrokerURL, "provisioned", prov.BrokerURL)
	}
	d.link, err = link.New(link.Options{
		BoxID:     d.cfg.BoxID,
		BrokerURL: cc.BrokerURL,
		Username:  cc.Username,
		Password:  creds.Password,
		TLS:       creds.TLS,
		Software:  opts.Software,
		Store:     d.store,
		Box:       d.input, // refuses a remote release during a self-test; a keypad restore goes through
		// A clock before the floor is not trusted, so a release_slot or
		// restore_keypad command's expiry cannot be checked. The link sees the floor as it
		// rises while the box runs.
		ClockTrusted: d.floor.Trusted,
		Now:          d.clock.Now,
		Logger:       d.log.With("part", "sync"),
		// paho's callbacks and the link's own goroutines are not under
		// startLink's failSecure: a panic there must de-energise the
		// locks too before it ends the process.
		Guard: d.failSecure,
		// Connected, revision and outbox as the socket's watchers see them.
		Changed: d.linkChanged,
	})
	if err != nil {
		return fmt.Errorf("starting the sync link: %w", err)
	}
	last, err := d.store.LastSeq()
	if err != nil {
		return fmt.Errorf("reading the last event's sequence number: %w", err)
	}
	d.linkSeen.Store(last)
	return nil
}

// linkChanged runs on the link's worker after it handled something. The
// events the link committed itself (records_applied, sync_refused) do not
// pass the controller's kickOnCommit; they are still in the outbox now (the
// worker drains only after this returns), so they are remembered here,
// before the cloud's ack could take them out of the outbox unseen by the
// console and the socket's watchers. One bbolt read, no wait.
func (d *daemon) linkChanged() {
	evs, err := d.store.Events(d.linkSeen.Load(), recentLimit)
	if err != nil {
		d.log.Warn("reading the events the link committed", "err", err)
	} else if n := len(evs); n > 0 {
		d.recent.merge(evs)
		d.linkSeen.Store(evs[n-1].Seq)
	}
	d.changes.Notify()
}

// startLink runs the link (if any) until the returned stop is called. The
// link's context is not ctx: at shutdown the controller stops first (and
// records box_stopped), then stop gives the link a moment to deliver that.
// A link that ends with an error leaves the box running offline: the keypad
// and the slots matter more than the sync, and the outbox keeps the events.
func (d *daemon) startLink(ctx context.Context) (stop func()) {
	if d.link == nil {
		return func() {}
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go d.failSecure(func() {
		defer close(done)
		if err := d.link.Run(lctx); err != nil {
			d.log.Error("sync link stopped; the box carries on offline", "err", err)
		}
	})
	return func() {
		d.drainLink()
		cancel()
		select {
		case <-done:
		case <-time.After(linkStopWait):
			d.log.Warn("sync link did not stop in time", "waited", linkStopWait)
		}
	}
}

// drainLink waits, while the link is connected and at most linkDrainWait,
// for the outbox to empty.
func (d *daemon) drainLink() {
	d.link.Kick()
	deadline := time.Now().Add(linkDrainWait)
	for d.link.Connected() && time.Now().Before(deadline) {
		n, err := d.store.OutboxDepth()
		if err != nil || n == 0 {
			return
		}
		time.Sleep(linkDrainPoll)
	}
	if n, err := d.store.OutboxDepth(); err == nil && n > 0 {
		d.log.Info("stopping with events not yet acknowledged by the cloud; they go at the next start", "outbox", n)
	}
}

// syncStatus is the link's state in words for the console.
type syncStatus struct {
	Cloud     string // "offline-only", "connected", "not connected"
	Broker    string
	Revision  uint64
	Outbox    int
	LastSeq   uint64
	CloudKeys int
}

func (d *daemon) syncStatus() (syncStatus, error) {
	var st syncStatus
	var err error
	switch {
	case d.link == nil:
		st.Cloud = "offline-only (no [cloud] in the config)"
	case d.link.Connected():
		st.Cloud, st.Broker = "connected", d.cfg.Cloud.BrokerURL
	default:
		st.Cloud, st.Broker = "not connected (retrying)", d.cfg.Cloud.BrokerURL
	}
	if st.Revision, err = d.store.Revision(); err != nil {
		return st, err
	}
	if st.Outbox, err = d.store.OutboxDepth(); err != nil {
		return st, err
	}
	if st.LastSeq, err = d.store.LastSeq(); err != nil {
		return st, err
	}
	if p, err := d.store.Provision(); err == nil {
		st.CloudKeys = len(p.CloudKeys)
	}
	return st, nil
}
