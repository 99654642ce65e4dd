package broker

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// authHook is the broker's authentication and access control (see doc.go).
type authHook struct {
	mqtt.HookBase
	cloud    string
	lookup   func(name string) (hash string, ok bool)
	sessions *mqtt.Clients // to see who owns an existing session
	log      *slog.Logger
	denied   atomic.Uint64
}

func (h *authHook) ID() string { return "smartbox-acl" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// deny logs a refusal as a security event and counts it.
func (h *authHook) deny(msg string, args ...any) {
	h.denied.Add(1)
	h.log.Warn(msg, append([]any{"security", true}, args...)...)
}

// certIdentity is the CN of a client certificate that the TLS handshake
// verified against the configured ClientCAs, or "" when there is none. Only
// verified chains count: a listener configured with tls.RequestClientCert
// would hand us unverified certificates.
func certIdentity(cl *mqtt.Client) string {
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState() // the handshake completed when CONNECT was read
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

// OnConnectAuthenticate decides who the client is and whether it may connect.
// It records the identity as the client's user name, which the ACL and the
// session store use from then on.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	remote := cl.Net.Remote
	identity := user
	if cn := certIdentity(cl); cn != "" {
		if user != "" && user != cn {
			h.deny("connect refused: user name differs from client certificate",
				"user", user, "cert_cn", cn, "client", cl.ID, "remote", remote)
			return false
		}
		identity = cn
	} else {
		hash, ok := h.lookup(user)
		if user == "" || !ok || !CheckPassword(hash, string(pk.Connect.Password)) {
			h.deny("connect refused: bad user name or password", "user", user, "client", cl.ID, "remote", remote)
			return false
		}
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
	if pk.Connect.WillFlag && !h.allowed(identity, pk.Connect.WillTopic, true) {
		h.deny("connect refused: will topic outside the user's tree",
			"user", identity, "topic", pk.Connect.WillTopic, "remote", remote)
		return false
	}
	cl.Properties.Username = []byte(identity)
	return true
}

// OnACLCheck is called with a topic name for publishes and deliveries and with
// a filter for subscriptions.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	if h.allowed(user, topic, write) {
		return true
	}
	op := "subscribe/read"
	if write {
		op = "publish"
	}
	h.deny("access refused", "op", op, "user", user, "client", cl.ID, "topic", topic)
	return false
}

// allowed says whether user may use topic (a topic name or a filter).
func (h *authHook) allowed(user, topic string, write bool) bool {
	if user == "" {
		return false
	}
	if user == h.cloud {
		return cloudAllowed(topic)
	}
	return box.ValidID(user) && BoxAllowed(user, topic)
}

// BoxAllowed says whether box boxID may publish to, or subscribe with, topic
// (a topic name or a filter): only if every topic it can match lies in the
// box's own tree, smartbox/v1/<boxID> and below (wire.BoxFilter).
func BoxAllowed(boxID, topic string) bool {
	own := wire.Root + "/" + boxID
	if topic == own {
		return true
	}
	// Wildcards after the box's own level cannot leave its tree; a wildcard
	// at or before it ("+", "#" or a box id of "+") can, and fails here.
	return strings.HasPrefix(topic, own+"/") && !strings.ContainsAny(boxID, "+#/")
}

// cloudAllowed: the cloud may use the whole tree, directly or through a
// shared subscription ($share/<group>/<filter>).
func cloudAllowed(topic string) bool {
	if rest, ok := strings.CutPrefix(topic, "$share/"); ok {
		_, filter, ok := strings.Cut(rest, "/")
		if !ok {
			return false
		}
		topic = filter
	}
	return topic == wire.Root || strings.HasPrefix(topic, wire.Root+"/")
}
