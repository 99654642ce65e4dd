package cloud

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// DefaultClientID is the cloud's MQTT client id. It is fixed so that the
// broker keeps the cloud's session (CleanSession=false) and queues what
// boxes send while the cloud is away. Two clouds on one broker need two ids
// (SetClientID in a client option), or the broker will kick one out: with
// Options.ShareGroup, Serve refuses to start on DefaultClientID (or none),
// and the caller gives each replica its own (e.g. "smartbox-cloud-<host>"),
// stable or not: a share-group member's session is clean.
const DefaultClientID = "smartbox-cloud"

const (
	// workers handle messages, each for a fixed share of the boxes, so a
	// box's messages are handled in the order they came while a slow box
	// (a big snapshot) does not hold up every other.
	workers = 4
	// queueLen bounds the messages waiting per worker. Past it a message
	// is dropped and counted: a paho handler must never block (or the
	// client misses its pings and drops the connection), and whatever is
	// dropped is repaired by the protocol (the box resends unacked events
	// and asks again for records).
	queueLen = 1024
	// publishTimeout bounds the wait for the broker's PUBACK of an answer.
	publishTimeout = 30 * time.Second
	connectTimeout = 30 * time.Second
)

// job is one thing for a worker: a message from a box, or a push.
type job struct {
	box     string
	leaf    string // "" for a push
	payload []byte
	from    uint64 // push: the revision before the change
}

type server struct {
	client mqtt.Client
	queues []chan job
	done   chan struct{}
}

func shard(boxID string) int {
	h := fnv.New32a()
	h.Write([]byte(boxID))
	return int(h.Sum32() % workers)
}

// enqueue hands j to its worker without blocking.
func (s *server) enqueue(c *Cloud, j job) {
	select {
	case s.queues[shard(j.box)] <- j:
	default:
		c.stats.queueFull.Add(1)
		c.log.Warn("cloud workers behind: message dropped (the protocol repairs it)", "box", j.box, "leaf", j.leaf)
	}
}

// Subscribed is closed once the broker has acknowledged Serve's first
// subscription to the box topics. From then on the broker keeps what boxes
// send for the cloud (the session is persistent; with Options.ShareGroup,
// for as long as one member of the group is connected); before it, on a
// broker that never saw the cloud, a box's first messages have no
// subscriber and wait for the box's resend. Tests and simulators start
// boxes after it.
func (c *Cloud) Subscribed() <-chan struct{} { return c.subscribed }

// Serve connects to the broker at mqttURL (tcp://, ssl://, ws://) and
// answers boxes until ctx is done: sync requests with record batches,
// event batches with acks, statuses and command results kept. It also
// pushes each new revision to an online box right after Put* and sends
// commands made by Command. clientOpts adjust the paho options (TLS,
// username and password, client id) after the defaults are set.
//
// With Options.ShareGroup it subscribes as a member of that shared
// subscription group (share.go): several Clouds on one database and one
// broker then split the box messages, one replica each, and any of them
// pushes to any box. Every Serve, grouped or not, also catches up a box
// that stays behind the store with no answer on its way (share.go).
//
// The box id is taken from the topic, which the broker's ACL ties to the
// box's login; a body naming another box is dropped and counted
// (Stats.WrongBox) as a security event.
//
// Serve returns an error if the first connection fails (a broker that
// closes it before answering is tried again for up to 30 s: see connect);
// later losses are retried by paho. It returns nil once ctx is done.
func (c *Cloud) Serve(ctx context.Context, mqttURL string, clientOpts ...func(*mqtt.ClientOptions)) error {
	s := &server{done: make(chan struct{})}
	for range workers {
		s.queues = append(s.queues, make(chan job, queueLen))
	}
	filters := map[string]byte{}
	for _, leaf := range []string{wire.LeafStatus, wire.LeafSyncRequest, wire.LeafEvents, wire.LeafCommandResult} {
		filters[c.subscription(wire.CloudFilter(leaf))] = 1
	}
	shared := c.opts.ShareGroup != ""
	o := mqtt.NewClientOptions().AddBroker(mqttURL).SetClientID(DefaultClientID).
		SetProtocolVersion(4). // 3.1.1 only: no second, MQTT 3.1 login after a refusal
		// One process: a persistent session, so the broker queues what
		// boxes send while the cloud restarts. A share-group member: a
		// clean one, or a dead replica's session would keep taking its
		// share of box messages (share.go).
		SetCleanSession(shared).SetAutoReconnect(true).SetConnectTimeout(connectTimeout).
		SetMaxReconnectInterval(30 * time.Second).
		// Set before Connect: with a persistent session the broker sends
		// what it queued at once, before any Subscribe returns.
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.receive(s, m) }).
		SetOnConnectHandler(func(cl mqtt.Client) {
			c.log.Info("connected to broker", "url", mqttURL)
			// Subscribe again on every connect: a broker without
			// persistence (mochi in memory) forgets subscriptions when it
			// restarts. Waiting happens off the handler goroutine.
			tok := cl.SubscribeMultiple(filters, nil)
			go func() {
				// No time bound of its own: on a loaded broker the SUBACK
				// may come after connectTimeout, and giving up then would
				// leave Subscribed (and /readyz) closed for good on a
				// cloud that is in fact subscribed. paho completes the
				// token with an error if the connection is lost first.
				select {
				case <-tok.Done():
				case <-s.done:
					return
				}
				if err := tok.Error(); err != nil {
					c.log.Error("subscribing to box topics", "err", err)
					return
				}
				c.subscribedOnce.Do(func() { close(c.subscribed) })
			}()
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			c.log.Warn("connection to broker lost; reconnecting", "url", mqttURL, "err", err)
		})
	for _, f := range clientOpts {
		f(o)
	}
	if shared {
		o.SetCleanSession(true) // whatever clientOpts said: see share.go
	}
	if shared && (o.ClientID == DefaultClientID || o.ClientID == "") {
		return fmt.Errorf("cloud: serve: share group %q: each replica needs a client id of its own (SetClientID), not %q",
			c.opts.ShareGroup, o.ClientID)
	}
	client := mqtt.NewClient(o)
	s.client = client

	c.mu.Lock()
	if c.serving != nil || c.closed {
		c.mu.Unlock()
		return errors.New("cloud: serve: already serving, or closed")
	}
	c.serving = s
	c.mu.Unlock()

	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(s, s.queues[i])
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.sweepLoop(s.done)
	}()
	go func() {
		defer wg.Done()
		c.catchUpLoop(s)
	}()
	stop := func() {
		c.mu.Lock()
		c.serving = nil
		c.mu.Unlock()
		close(s.done)
		wg.Wait()
	}

	err := c.connect(ctx, client, mqttURL)
	if err != nil || ctx.Err() != nil {
		client.Disconnect(0)
		stop()
		if err == nil {
			return nil
		}
		return fmt.Errorf("cloud: serve: connecting to %s: %w", mqttURL, err)
	}
	<-ctx.Done()
	stop()
	client.Disconnect(250)
	return nil
}

// connect makes the first connection. A broker that accepts the connection
// and closes it before its CONNACK is up but shedding load: the embedded
// broker refuses connections past its bound on those not logged in yet
// (sync/broker's connGate), and a box fleet reconnecting after a restart
// can fill that bound from the very address the cloud connects from. That
// is retried every firstConnectRetry for up to connectTimeout in all. What
// no retry mends is an error at once: nothing listening, a refusal in the
// CONNACK (login, not authorised), a TLS failure.
func (c *Cloud) connect(ctx context.Context, client mqtt.Client, mqttURL string) error {
	deadline := time.Now().Add(connectTimeout)
	for {
		tok := client.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return nil
		}
		err := tok.Error()
		if err == nil || !closedBeforeConnack(err) || time.Now().Add(firstConnectRetry).After(deadline) {
			return err
		}
		c.log.Warn("broker closed the connection before answering; retrying", "url", mqttURL, "err", err, "in", firstConnectRetry)
		select {
		case <-time.After(firstConnectRetry):
		case <-ctx.Done():
			return nil
		}
	}
}

// firstConnectRetry spaces connect's retries.
const firstConnectRetry = time.Second

// closedBeforeConnack: paho's error for a connection the broker accepted
// and then closed (EOF, or a reset: it closed with our CONNECT unread)
// before it answered.
func closedBeforeConnack(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	return errors.Is(err, packets.ErrorNetworkError) &&
		(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET))
}

// receive runs on paho's goroutine: classify, then hand over. Never block.
func (c *Cloud) receive(s *server, m mqtt.Message) {
	c.stats.messages.Add(1)
	boxID, leaf, err := wire.ParseTopic(m.Topic())
	if err != nil {
		c.stats.malformed.Add(1)
		c.log.Warn("message on a topic outside the tree: dropped", "topic", m.Topic(), "err", err)
		return
	}
	s.enqueue(c, job{box: boxID, leaf: leaf, payload: m.Payload()})
}

func (c *Cloud) work(s *server, q chan job) {
	for {
		select {
		case <-s.done:
			return
		case j := <-q:
			c.handle(s, j)
		}
	}
}

// refused counts and logs a message that could not be used.
func (c *Cloud) refused(j job, err error) {
	switch {
	case errors.Is(err, wire.ErrWrongBox):
		c.stats.wrongBox.Add(1)
		c.log.Warn("security: a message names another box than its topic: dropped", "box", j.box, "leaf", j.leaf, "err", err)
	case errors.Is(err, ErrUnknownBox):
		c.stats.unknownBox.Add(1)
		c.log.Warn("message from a box the cloud does not know: dropped", "box", j.box, "leaf", j.leaf)
	case errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrVersion), errors.Is(err, wire.ErrTooLarge):
		c.stats.malformed.Add(1)
		c.log.Warn("malformed message: dropped", "box", j.box, "leaf", j.leaf, "err", err)
	case errors.Is(err, ErrThrottled):
		c.log.Warn("box over its rate: dropped", "box", j.box, "leaf", j.leaf)
	default:
		c.log.Error("handling a box message", "box", j.box, "leaf", j.leaf, "err", err)
	}
}

// outMsg is a message to publish.
type outMsg struct {
	topic   string
	payload []byte
}

// handle processes one job and publishes what it produced, in order.
func (c *Cloud) handle(s *server, j job) {
	for _, m := range c.process(j) {
		if !c.publish(s, m.topic, m.payload) {
			return // the rest would arrive after a gap; the box asks again
		}
	}
}

// process handles a message from a box (or a push) and returns what to
// publish. It touches no network, so tests and the fuzzer drive it directly.
func (c *Cloud) process(j job) []outMsg {
	switch j.leaf {
	case "":
		return c.processPush(j)
	case wire.LeafStatus:
		if len(j.payload) == 0 {
			return nil // a retained status being cleared
		}
		var st wire.Status
		if err := wire.Decode(j.payload, j.box, &st); err != nil {
			c.refused(j, err)
			return nil
		}
		if err := c.ReceiveStatus(j.box, st); err != nil {
			c.refused(j, err)
			return nil
		}
		// A box that came online behind (the cloud was away while records
		// changed) gets its records now rather than at its next periodic
		// request. A duplicate of a push is ignored by the box.
		if st.Online {
			if rev, err := c.Revision(j.box); err == nil && st.Revision < rev {
				return c.answer(j, wire.SyncRequest{V: wire.Version, Box: j.box, Have: st.Revision, Reason: "status"})
			}
		}
	case leafCatchUp:
		// Still behind at the revision the scan saw? A push or an answer
		// may have got there since.
		if have, behind, err := c.boxBehind(j.box); err != nil || !behind || have != j.from {
			return nil
		}
		return c.answer(j, wire.SyncRequest{V: wire.Version, Box: j.box, Have: j.from, Reason: "catch_up"})
	case wire.LeafSyncRequest:
		var req wire.SyncRequest
		if err := wire.Decode(j.payload, j.box, &req); err != nil {
			c.refused(j, err)
			return nil
		}
		return c.answer(j, req)
	case wire.LeafEvents:
		var b wire.EventBatch
		if err := wire.Decode(j.payload, j.box, &b); err != nil {
			c.refused(j, err)
			return nil
		}
		ack, _, err := c.IngestEvents(j.box, b)
		if err != nil {
			c.refused(j, err)
			return nil
		}
		return []outMsg{{wire.Topic(j.box, wire.LeafEventsAck), ack}}
	case wire.LeafCommandResult:
		var res wire.CommandResult
		if err := wire.Decode(j.payload, j.box, &res); err != nil {
			c.refused(j, err)
			return nil
		}
		if err := c.SetCommandResult(j.box, res); err != nil {
			c.refused(j, err)
			return nil
		}
		c.log.Info("command result", "box", j.box, "id", res.ID, "ok", res.OK, "error", res.Error)
	default:
		// records, events/ack, command: the cloud's own leaves, which it
		// does not subscribe to.
	}
	return nil
}

// answer answers a sync request, within the box's SyncRate.
func (c *Cloud) answer(j job, req wire.SyncRequest) []outMsg {
	if !c.allow(c.syncs, j.box, c.opts.SyncRate) {
		c.stats.syncThrottled.Add(1)
		c.refused(j, fmt.Errorf("sync request: %w", ErrThrottled))
		return nil
	}
	msgs, err := c.AnswerRequest(req)
	if err != nil {
		c.refused(j, err)
		return nil
	}
	c.log.Debug("answering sync request", "box", j.box, "have", req.Have, "reason", req.Reason, "messages", len(msgs))
	return records(j.box, msgs)
}

func records(boxID string, msgs [][]byte) []outMsg {
	out := make([]outMsg, len(msgs))
	for i, m := range msgs {
		out[i] = outMsg{wire.Topic(boxID, wire.LeafRecords), m}
	}
	return out
}

// processPush sends a new revision to a box that is online.
func (c *Cloud) processPush(j job) []outMsg {
	st, ok, err := c.Status(j.box)
	if err != nil || !ok || !st.Online {
		return nil // it asks when it connects
	}
	msgs, err := c.Answer(wire.SyncRequest{V: wire.Version, Box: j.box, Have: j.from, Reason: "push"})
	if err != nil {
		c.refused(j, err)
		return nil
	}
	return records(j.box, msgs)
}

// publish sends msg with QoS 1 and waits for the broker's PUBACK (or for
// Serve to stop). A PUBACK only says the broker has it; the protocol's own
// acks and revision checks make delivery end to end.
func (c *Cloud) publish(s *server, topic string, msg []byte) bool {
	tok := s.client.Publish(topic, 1, false, msg)
	timer := time.NewTimer(publishTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			c.log.Warn("publishing", "topic", topic, "err", err)
			return false
		}
		return true
	case <-timer.C:
		c.log.Warn("publishing: no PUBACK in time", "topic", topic, "timeout", publishTimeout)
		return false
	case <-s.done:
		return false
	}
}

// pushChange queues a push of the revision after from, if Serve runs.
func (c *Cloud) pushChange(boxID string, from uint64) {
	c.mu.Lock()
	s := c.serving
	c.mu.Unlock()
	if s != nil {
		s.enqueue(c, job{box: boxID, from: from})
	}
}

// publishCommand sends a signed command, if Serve runs. Not waited for:
// Command is called by the bridge, and a box that misses it gets nothing
// worse than a command that expires.
func (c *Cloud) publishCommand(boxID string, msg []byte) {
	c.mu.Lock()
	s := c.serving
	c.mu.Unlock()
	if s == nil {
		return
	}
	tok := s.client.Publish(wire.Topic(boxID, wire.LeafCommand), 1, false, msg)
	go func() {
		if tok.WaitTimeout(publishTimeout) && tok.Error() != nil {
			c.log.Warn("publishing command", "box", boxID, "err", tok.Error())
		}
	}()
}
