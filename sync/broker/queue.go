package broker

import (
	"log/slog"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Bounds on what the broker holds for a session: the QoS 1 and 2 messages
// delivered to it and not yet acknowledged, which is everything queued for
// an offline persistent session and everything an online but slow one has
// not read yet. mochi's own bound is a count (MaximumInflight, 8192 per
// session), with no bound in bytes: while the cloud's session was offline,
// one box's password queued 200 x 1 MiB event batches for it (+400 MB).
//
// A delivery past a bound is dropped, counted (Broker.QueueDropped) and
// logged as a security event once per episode (until the queue is below the
// bound again). Nothing the protocol needs is lost for good: a box sends
// its events until the cloud's signed ack (a dropped batch costs a resend,
// not an event), its status is retained and sent again at each subscribe,
// and a box asks for the records after its revision on every connect, at
// each gap and every 15 minutes, so a dropped record batch is sent again; a
// dropped command expires unanswered, as one sent to a box that is off.
const (
	// maxQueuedFromBox bounds, in one cloud session, the messages from one
	// box. A box has one event batch in flight (at most wire.MaxMessageSize)
	// and sends it again, at growing intervals, until it is acked; with its
	// status and sync requests a box offline from the cloud for a day
	// queues a few hundred small messages. 8 MiB and 1024 messages leave
	// room for that and bound what one box's password can make the broker
	// hold for the cloud.
	maxQueuedFromBox     = 8 << 20
	maxQueuedFromBoxMsgs = 1024
	// maxQueuedCloud bounds one cloud session over all boxes: 8 boxes at
	// their bound, or a fleet's worth of small messages; the count stays
	// below mochi's MaximumInflight, so that this bound, which logs and
	// counts, is the one met.
	maxQueuedCloud     = 64 << 20
	maxQueuedCloudMsgs = 4096
	// maxQueuedForBox bounds one box's session: what the cloud sends it
	// (record batches, acks, commands). A whole snapshot is published at
	// once, faster than a box on a slow link reads it, so this must hold
	// the largest snapshot of a box: 16 MiB is about 20 chunks of 2000
	// records, some 40 000 keys and grants, far more than a key locker
	// has. A snapshot larger than this never arrives whole at a box that
	// reads slower than the cloud publishes (see doc.go, Caveats).
	maxQueuedForBox     = 16 << 20
	maxQueuedForBoxMsgs = 1024
)

// queueLimit is a bound in bytes and in messages.
type queueLimit struct{ bytes, msgs int }

// usage is what is queued against one bound, and whether deliveries to it
// are being dropped (an episode, logged once at its start and end).
type usage struct {
	bytes, msgs int
	dropping    bool
	dropped     int // in this episode
}

func (u *usage) over(l queueLimit) bool { return u.bytes >= l.bytes || u.msgs >= l.msgs }

// drained says whether a drop episode may end: the queue is below half its
// bounds, so that a queue that hovers at its bound logs one episode, not one
// per message.
func (u *usage) drained(l queueLimit) bool { return u.bytes < l.bytes/2 && u.msgs < l.msgs/2 }

// queued is one message held for a session.
type queued struct {
	source string // the box id of its topic
	size   int    // payload and topic bytes
}

// sessionQueue is what one session (client id) holds.
type sessionQueue struct {
	perSource, limit queueLimit // from its user (limits)
	total            usage
	bySource         map[string]*usage
	msgs             map[uint16]queued // by packet id
}

// queueBound tracks, per session, the QoS 1 and 2 messages mochi holds for
// it, from mochi's in-flight hooks (OnQosPublish when a message is queued
// or resent, OnQosComplete when acked, OnQosDropped when expired or
// cleared) and from the store at start, and refuses a delivery to a
// session over its bounds (admit, from the read ACL check that mochi makes
// before it queues each delivery).
type queueBound struct {
	cloud string
	log   *slog.Logger

	mu       sync.Mutex
	sessions map[string]*sessionQueue
	dropped  atomic.Uint64
}

func newQueueBound(cloud string, log *slog.Logger) *queueBound {
	return &queueBound{cloud: cloud, log: log, sessions: map[string]*sessionQueue{}}
}

// limits are the bounds for user's session: per source box, and in all.
func (q *queueBound) limits(user string) (perSource, total queueLimit) {
	if user == q.cloud {
		return queueLimit{maxQueuedFromBox, maxQueuedFromBoxMsgs}, queueLimit{maxQueuedCloud, maxQueuedCloudMsgs}
	}
	// A box's session holds only its own topics: one source.
	l := queueLimit{maxQueuedForBox, maxQueuedForBoxMsgs}
	return l, l
}

// admit says whether a delivery on topic to cl's session may be queued.
func (q *queueBound) admit(cl *mqtt.Client, topic string) bool {
	user := string(cl.Properties.Username)
	source, _, _ := splitTopic(topic)
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sessions[cl.ID]
	if s == nil {
		return true
	}
	s.perSource, s.limit = q.limits(user)
	u := s.bySource[source]
	var full *usage
	switch {
	case u != nil && u.over(s.perSource):
		full = u
	case s.total.over(s.limit):
		full = &s.total
	default:
		return true
	}
	q.dropped.Add(1)
	full.dropped++
	if !full.dropping {
		full.dropping = true
		q.log.Warn("delivery dropped: the session's queue is full; dropping until it drains",
			"security", true, "client", cl.ID, "user", user, "topic", topic, "source", source,
			"queued_bytes", full.bytes, "queued_messages", full.msgs)
	}
	return false
}

// add counts a message queued (or queued again: a resend) for cl.
func (q *queueBound) add(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish {
		return // an ack state of an inbound QoS 2 flow, or a PUBREL
	}
	source, _, _ := splitTopic(pk.TopicName)
	q.addMsg(cl.ID, string(cl.Properties.Username), pk.PacketID, source, len(pk.Payload)+len(pk.TopicName))
}

// addMsg counts message id of client's session. user may be "" (a message
// loaded from the store: the session's user is known at its next delivery).
func (q *queueBound) addMsg(client, user string, id uint16, source string, size int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sessions[client]
	if s == nil {
		s = &sessionQueue{bySource: map[string]*usage{}, msgs: map[uint16]queued{}}
		s.perSource, s.limit = q.limits(user)
		q.sessions[client] = s
	}
	if user != "" {
		s.perSource, s.limit = q.limits(user)
	}
	if old, ok := s.msgs[id]; ok {
		q.take(client, s, id, old)
	}
	s.msgs[id] = queued{source: source, size: size}
	u := s.bySource[source]
	if u == nil {
		u = &usage{}
		s.bySource[source] = u
	}
	for _, u := range []*usage{u, &s.total} {
		u.bytes += size
		u.msgs++
	}
}

// remove forgets message id of client: acked, expired or cleared.
func (q *queueBound) remove(client string, id uint16) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sessions[client]
	if s == nil {
		return
	}
	if m, ok := s.msgs[id]; ok {
		q.take(client, s, id, m)
	}
	if len(s.msgs) == 0 {
		delete(q.sessions, client)
	}
}

// take removes m from s's counts and ends a drop episode whose queue is
// below its bound again. q.mu is held.
func (q *queueBound) take(client string, s *sessionQueue, id uint16, m queued) {
	delete(s.msgs, id)
	u := s.bySource[m.source]
	for _, b := range []struct {
		u *usage
		l queueLimit
	}{{u, s.perSource}, {&s.total, s.limit}} {
		u := b.u
		u.bytes -= m.size
		u.msgs--
		if u.dropping && u.drained(b.l) {
			u.dropping = false
			q.log.Warn("queue drained: deliveries to the session resume", "security", true,
				"client", client, "source", m.source, "dropped", u.dropped)
			u.dropped = 0
		}
	}
	if u.msgs == 0 && !u.dropping {
		delete(s.bySource, m.source)
	}
}

// The in-flight hooks of authHook feed the queue bound.

func (h *authHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	h.queues.add(cl, pk)
}

func (h *authHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.queues.remove(cl.ID, pk.PacketID)
}

func (h *authHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.queues.remove(cl.ID, pk.PacketID)
}

// OnSubscribe and OnSubscribed bracket the read ACL checks that mochi makes
// for a SUBSCRIBE's filters, in the subscriber's goroutine, with the same
// call it makes for each delivery: a filter that is a plain topic (a box
// subscribes to its leaves by name) must be checked by the access rules
// alone, never refused because the session's queue is full.
func (h *authHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	filters := make(map[string]bool, len(pk.Filters))
	for _, f := range pk.Filters {
		filters[f.Filter] = true
	}
	h.subMu.Lock()
	h.subscribing[cl] = filters
	h.subMu.Unlock()
	return pk
}

func (h *authHook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	h.subMu.Lock()
	delete(h.subscribing, cl)
	h.subMu.Unlock()
}

// isSubscribeCheck says whether a read check of topic for cl is for a
// SUBSCRIBE it is making. A delivery of that very topic to cl while it
// subscribes passes as one: at most one message over the bound.
func (h *authHook) isSubscribeCheck(cl *mqtt.Client, topic string) bool {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	return h.subscribing[cl][topic]
}
