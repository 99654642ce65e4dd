package loadbox

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/link"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Defaults for Config left zero.
const (
	// DefaultAckTimeout and DefaultMaxAckWait are a real box's
	// (sync/link): the first resend of an unacked batch after 10 s, each
	// further batch in a row without an ack waiting twice as long, up to
	// 5 min (link.AckWait). A load box that resent every 5 s whatever
	// happened made its own storm: with 1,000 boxes sending at once, the
	// first acks took about 5 s, and 14,026 of 20,000 events were sent
	// twice or more.
	DefaultAckTimeout = link.DefaultAckTimeout
	DefaultMaxAckWait = link.DefaultMaxAckWait
	// pollEvery checks the ack timer; cheap for a thousand boxes.
	pollEvery = 500 * time.Millisecond
	// maxReconnectInterval caps paho's back-off, as link.DefaultMaxReconnectInterval.
	maxReconnectInterval = link.DefaultMaxReconnectInterval
	// inboxLen bounds the messages waiting for a box's worker; a full
	// inbox drops (paho handlers must not block) and the worker asks for
	// the records again, which repairs what was dropped.
	inboxLen = 256
	// resyncAfter: a sync request with no records answer (the cloud's
	// inbound queue full in a reconnect storm drops it, or the answer
	// came before the subscription) is asked again after this. A real
	// box's safety net is its 15-minute periodic sync (sync/link); a
	// load box asks sooner, so a storm's figure is the bridge's pace,
	// not a lost message's.
	resyncAfter = 10 * time.Second
)

// Config is one lightweight box.
type Config struct {
	ID        string
	BrokerURL string      // ssl://host:port of the broker's TLS listener
	TLS       *tls.Config // the bridge CA and the box's client certificate
	// Username and Password log in to a broker that knows boxes by
	// password (an external mosquitto's password file, user = box id);
	// "": the client certificate in TLS is the box's identity.
	Username, Password string
	// LocalIP is the address the box connects from (nil: the system's
	// choice). A fleet on one machine spreads its boxes over loopback
	// addresses (127.0.0.0/8 is all loopback on Linux) so that the broker
	// sees depots behind their own NATs, not one address: its bound on
	// connections not logged in yet is per address (sync/broker).
	LocalIP    net.IP
	CloudKeys  map[string]ed25519.PublicKey
	SyncKey    *ecdh.PrivateKey // the key registered with the cloud
	Slots      int
	DrainBatch int           // events per EventBatch (link.DefaultDrainBatch)
	AckTimeout time.Duration // resend an unacked batch after this (DefaultAckTimeout)
	MaxAckWait time.Duration // the wait's cap as it doubles (DefaultMaxAckWait; at least AckTimeout)
	Logger     *slog.Logger
}

// Box is a lightweight box: its records and outbox in memory.
type Box struct {
	cfg      Config
	log      *slog.Logger
	verifier wire.Verifier
	in       chan mqtt.Message
	overflow atomic.Bool
	online   chan bool
	client   mqtt.Client

	mu        sync.Mutex
	rec       *records
	out       outbox
	inflight  uint64 // last seq of the batch waiting for its ack, 0: none
	unacked   int    // batches in a row that got no ack (link.AckWait)
	sentAt    time.Time
	connected bool
	changed   chan struct{} // closed and replaced at every change
	refused   int
	connects  int
	asked     time.Time // when the sync request still unanswered was sent (zero: none)
}

// New makes a box; Start connects it.
func New(cfg Config) (*Box, error) {
	if !box.ValidID(cfg.ID) || cfg.SyncKey == nil || len(cfg.CloudKeys) == 0 || cfg.BrokerURL == "" {
		return nil, fmt.Errorf("loadbox: box %q: need a valid id, a sync key, the cloud's keys and a broker URL", cfg.ID)
	}
	if cfg.DrainBatch <= 0 {
		cfg.DrainBatch = link.DefaultDrainBatch
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.MaxAckWait <= 0 {
		cfg.MaxAckWait = DefaultMaxAckWait
	}
	cfg.MaxAckWait = max(cfg.MaxAckWait, cfg.AckTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Box{cfg: cfg, log: cfg.Logger.With("box", cfg.ID),
		verifier: wire.Verifier{Keys: cfg.CloudKeys, BoxKey: cfg.SyncKey.PublicKey().Bytes()},
		in:       make(chan mqtt.Message, inboxLen), online: make(chan bool, 4),
		rec: newRecords(), changed: make(chan struct{})}, nil
}

func (b *Box) topic(leaf string) string { return wire.Topic(b.cfg.ID, leaf) }

// Start connects (paho retries until it is in) and runs the box's worker
// until ctx is done. It returns once the first connect is made or ctx ends.
func (b *Box) Start(ctx context.Context) error {
	will, _ := b.status(false)
	o := mqtt.NewClientOptions().AddBroker(b.cfg.BrokerURL).SetClientID(b.cfg.ID).
		SetProtocolVersion(4).SetCleanSession(false).SetStore(link.NewMemoryStore()).
		SetOrderMatters(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(maxReconnectInterval).
		SetKeepAlive(30*time.Second).SetConnectTimeout(30*time.Second).SetWriteTimeout(10*time.Second).
		SetTLSConfig(b.cfg.TLS).SetUsername(b.cfg.Username).SetPassword(b.cfg.Password).
		SetDialer(&net.Dialer{Timeout: 30 * time.Second, LocalAddr: localAddr(b.cfg.LocalIP)}).
		SetBinaryWill(b.topic(wire.LeafStatus), will, 1, true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			select {
			case b.in <- m:
			default:
				b.overflow.Store(true)
			}
		}).
		SetOnConnectHandler(func(mqtt.Client) { b.online <- true }).
		SetConnectionLostHandler(func(mqtt.Client, error) { b.online <- false })
	b.client = mqtt.NewClient(o)
	tok := b.client.Connect()
	go b.work(ctx)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop disconnects without an offline status (the will says it).
func (b *Box) Stop() {
	if b.client != nil {
		b.client.Disconnect(100)
	}
}

func (b *Box) work(ctx context.Context) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case up := <-b.online:
			b.onConnection(up)
		case m := <-b.in:
			b.handle(m)
		case <-tick.C:
			if b.overflow.Swap(false) {
				b.requestSync("inbox_overflow")
			}
			b.mu.Lock()
			if b.inflight != 0 && time.Since(b.sentAt) >= link.AckWait(b.cfg.AckTimeout, b.cfg.MaxAckWait, b.unacked) {
				b.inflight = 0
				b.unacked++
			}
			unanswered := b.connected && !b.asked.IsZero() && time.Since(b.asked) >= resyncAfter
			b.mu.Unlock()
			if unanswered {
				b.requestSync("no_answer")
			}
			b.drain()
		}
	}
}

func (b *Box) onConnection(up bool) {
	b.mu.Lock()
	b.connected = up
	b.inflight = 0 // a batch in flight may be lost: start again from the oldest
	if up {
		b.connects++
	}
	b.notifyLocked()
	b.mu.Unlock()
	if !up {
		return
	}
	b.publishStatus()
	tok := b.client.SubscribeMultiple(map[string]byte{b.topic(wire.LeafRecords): 1, b.topic(wire.LeafEventsAck): 1}, nil)
	go func() { tok.WaitTimeout(30 * time.Second) }()
	b.requestSync("connect")
	b.drain()
}

func (b *Box) handle(m mqtt.Message) {
	_, leaf, err := wire.ParseTopic(m.Topic())
	if err != nil {
		return
	}
	switch leaf {
	case wire.LeafRecords:
		b.onRecords(m.Payload())
	case wire.LeafEventsAck:
		b.onAck(m.Payload())
	}
}

// onRecords applies a batch by sync/link's rules (see the package doc).
func (b *Box) onRecords(payload []byte) {
	var rb wire.RecordBatch
	if err := b.verifier.Open(payload, wire.KindRecords, b.cfg.ID, &rb); err != nil {
		b.refuse("records", err)
		return
	}
	b.mu.Lock()
	rev := b.rec.rev
	b.asked = time.Time{} // answered (a probe answer too)
	b.mu.Unlock()
	if rb.To <= rev {
		return // a duplicate, a late copy, a probe answer
	}
	if !rb.Snapshot && rb.From != rev {
		b.requestSync("gap")
		return
	}
	if rb.Snapshot && rb.Chunks > 1 {
		b.stageChunk(rb)
		return
	}
	if err := b.applyBatch(rb, opener(b.cfg.SyncKey, rb, b.cfg.ID)); err != nil {
		b.refuse("records", err)
		return
	}
	b.publishStatus()
}

func (b *Box) applyBatch(rb wire.RecordBatch, open func(string, []byte) (string, error)) error {
	keys, grants, err := check(&rb, open, b.cfg.Slots)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.rec.apply(time.Now(), rb.Snapshot, rb.To, keys, grants, rb.DeleteKeys, rb.DeleteGrants); err != nil {
		return err
	}
	b.out.add(box.Event{Type: box.EventRecordsApplied, Time: time.Now(),
		Detail: fmt.Sprintf("revision %d to %d", rb.From, rb.To)})
	b.notifyLocked()
	return nil
}

// stageChunk keeps a snapshot's chunks until all are there, then applies
// them together, as the store's StageChunk does.
func (b *Box) stageChunk(rb wire.RecordBatch) {
	r := b.rec
	if r.stageTo != rb.To {
		r.stageTo, r.stage = rb.To, map[int]wire.RecordBatch{}
	}
	r.stage[rb.Chunk] = rb
	if len(r.stage) < rb.Chunks {
		return
	}
	var keys []box.Key
	var grants []box.GrantPut
	var delKeys, delGrants []string
	for i := 1; i <= rb.Chunks; i++ {
		c, ok := r.stage[i]
		if !ok {
			return
		}
		k, g, err := check(&c, opener(b.cfg.SyncKey, c, b.cfg.ID), b.cfg.Slots)
		if err != nil {
			r.stageTo, r.stage = 0, nil
			b.refuse("records", err)
			return
		}
		keys, grants = append(keys, k...), append(grants, g...)
		delKeys, delGrants = append(delKeys, c.DeleteKeys...), append(delGrants, c.DeleteGrants...)
	}
	r.stageTo, r.stage = 0, nil
	b.mu.Lock()
	err := r.apply(time.Now(), true, rb.To, keys, grants, delKeys, delGrants)
	if err == nil {
		b.out.add(box.Event{Type: box.EventRecordsApplied, Time: time.Now(),
			Detail: fmt.Sprintf("snapshot revision %d in %d chunks", rb.To, rb.Chunks)})
		b.notifyLocked()
	}
	b.mu.Unlock()
	if err != nil {
		b.refuse("records", err)
		return
	}
	b.publishStatus()
}

// opener opens the sealed codes of batch rb, deriving its key once.
func opener(key *ecdh.PrivateKey, rb wire.RecordBatch, boxID string) func(string, []byte) (string, error) {
	var o *wire.CodeOpener
	return func(id string, sealed []byte) (string, error) {
		if o == nil {
			var err error
			if o, err = wire.NewCodeOpener(key, rb.Ephemeral, boxID, rb.To); err != nil {
				return "", err
			}
		}
		return o.Open(id, sealed)
	}
}

func (b *Box) onAck(payload []byte) {
	var ack wire.EventAck
	if err := b.verifier.Open(payload, wire.KindEventsAck, b.cfg.ID, &ack); err != nil {
		b.refuse("events ack", err)
		return
	}
	b.mu.Lock()
	n, ok := b.out.ack(ack.Through)
	if !ok {
		b.mu.Unlock()
		b.refuse("events ack", fmt.Errorf("through %d is beyond the last seq given out", ack.Through))
		return
	}
	if b.inflight != 0 && (ack.Through >= b.inflight || n > 0) {
		b.inflight = 0 // all of it, or a part (resend the rest now); an older ack changes nothing
		b.unacked = 0
	}
	b.notifyLocked()
	b.mu.Unlock()
	b.drain()
}

// drain sends the oldest unacked events if nothing is in flight.
func (b *Box) drain() {
	b.mu.Lock()
	if !b.connected || b.inflight != 0 || len(b.out.events) == 0 {
		b.mu.Unlock()
		return
	}
	evs := b.out.events[:min(len(b.out.events), b.cfg.DrainBatch)]
	msg, err := json.Marshal(wire.EventBatch{V: wire.Version, Box: b.cfg.ID, Events: evs})
	if err == nil {
		b.inflight, b.sentAt = evs[len(evs)-1].Seq, time.Now()
	}
	b.mu.Unlock()
	if err == nil {
		b.publish(wire.LeafEvents, false, msg)
	}
}

func (b *Box) refuse(what string, err error) {
	b.log.Warn("loadbox: refused", "what", what, "err", err)
	b.mu.Lock()
	b.refused++
	b.mu.Unlock()
	b.requestSync("refused")
}

func (b *Box) requestSync(reason string) {
	b.mu.Lock()
	have := b.rec.rev
	b.asked = time.Now()
	b.mu.Unlock()
	msg, _ := json.Marshal(wire.SyncRequest{V: wire.Version, Box: b.cfg.ID, Have: have, Reason: reason})
	b.publish(wire.LeafSyncRequest, false, msg)
}

func (b *Box) status(online bool) ([]byte, error) {
	b.mu.Lock()
	st := wire.Status{V: wire.Version, Box: b.cfg.ID, Online: online, Software: "loadbox",
		Revision: b.rec.rev, OutboxDepth: len(b.out.events), LastSeq: b.out.lastSeq,
		Clock: time.Now().UTC(), ClockTrusted: true}
	b.mu.Unlock()
	return json.Marshal(st)
}

func (b *Box) publishStatus() {
	if msg, err := b.status(true); err == nil {
		b.publish(wire.LeafStatus, true, msg)
	}
}

// publish sends QoS 1 without waiting: the protocol repairs a loss.
func (b *Box) publish(leaf string, retained bool, payload []byte) {
	if b.client == nil || !b.client.IsConnectionOpen() {
		return
	}
	b.client.Publish(b.topic(leaf), 1, retained, payload)
}

// notifyLocked wakes every waiter (b.mu held).
func (b *Box) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Record adds events to the outbox (seqs from 1) and sends them.
func (b *Box) Record(evs ...box.Event) {
	b.mu.Lock()
	b.out.add(evs...)
	b.mu.Unlock()
	b.drain()
}

// Snapshot is what a box holds now, for checks.
type Snapshot struct {
	Revision  uint64
	Keys      int
	Grants    int
	LastSeq   uint64 // the last seq given out
	Acked     uint64 // the highest seq the cloud acked
	Removed   uint64 // events deleted from the outbox by acks
	Outbox    int
	Connected bool
	Connects  int
	Refused   int
}

// State is a copy of the box's state now.
func (b *Box) State() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Snapshot{Revision: b.rec.rev, Keys: len(b.rec.keys), Grants: len(b.rec.grants),
		LastSeq: b.out.lastSeq, Acked: b.out.acked, Removed: b.out.removed, Outbox: len(b.out.events),
		Connected: b.connected, Connects: b.connects, Refused: b.refused}
}

// Wait waits until cond holds on the box's state, or ctx ends.
func (b *Box) Wait(ctx context.Context, cond func(Snapshot) bool) error {
	for {
		b.mu.Lock()
		ch := b.changed
		b.mu.Unlock()
		if s := b.State(); cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("box %s: %w (state %+v)", b.cfg.ID, ctx.Err(), b.State())
		}
	}
}

// Grants is a copy of the grants the box holds now, codes in clear (a
// test compares them with what the cloud and Fleetio were given).
func (b *Box) Grants() map[string]box.GrantPut {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]box.GrantPut, len(b.rec.grants))
	for id, g := range b.rec.grants {
		out[id] = g
	}
	return out
}

// GrantSeen is when grant id was first applied at the box (the moment a
// driver's code would open its slot), and whether it ever was.
func (b *Box) GrantSeen(id string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.rec.seen[id]
	return t, ok
}

// localAddr is a dialer's LocalAddr for ip; nil for none. (A nil
// *net.TCPAddr in the interface would not be nil to net.Dialer.)
func localAddr(ip net.IP) net.Addr {
	if ip == nil {
		return nil
	}
	return &net.TCPAddr{IP: ip}
}

// ID is the box id.
func (b *Box) ID() string { return b.cfg.ID }
