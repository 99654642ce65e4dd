package broker

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Message size bounds per leaf (payload bytes), checked on every publish.
const (
	// maxStatusSize bounds a status (and a box's will, which is a status):
	// a real one is about 300 bytes of JSON. It is the one message the
	// broker keeps (retained, for 30 days), so it is kept small: a box can
	// make the broker store at most this much.
	maxStatusSize = 4 << 10
	// maxSyncRequestSize bounds a SyncRequest, about 100 bytes of JSON.
	maxSyncRequestSize = 4 << 10
	// maxCommandResultSize bounds a CommandResult: about 150 bytes plus an
	// error text, which comes from the box's own error messages; room to
	// spare so that a long one is not lost.
	maxCommandResultSize = 16 << 10
)

// leafRule says which side publishes a leaf and how large its messages may
// be. The other side may only read (subscribe to) it.
type leafRule struct {
	boxPublishes bool
	maxSize      int
}

// leafRules is the whole access policy, per leaf of wire's topic tree.
// events, records, events/ack and command may be as large as a receiver
// accepts at all (wire.MaxMessageSize: snapshots are chunked below it, an
// event batch of 500 events fits); anything larger would only be refused
// unread at the other end.
var leafRules = map[string]leafRule{
	wire.LeafStatus:        {boxPublishes: true, maxSize: maxStatusSize},
	wire.LeafSyncRequest:   {boxPublishes: true, maxSize: maxSyncRequestSize},
	wire.LeafEvents:        {boxPublishes: true, maxSize: wire.MaxMessageSize},
	wire.LeafCommandResult: {boxPublishes: true, maxSize: maxCommandResultSize},
	wire.LeafRecords:       {boxPublishes: false, maxSize: wire.MaxMessageSize},
	wire.LeafEventsAck:     {boxPublishes: false, maxSize: wire.MaxMessageSize},
	wire.LeafCommand:       {boxPublishes: false, maxSize: wire.MaxMessageSize},
}

// authHook is the broker's authentication and access control (see doc.go).
type authHook struct {
	mqtt.HookBase
	cloud    string
	lookup   func(name string) (hash string, ok bool)
	sessions *mqtt.Clients // to see who owns an existing session
	logins   *loginGuard
	certs    certCheck
	queues   *queueBound
	log      *slog.Logger
	denied   atomic.Uint64

	subMu       sync.Mutex
	subscribing map[*mqtt.Client]map[string]bool // filters of a SUBSCRIBE being checked
}

func (h *authHook) ID() string { return "smartbox-acl" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnSubscribe, mqtt.OnSubscribed}, []byte{b})
}

// deny logs a refusal as a security event and counts it.
func (h *authHook) deny(msg string, args ...any) {
	h.denied.Add(1)
	h.log.Warn(msg, append([]any{"security", true}, args...)...)
}

// certIdentity is the CN of a client certificate that the TLS handshake
// verified against the configured ClientCAs, or "" when there is none, and
// the verified chains. Only verified chains count: a listener configured
// with tls.RequestClientCert would hand us unverified certificates.
func certIdentity(cl *mqtt.Client) (string, [][]*x509.Certificate) {
	tc, ok := rawConn(cl.Net.Conn).(*tls.Conn)
	if !ok {
		return "", nil
	}
	st := tc.ConnectionState() // the handshake completed when CONNECT was read
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return "", nil
	}
	return st.PeerCertificates[0].Subject.CommonName, st.VerifiedChains
}

// OnConnectAuthenticate decides who the client is and whether it may connect.
// It records the identity as the client's user name, which the ACL and the
// session store use from then on.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	remote := cl.Net.Remote
	identity := user
	if cn, chains := certIdentity(cl); cn != "" {
		if user != "" && user != cn {
			h.deny("connect refused: user name differs from client certificate",
				"user", user, "cert_cn", cn, "client", cl.ID, "remote", remote)
			return false
		}
		if reason := h.certs.refuse(cn, chains); reason != "" {
			h.deny("connect refused: "+reason, "user", cn, "client", cl.ID, "remote", remote,
				"serial", chains[0][0].SerialNumber.Text(16))
			return false
		}
		identity = cn
	} else if h.certs.hasCert(user) {
		// A box with a certificate of the bridge's CA logs in with it
		// only: its old password (an old card, a stolen one) is dead.
		h.deny("connect refused: the box has a client certificate; password login refused",
			"user", user, "client", cl.ID, "remote", remote)
		return false
	} else if refusal := h.checkPassword(user, remote, string(pk.Connect.Password)); refusal != nil {
		h.deny("connect refused: "+refusal.reason, append([]any{"user", user, "client", cl.ID, "remote", remote}, refusal.args...)...)
		return false
	}
	isCloud := identity == h.cloud
	if !isCloud && !box.ValidID(identity) {
		h.deny("connect refused: user is neither the cloud nor a box id", "user", identity, "remote", remote)
		return false
	}
	if !isCloud && cl.ID != identity {
		h.deny("connect refused: a box must use its box id as client id",
			"user", identity, "client", cl.ID, "remote", remote)
		return false
	}
	if old, ok := h.sessions.Get(cl.ID); ok {
		if owner := string(old.Properties.Username); owner != identity {
			h.deny("connect refused: session belongs to another user",
				"user", identity, "client", cl.ID, "owner", owner, "remote", remote)
			return false
		}
	}
	// A will is a publish the broker makes later on the client's behalf,
	// retained if the client asks: only a box's own status qualifies.
	if pk.Connect.WillFlag {
		if isCloud || pk.Connect.WillTopic != wire.Topic(identity, wire.LeafStatus) {
			h.deny("connect refused: will topic is not the box's own status",
				"user", identity, "topic", pk.Connect.WillTopic, "remote", remote)
			return false
		}
		if n := len(pk.Connect.WillPayload); n > maxStatusSize {
			h.deny("connect refused: will larger than a status may be",
				"user", identity, "bytes", n, "max", maxStatusSize, "remote", remote)
			return false
		}
	}
	cl.Properties.Username = []byte(identity)
	if g, ok := cl.Net.Conn.(*gatedConn); ok {
		g.loggedIn()
	}
	return true
}

// OnACLCheck is called with a topic name for publishes and deliveries and with
// a filter for subscriptions. A delivery the access rules allow is also
// refused when the receiving session's queue is over its bounds (queue.go).
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	if h.allowed(user, topic, write) {
		return write || h.isSubscribeCheck(cl, topic) || h.queues.admit(cl, topic)
	}
	op := "subscribe/read"
	if write {
		op = "publish"
	}
	h.deny("access refused", "op", op, "user", user, "client", cl.ID, "topic", topic)
	return false
}

// OnPublish runs after OnACLCheck has admitted the topic. It drops (acks and
// forgets, as mosquitto does with message_size_limit) a message larger than
// its leaf allows, and a retained message anywhere but a box's own status:
// so a box can make the broker keep one message of at most maxStatusSize,
// and the cloud none. CodeSuccessIgnore is the one way to drop that mochi
// honours for MQTT 3.1.1 clients at every QoS.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	user := string(cl.Properties.Username)
	if pk.FixedHeader.Qos == 0 {
		h.deny("publish dropped: QoS 0 (every SmartBox message is QoS 1)", "user", user, "client", cl.ID,
			"topic", pk.TopicName, "bytes", len(pk.Payload))
		return pk, packets.CodeSuccessIgnore
	}
	_, leaf, _ := splitTopic(pk.TopicName)
	if max := leafRules[leaf].maxSize; len(pk.Payload) > max {
		h.deny("publish dropped: message too large for its topic", "user", user, "client", cl.ID,
			"topic", pk.TopicName, "bytes", len(pk.Payload), "max", max)
		return pk, packets.CodeSuccessIgnore
	}
	if pk.FixedHeader.Retain && !retainAllowed(user, pk.TopicName) {
		h.deny("publish dropped: retained message outside the box's status", "user", user, "client", cl.ID,
			"topic", pk.TopicName, "bytes", len(pk.Payload))
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// retainAllowed: only a box may retain, and only on its own status. (The
// cloud may not publish to a status at all, whatever its name.)
func retainAllowed(user, topic string) bool {
	return box.ValidID(user) && topic == wire.Topic(user, wire.LeafStatus)
}

// allowed says whether user may publish to (write) or read topic (a topic
// name, or a subscription filter).
func (h *authHook) allowed(user, topic string, write bool) bool {
	if user == "" {
		return false
	}
	if user == h.cloud {
		return CloudAllowed(topic, write)
	}
	return box.ValidID(user) && BoxAllowed(user, topic, write)
}

// BoxAllowed says whether box boxID may publish to (write) or subscribe with
// topic: only to exactly smartbox/v1/<boxID>/<leaf> with a leaf the box
// publishes (status, sync/request, events, command/result) or, to read, one
// the cloud publishes (records, events/ack, command). A filter with a
// wildcard is refused even when it would match only the box's own topics:
// "smartbox/v1/<boxID>/#" matches its status and events too, which the
// cloud alone reads; the box subscribes to its three read leaves by name.
func BoxAllowed(boxID, topic string, write bool) bool {
	id, leaf, ok := splitTopic(topic)
	rule, known := leafRules[leaf]
	return ok && known && id == boxID && box.ValidID(boxID) && rule.boxPublishes == write
}

// CloudAllowed says whether the cloud user may publish to (write) or read
// topic: the reverse of a box's rights, for every box. It reads
// smartbox/v1/+/<leaf> or smartbox/v1/<box>/<leaf> for each leaf a box
// publishes, also through a shared subscription ($share/<group>/<filter>,
// so that several bridge instances can split the load), and publishes to
// smartbox/v1/<box>/<leaf> for each leaf a box reads.
func CloudAllowed(topic string, write bool) bool {
	if rest, ok := strings.CutPrefix(topic, "$share/"); ok && !write {
		group, filter, ok := strings.Cut(rest, "/")
		if !ok || group == "" || strings.ContainsAny(group, "+#") {
			return false
		}
		topic = filter
	}
	id, leaf, ok := splitTopic(topic)
	rule, known := leafRules[leaf]
	return ok && known && rule.boxPublishes != write && (box.ValidID(id) || (id == "+" && !write))
}

// splitTopic splits smartbox/v1/<id>/<leaf> into id and leaf; the leaf may
// have several levels ("events/ack") and is not checked here.
func splitTopic(topic string) (id, leaf string, ok bool) {
	rest, ok := strings.CutPrefix(topic, wire.Root+"/")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "/")
}
