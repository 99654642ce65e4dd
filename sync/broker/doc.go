// Package broker is the embedded MQTT broker that the bridge and the
// simulator start by default: mochi-mqtt with SmartBox's authentication and
// per-box access control, persistence across restarts, and message expiry
// long enough for a box that is offline over a weekend.
//
// A depot runs one bridge with this broker inside. A fleet points the bridge
// and its boxes at an existing broker by URL instead (mosquitto, EMQX,
// HiveMQ...), with the same rules written as that broker's ACL; see
// sync/README.md.
//
// # Who may connect
//
// A box authenticates as user = its box id with a password, or with a TLS
// client certificate, signed by Config.TLS.ClientCAs, whose subject CN is its
// box id (then no password is needed, and a user name, if sent, must equal
// the CN). The cloud user (Config.CloudUser) authenticates the same way.
// Passwords are stored as bcrypt hashes (HashPassword, CheckPassword), never
// in clear.
//
// A box must use its box id as its MQTT client id. The client id names the
// session: were a box free to pick one, box A could connect as client "box-b"
// and take over box B's persistent session, kicking B off and swallowing the
// messages queued for it. For the same reason no user may resume a session
// that another user created (the cloud's "smartbox-cloud-1" is safe from a
// box that happens to be called that).
//
// # What each user may touch
//
// A box may publish and subscribe only under smartbox/v1/<its id>/ (the tree
// of wire.BoxFilter). Subscription filters are checked as filters, not as
// topics: "#", "smartbox/v1/#" and "smartbox/v1/+/records" all match other
// boxes' topics and are refused, even though each also matches the box's own.
// A will message is a publish too, made later by the broker on the client's
// behalf: a connect whose will topic lies outside the box's tree is refused.
// The cloud user may use everything under smartbox/v1/ (and shared
// subscriptions, $share/<group>/smartbox/v1/..., so that several bridge
// instances can split the load). Nobody may touch anything else, $SYS
// included. mochi also checks the read rule again when it delivers each
// message. Every refusal is logged at warn level with "security" set and
// counted (Broker.Denied).
//
// # Expiry
//
// mochi removes retained messages and messages queued for offline clients
// once they are older than Capabilities.MaximumMessageExpiryInterval, for MQTT
// 3.1.1 clients as well as v5 ones (mochi-mqtt/server#444), and its default is
// 24 hours: a box switched off on Friday evening would lose its queued record
// batches and the cloud the box's retained status. Config.MessageExpiry sets
// it (30 days by default). Sessions of clients with CleanSession=false are
// kept for MaximumSessionExpiryInterval, which is left at its maximum (about
// 136 years): a box that comes back after a month finds its subscriptions.
// Nothing in the protocol depends on this queue (the revision handshake and
// the event outbox repair whatever a broker forgets), but a kept queue makes
// recovery quick and cheap.
//
// # Persistence
//
// With Config.DataDir set, sessions, subscriptions, retained messages and
// queued (in-flight) QoS 1/2 messages are kept in a bbolt file,
// DataDir/broker.bolt, through mochi's bolt storage hook. Of mochi's storage
// hooks it is the one that builds with what we already depend on (bbolt, as
// store/ uses); badger and pebble would each pull in a second storage engine
// with dozens of modules for the same job, and redis needs a server. mochi
// marks the bolt hook as kept for compatibility rather than developed; its
// contract is the same storage.Hook the others implement, and the tests here
// pin the behaviour we rely on (a queued message and a retained status
// survive a restart). bbolt commits fsync, so each stored change costs a disk
// flush: to spare SD cards the $SYS statistics, which mochi would otherwise
// write to the store every second, are refreshed once a minute.
//
// # Caveats
//
//   - Password checks cost a bcrypt comparison per connect, on purpose.
//   - Packets larger than wire.MaxMessageSize plus room for the topic are
//     refused by the broker, so a client cannot make it buffer a huge message.
//   - Two mochi v2.7.9 defects are worked around here: the bolt hook stores
//     queued messages without their packet ids (store.go), and a connection
//     accepted while the server closes races on its client WaitGroup
//     (listener.go).
//   - mochi refuses a MQTT 3.1.1 client's QoS 1 publish outside its tree by
//     closing the connection (v3 has no negative PUBACK); mosquitto acks and
//     drops it. Either way nothing is delivered.
//   - Rate limiting of a flooding box is the cloud's job (sync/README.md);
//     the broker only keeps a box inside its own tree.
package broker
