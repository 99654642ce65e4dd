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
// A certificate issued by Config.BoxCA (the bridge's own CA) must also
// carry the serial Config.BoxCertSerial gives for its box: provisioning a
// box again shuts out the certificate on its old card (certcheck.go).
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
// # Before login
//
// A connection has 10 s (connectTimeout) for its TLS handshake and its
// whole CONNECT; mochi then replaces that deadline with the client's
// keepalive (1.5 times it, refreshed at each packet; none for a client that
// asks for keepalive 0, as MQTT says). Its first packet must
// be a CONNECT that declares at most 8 KiB (maxConnectSize: a real one is a
// box id, a password and a status will of at most 4 KiB), checked from the
// fixed header as it is read (gatedConn), before mochi allocates the packet:
// mochi's own size limit is one value for all packets and must admit a
// 1 MiB event batch. At most 16 connections from one address (an IPv4
// address or an IPv6 /64) and 256 in all may be open and not logged in yet;
// past that a new connection is closed at once. Each refusal is a security
// event (Broker.RefusedConnections), logged at most once per 10 s with the
// count. So connections that never log in hold at most about 20 MB, each
// for at most 10 s; an attacker with 16 addresses can keep the 256 places
// full, and boxes are then refused until one frees (paho retries).
//
// # What each user may touch
//
// A box may use only the leaves it needs, under smartbox/v1/<its id>/ and by
// their exact names: publish status, sync/request, events and
// command/result; read (subscribe to) records, events/ack and command
// (BoxAllowed). A filter with a wildcard is refused even when it stays in
// the box's own tree: smartbox/v1/<id>/# would also read the box's own
// status and events, and "#", "smartbox/v1/+/records" match other boxes'
// topics. A box publishing to its records, events/ack or command (forging
// what the cloud signs) is refused like a publish into another box's tree.
// The cloud user (Config.CloudUser) has the reverse, for every box
// (CloudAllowed): it reads the four box leaves, as smartbox/v1/+/<leaf> or
// for one box, also through shared subscriptions
// ($share/<group>/smartbox/v1/..., so that several bridge instances can
// split the load), and publishes the three cloud leaves. Nobody may touch
// anything else, $SYS included. mochi also checks the read rule again when
// it delivers each message. Every refusal is logged at warn level with
// "security" set and counted (Broker.Denied).
//
// A will message is a publish too, made later by the broker on the client's
// behalf: a connect with a will is refused unless the client is a box and
// the will's topic is its own status, of at most a status's size.
//
// # Retained messages and sizes
//
// Only a box's own status may be retained. A retained publish anywhere else
// (a box's events, say) is acked and dropped, not delivered, and counted:
// with the ACL above that is the per-client cap, one retained message per
// box, of at most 4 KiB, and none for the cloud. At start the broker also
// deletes from its store any retained message these rules forbid (left by
// an older version, when a box could retain anything in its tree).
//
// Each leaf bounds its messages' payload (leafRules): status and
// sync/request 4 KiB (a real one is a few hundred bytes; the status is what
// the broker keeps for 30 days), command/result 16 KiB (it carries an error
// text), events, records, events/ack and command wire.MaxMessageSize (what
// a receiver accepts at all; snapshots are chunked below it). A larger
// message is acked and dropped (mochi's CodeSuccessIgnore; mosquitto's
// message_size_limit does the same, but for all topics at once).
//
// # Failed logins
//
// A wrong password costs a bcrypt comparison, about 64 ms of a core, so
// failures are paced by who fails (logins.go). Failures are counted per
// user at an address and per address (an IPv4 address, or an IPv6 /64):
//
//   - after 5 failures of one user from one address, logins of that user
//     from there are refused without a check for 1 s, doubled with each
//     further failure, up to 5 minutes; forgotten after an hour without a
//     failure, or at that user's next success from there;
//   - after 20 failures from one address (counting only each user's first
//     5, so one box with a stale password never trips it), every login from
//     there backs off the same way, up to 1 minute; forgotten after 10
//     minutes without one; a success does not reset it;
//   - at most 2 checks run at once, plus 1 kept for a user known at its
//     address (one that has logged in from there since the broker started:
//     the bridge's cloud user, a box reconnecting); a login that waits 1 s
//     for a slot is refused unchecked, and if its user is not known there,
//     the refusal counts as a failure of its address (so an address that
//     only ever queues for slots backs off too). The tables hold at most
//     4096 entries each (about 1 MB), forgotten entries dropped first, then
//     random ones.
//
// A login in back-off is refused even with the right password: that is the
// point. The two bounds this gives:
//
//   - Guesses: an address gets 20 checks, then about one a minute, at most
//     about 1 500 a day over all users, and one user about 300 a day from
//     it. An attacker with many addresses gets that per address, but never
//     more than 2 concurrent checks of the broker's CPU (2 cores of the Pi
//     4's 4; the reserved check makes 3 at most, the bridge keeps one).
//   - Denial: only logins from the attacker's own address (or /64) back
//     off. A box behind another address is never refused for someone
//     else's failures; one behind the same NAT as the attacker is kept out
//     while the attack goes on and at most 5 minutes after it stops. The
//     check slots are the one shared resource: keeping both busy takes
//     about 31 failed checks a second, from some 1 900 addresses in
//     back-off (one a minute each) or about 90 fresh addresses a minute (20
//     each). Under such an attack the bridge and every box known at its
//     address log in through the reserved slot; a box never seen waits for
//     a slot at most 1 s and, if refused, paho connects again.
//
// Client-certificate logins cost no bcrypt check and are not paced.
//
// # Queues
//
// What the broker holds for a session, the QoS 1 and 2 messages delivered
// to it and not yet acked (all of an offline persistent session's queue, and
// what a slow reader has not read), is bounded in bytes and in messages
// (queue.go), not only by mochi's count of 8192:
//
//   - the cloud's session: 8 MiB and 1024 messages from each box, 64 MiB
//     and 4096 messages in all. One box's password can make the broker hold
//     8 MiB for the cloud, and cannot crowd the other boxes out;
//   - a box's session: 16 MiB and 1024 messages (the largest snapshot it
//     may need at once; see Caveats).
//
// A delivery past a bound is dropped (the publisher still gets its PUBACK),
// counted (Broker.QueueDropped) and logged as a security event once when
// the dropping starts and once when the queue has drained to half its bound.
// The protocol repairs what is dropped: a box sends each event batch until
// the cloud's signed ack (a dropped batch costs a resend, not an event), its
// status is retained and sent again at each subscribe, a box asks for the
// records after its revision on every connect, at a gap and every 15
// minutes, and a dropped command expires unanswered. Messages loaded from
// the store at start count against the bounds. QoS 0 publishes are dropped
// and counted: every SmartBox message is QoS 1, and mochi holds QoS 0
// deliveries to a slow reader in a write queue bounded only by count.
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
//   - Password checks cost a bcrypt comparison per connect, on purpose; see
//     "Failed logins" for how failures are paced.
//   - Packets larger than wire.MaxMessageSize plus room for the topic are
//     refused by the broker, so a logged-in client cannot make it buffer a
//     huge message; before login the limit is 8 KiB (see "Before login").
//   - A snapshot larger than a box session's bound (16 MiB, about 40 000
//     records) never arrives whole at a box that reads slower than the
//     cloud publishes: its tail is dropped each time, and the box asks
//     again. A key locker has far fewer records.
//   - Per-box shares exist only in the cloud's session: mochi's hooks tell
//     the broker a delivery's session and topic, and the topic names the box.
//   - mochi v2.7.9 shares packet ids between what a client sends and what it
//     is sent: a SUBSCRIBE whose id is that of a message in flight to the
//     client is refused (0x91). The cloud subscribes again on each connect
//     and may see this while its queue is sent; its session keeps the
//     subscription, so nothing is lost.
//   - Three mochi v2.7.9 defects are worked around here: the bolt hook
//     stores queued messages without their packet ids (store.go); a
//     connection accepted while the server closes races on its client
//     WaitGroup; and a box whose login was in its password check as the
//     server closed became a client after the server disconnected its
//     clients, and Close waited for it as long as it stayed (listener.go).
//   - mochi refuses a MQTT 3.1.1 client's QoS 1 publish outside its tree by
//     closing the connection (v3 has no negative PUBACK); mosquitto acks and
//     drops it. Either way nothing is delivered.
//   - Rate limiting of a flooding box is the cloud's job (sync/README.md);
//     the broker only keeps a box to its own leaves and sizes.
package broker
