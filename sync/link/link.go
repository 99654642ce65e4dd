package link

import (
	"context"
	"crypto/ecdh"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Releaser runs the signed cloud commands that change the box: it opens a
// slot (release_slot) and gives a closed keypad its guess budget back
// (restore_keypad). box.Controller implements it.
type Releaser interface {
	RemoteRelease(slot int, by, reason, commandID string) error
	RestoreKeypad(by, reason, commandID string) error
}

var _ Releaser = (*box.Controller)(nil)

// Defaults for Options left zero, and the protocol's fixed periods.
const (
	DefaultDrainBatch = 500              // events per EventBatch (sync/README.md: at most 500)
	DefaultAckTimeout = 10 * time.Second // resend an unacked event batch after this
	// DefaultMaxAckWait caps the growing wait for an ack (see AckWait): a
	// box the cloud throttles retries every five minutes at worst, each try
	// storing what the cloud's byte budget earned meanwhile (about 85 KB at
	// the default 1 MiB an hour), and is never more than five minutes late
	// once the cloud takes its events again.
	DefaultMaxAckWait = 5 * time.Minute
	// DefaultMaxReconnectInterval caps paho's reconnect back-off: long
	// enough that a thousand boxes do not hammer a broker coming back, short
	// enough that a box is back within half a minute of it.
	DefaultMaxReconnectInterval = 30 * time.Second

	statusEvery = 5 * time.Minute  // retained status at least this often
	syncEvery   = 15 * time.Minute // SyncRequest as a safety net
)

// Options configure a Link.
type Options struct {
	BoxID     string
	BrokerURL string // tcp://host:1883, or ssl://host:8883 for TLS
	// Username and Password for password auth (username is normally the
	// box id); or a client certificate in TLS.
	Username, Password string
	TLS                *tls.Config // server CA (RootCAs) and optional client certificate
	Software           string      // version for the status
	Store              *store.Store
	Box                Releaser // for release_slot and restore_keypad commands; nil refuses them
	// ClockTrusted says whether the box clock can be believed (a box whose
	// clock is not trusted refuses release_slot and restore_keypad: it
	// cannot check expiry).
	// nil: always trusted.
	ClockTrusted func() bool
	Now          func() time.Time // box clock (time.Now if nil)
	DrainBatch   int              // events per EventBatch (DefaultDrainBatch)
	AckTimeout   time.Duration    // resend after this without an ack (DefaultAckTimeout)
	// MaxAckWait caps the wait for an ack, which doubles with each batch
	// in a row that got none (DefaultMaxAckWait; at least AckTimeout).
	MaxAckWait time.Duration
	// MaxReconnectInterval caps the reconnect back-off
	// (DefaultMaxReconnectInterval).
	MaxReconnectInterval time.Duration
	Logger               *slog.Logger
	// Guard runs each callback paho calls on its own goroutines (message,
	// connect, connection lost, reconnecting) and each goroutine the link
	// starts, as Guard(f). A panic there ends the process without the
	// caller's defers: smartboxd's Guard de-energises every lock first
	// (its failSecure) and lets the panic go on. nil: f is called as is.
	Guard func(f func())
	// Changed, if set, is called on the link's worker after it has handled
	// something from the broker: connected (and subscribed), connection
	// lost, a records batch (applied or refused), an events ack, a command.
	// It says "look again" (Connected, the store's revision and outbox may
	// differ), carries nothing, and must not block. It runs before the
	// worker drains again, so events the link committed while handling are
	// still in the outbox then. smartboxd's local socket uses it to push a
	// fresh status (and those events) to its watchers.
	Changed func()
}

// Link is the box's side of sync. Make it with New and run it with Run.
type Link struct {
	// immutable
	opts     Options
	log      *slog.Logger
	st       *store.Store
	verifier wire.Verifier
	key      *ecdh.PrivateKey
	topic    func(leaf string) string
	// now is the worker's clock for its waits (acks, answers, chunks):
	// time.Now; a test steps it.
	now func() time.Time

	// shared with paho's goroutines
	in        *inbox
	kick      chan struct{}
	probes    *probeWaiters
	probeSend chan string // nonces for the worker to send (probe.go)
	connected atomic.Bool
	running   atomic.Bool
	state     syncState // what the cloud last said (state.go)

	// worker state (the Run goroutine only)
	client     mqtt.Client
	w          workerState
	refusals   *limiter
	lastStatus time.Time
	lastSync   time.Time
}

// New checks opts and reads the box's sync identity and provision from the
// store. A box that was never provisioned (no cloud key) cannot verify
// anything and is refused here with a clear error.
func New(opts Options) (*Link, error) {
	if !box.ValidID(opts.BoxID) {
		return nil, fmt.Errorf("link: box id %q: want 1-128 letters, digits or ._:@-", opts.BoxID)
	}
	if opts.Store == nil {
		return nil, errors.New("link: Options.Store is nil")
	}
	if id, _ := opts.Store.Identity(); id.BoxID != opts.BoxID {
		return nil, fmt.Errorf("link: store %s belongs to box %q, not %q", opts.Store.Path(), id.BoxID, opts.BoxID)
	}
	switch {
	case opts.BrokerURL == "":
		return nil, errors.New("link: Options.BrokerURL is empty")
	case !strings.Contains(opts.BrokerURL, "://"):
		return nil, fmt.Errorf("link: broker URL %q: want scheme://host:port (tcp, ssl, tls, mqtt, mqtts)", opts.BrokerURL)
	}
	if opts.DrainBatch <= 0 {
		opts.DrainBatch = DefaultDrainBatch
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.MaxAckWait <= 0 {
		opts.MaxAckWait = DefaultMaxAckWait
	}
	opts.MaxAckWait = max(opts.MaxAckWait, opts.AckTimeout)
	if opts.MaxReconnectInterval <= 0 {
		opts.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClockTrusted == nil {
		opts.ClockTrusted = func() bool { return true }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	prov, err := opts.Store.Provision()
	if err != nil {
		return nil, fmt.Errorf("link: %w (provision the box with the cloud's public key first)", err)
	}
	key, err := opts.Store.SyncKey()
	if err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	l := &Link{
		opts:     opts,
		log:      opts.Logger.With("box", opts.BoxID),
		st:       opts.Store,
		verifier: wire.Verifier{Keys: prov.CloudKeys, BoxKey: key.PublicKey().Bytes()},
		key:      key,
		topic:    func(leaf string) string { return wire.Topic(opts.BoxID, leaf) },
		now:      time.Now,
		in:       newInbox(),
		kick:     make(chan struct{}, 1),
		refusals: newLimiter(refusalBurst, refusalEvery),
	}
	l.probes, l.probeSend = newProbeWaiters(), make(chan string, maxProbes) // probe.go
	return l, nil
}

// Kick says the outbox has new events: the link drains now instead of at
// its next poll. It never blocks.
func (l *Link) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Connected reports whether the link is connected to the broker now and
// subscribed to its topics.
func (l *Link) Connected() bool { return l.connected.Load() }

// Run connects (and keeps reconnecting) and syncs until ctx is done; then it
// publishes an offline status and disconnects. Call it once.
func (l *Link) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("link: Run called twice")
	}
	willMsg, err := l.statusMessage(false)
	if err != nil {
		return err
	}
	o := mqtt.NewClientOptions().
		AddBroker(l.opts.BrokerURL).
		SetClientID(l.opts.BoxID).
		// MQTT 3.1.1 only: by default paho retries a refused connect as
		// MQTT 3.1, which the broker counts as a second failed login (its
		// back-off allows a few, sync/broker doc.go).
		SetProtocolVersion(4).
		SetCleanSession(false). // the broker keeps our subscriptions and queues QoS 1 while away
		SetStore(NewMemoryStore()).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true). // a box that boots before its network keeps trying
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(l.opts.MaxReconnectInterval).
		SetKeepAlive(30*time.Second).
		SetPingTimeout(10*time.Second).
		SetConnectTimeout(10*time.Second).
		SetWriteTimeout(10*time.Second). // a Publish on a stuck socket must not stall the worker
		SetBinaryWill(l.topic(wire.LeafStatus), willMsg, 1, true).
		// Set before Connect: with a persistent session the broker sends what
		// it queued for us right after CONNACK, before any Subscribe.
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			l.guard(func() { l.in.push(item{topic: m.Topic(), payload: m.Payload()}) })
		}).
		SetOnConnectHandler(func(mqtt.Client) {
			l.guard(func() { l.in.push(item{event: evConnected}) }) // Connected turns true once subscribed
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			l.guard(func() {
				l.connected.Store(false)
				l.log.Warn("sync: connection lost", "err", err)
				l.in.push(item{event: evLost})
			})
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			l.guard(func() { l.log.Debug("sync: reconnecting", "broker", l.opts.BrokerURL) })
		})
	if l.opts.Username != "" {
		o.SetUsername(l.opts.Username).SetPassword(l.opts.Password)
	}
	if l.opts.TLS != nil {
		o.SetTLSConfig(l.opts.TLS)
	}
	l.client = mqtt.NewClient(o)
	l.log.Info("sync: connecting", "broker", l.opts.BrokerURL)
	connTok := l.client.Connect() // with ConnectRetry it completes only once connected
	go l.guard(func() {
		<-connTok.Done()
		if err := connTok.Error(); err != nil {
			l.log.Error("sync: connect", "broker", l.opts.BrokerURL, "err", err)
		}
	})

	l.work(ctx)

	if l.client.IsConnectionOpen() {
		if msg, err := l.statusMessage(false); err == nil {
			tok := l.client.Publish(l.topic(wire.LeafStatus), 1, true, msg)
			tok.WaitTimeout(2 * time.Second)
		}
	}
	l.client.Disconnect(250)
	l.connected.Store(false)
	return nil
}

// publish sends a QoS 1 message without waiting: end-to-end acks and the
// revision handshake repair whatever does not arrive, so the worker never
// stalls on a PUBACK. Failures are logged when they come.
func (l *Link) publish(leaf string, retained bool, payload []byte) {
	if l.client == nil {
		return // not running
	}
	tok := l.client.Publish(l.topic(leaf), 1, retained, payload)
	go l.guard(func() {
		if tok.WaitTimeout(30*time.Second) && tok.Error() != nil {
			l.log.Debug("sync: publish", "leaf", leaf, "err", tok.Error())
		}
	})
}

// changed calls Options.Changed, if set.
func (l *Link) changed() {
	if l.opts.Changed != nil {
		l.opts.Changed()
	}
}

// guard runs f under Options.Guard: f runs on a goroutine the caller's
// Run does not cover.
func (l *Link) guard(f func()) {
	if l.opts.Guard == nil {
		f()
		return
	}
	l.opts.Guard(f)
}
