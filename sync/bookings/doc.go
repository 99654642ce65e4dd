// Package bookings is the Fleetio integration of the SmartBox bridge: an
// Integration turns Fleetio vehicle assignments into bookings, each a grant
// on a box, writes the Keycafe custom fields back to the assignment and
// tells the driver.
//
// # Basics
//
// A Store keeps the integration's connection settings, the key <-> vehicle
// links, a durable queue of webhook deliveries, the bookings made from
// assignments, the pending Prompt reservations and the drivers' codes
// (sealed). It has two engines behind one seam (store_engine.go): one bbolt
// file, mode 0600, for one bridge process (OpenStore, the default), or the
// bookings_ tables of a PostgreSQL database that any number of replicas
// share (OpenPostgresStore; migrations/ applied at open). Both keep the same
// JSON documents; CopyToPostgres moves a depot's file into an empty
// database.
//
// Webhook (POST /webhooks/fleetio) bounds the body, verifies Fleetio's
// signature, de-duplicates by delivery id and stores the delivery before it
// answers 2xx: Fleetio wants an answer within about 30 s and retries failures,
// so nothing slow (no Fleetio call, no box push) happens on that path. What
// the headers can tell is judged before the body is read: a missing or
// malformed signature header, a wrong fixed Authorization, a Content-Length
// over Options.MaxBody (64 KiB by default: a delivery is about 1 KB) and
// the integration not connected are refused unread, the connection closed.
// At most Options.MaxBodiesInFlight bodies (32) are read at once, so
// webhooks hold at most that times MaxBody in memory; one more is answered
// 503 with Retry-After. A forger who sends a well-formed but wrong
// signature still has a body read (the HMAC needs it), within those bounds:
// one client address (an IPv6 /64) has at most Options.MaxBodiesPerAddress
// (2) of the slots, and a body must arrive within Options.BodyTimeout (5 s;
// 408 otherwise), so slow forgers hold a slot for seconds and need 16
// addresses to hold them all. Behind a reverse proxy every request comes
// from the proxy: list it in Options.TrustedProxies (the config's
// fleetio.trusted_proxies) and the share is counted by the right-most
// X-Forwarded-For entry that is not a trusted proxy, the one the proxy
// appended. The stronger defence is a fixed Authorization header on
// Fleetio's webhook (Settings.Authorization, given at connect): a request
// without it is refused before its body, so a forger without that value
// gets no body read at all.
//
// Run's workers drain the queue in two lanes (queue.go), each with up to
// Options.Workers (default 8) at once, so that what waits on Fleetio never
// holds up what does not:
//
//   - intake (Integration.intake): a webhook of Fleetio's is acted on from
//     its payload, with no Fleetio call. The body was verified at the
//     webhook, so the payload is Fleetio's word at the time it was sent;
//     when its updated_at is newer than what the booking was made from, the
//     booking is made, changed or ended from it (applyAssignment with no
//     client) and its grant pushed or revoked at once. A deletion revokes
//     at once too (and records an assignment not booked yet as ended, so
//     that its created delivery, reordered behind it, makes no grant). A
//     payload older than or equal to what is held (late, reordered,
//     replayed) changes nothing. Either way the assignment's confirm is
//     owed: an internal delivery (EventConfirm) named by the booking
//     (ConfirmID, PendingConfirm), one per assignment however many
//     deliveries ask for it before it runs.
//   - confirm (Integration.confirm): the bridge's own deliveries read the
//     assignment back, and the booking and its grant follow what they read:
//     the read-back is the truth, so a payload Fleetio disagrees with (a
//     changed window, vehicle or driver, the assignment gone or ended) is
//     repaired; a read-back older than the payload acted on (Fleetio's API
//     behind its own webhook) is tried again later. Then what is owed is
//     done (settleOwed): the write-back of the custom fields, one PATCH
//     with the latest fields however many changes came before it, and the
//     driver's message (a driver is told only once the read-back
//     confirms). Each step is stored as done on the booking, so a stopped
//     confirm (a restart, an error) does only what is left.
//
// Every Fleetio request takes a token from one budget (fleetio.Budget:
// Options.FleetioPerMinute and FleetioBurst, a token bucket of
// DefaultFleetioPerMinute, 300 a minute, bursts of 30, by default; or
// Options.FleetioBudget, which a budget shared by replicas can replace),
// and a 429's Retry-After pauses it for every caller. A confirm takes its
// first token before it claims its assignment and never waits on the
// budget while it holds it (fleetio.Prepaid): a request that finds no free
// token stops the confirm (ErrBudgetSpent, not a failure) until its lane
// has the next one, so a payload of that assignment never waits behind a
// spent budget. A Fleetio outage or 429 leaves the confirm queued with a
// next-attempt time; nothing is lost, and the grant did not wait for it.
//
// Two deliveries of one assignment never run at the same time, whatever
// their lane, and run in order; the bookings of a driver who uses a driver
// code are processed one at a time (their code is drawn once, its grant put
// once per box); Disconnect, CreateBooking, the driver code calls and each
// Reconcile repair wait for the deliveries in progress and run alone. Two
// PINs drawn at once for one box cannot both be taken: the cloud refuses a
// code in use, and the worker draws again. See queue.go (workerPool).
//
// # Replicas
//
// On PostgreSQL all of that holds across the replicas that share the
// database (each an Integration, Options.Replica naming it): a delivery is
// claimed in the store before it runs (Store.ClaimDelivery: not while
// another replica holds it or another delivery of its assignment, nor
// before a lower one of its assignment that is due), with a lease
// (Options.ClaimLease, DefaultClaimLease 30 s) that Run renews while the
// delivery runs; a replica killed leaves its claims to lapse, and the
// others take them up. Drain, on SIGTERM, stops claiming, lets what runs
// finish (bounded) and releases the replica's claims at once. A webhook
// wakes only the replica that stored it: the others find what it leaves
// (drained, killed or busy) at their next look at the queue, every
// sharedPollInterval (2 s) on a shared store. The work,
// driver and alerts locks are PostgreSQL advisory locks (locks.go), each
// wait bounded (lockWait), so the exclusive operations, the drivers'
// serialisation and SendAlerts hold across replicas; a driver's message is
// part of its delivery and goes out with it, once. NewPostgresBudget is a
// Fleetio request budget the replicas share (one row, refilled by the
// database's clock), with a 429's pause shared the same way; give it as
// Options.FleetioBudget. On bbolt (one process) the claims and locks are
// in memory, as they always were.
//
// # Loops
//
// The integration's own PATCH of the custom fields makes Fleetio send a
// vehicle_assignment_updated delivery. The confirm records the updated_at
// the PATCH returned (when the PATCH's answer still shows what it acted
// on); the echo, whose payload carries that updated_at and the booking's
// vehicle, driver and window, is marked done with nothing owed. A payload
// or read-back that is not newer, or that changes nothing the booking
// depends on (window, driver, vehicle), does nothing.
//
// # Connecting
//
// Connect checks the API key and account token with Fleetio (users/me) and
// only then stores them with the webhook secret; until then, and after
// Disconnect, the webhook answers 503 and stores nothing. Disconnect revokes
// the grants of bookings that have not started (clearing their Fleetio
// fields, best effort), keeps those in progress until their end so that the
// driver can bring the key back, drops the queue and the pending
// reservations, and forgets the secrets: settings, sealed PINs and driver
// codes. Links, booking records and the code mode stay.
//
// SetLink ties a vehicle to a key the box has in the cloud's records, with a
// LinkMode: Automatic books at once; Prompt records a Reservation and tells the
// admin, who calls CreateBooking, optionally with another window and a
// contact method (email or SMS). The approval is stored and queued as a
// delivery of the integration's own before anything else happens, so a crash or a
// Fleetio failure half-way is finished by the worker; from then on the
// booking follows Fleetio as an Automatic one does, except that the admin's
// window stays until Fleetio's window of the assignment changes.
//
// # Codes
//
// Booking PINs are 6 digits from crypto/rand, never a trivial sequence. The
// cloud (sync/cloud) is what knows every code of a box, encrypted; it refuses a
// code another active or future grant of the box holds (ErrCodeInUse), and the
// worker then draws again. The integration keeps a PIN, sealed with AES-GCM, only
// until it has been written back to Fleetio and sent to the driver.
//
// The code mode (SetCodeMode) says what the driver types:
//
//	per_assignment  a new PIN for each assignment (the default)
//	per_driver      one code per driver, drawn once and kept sealed, the same
//	                on every box and assignment
//	driver_own      the driver's own code, set by the admin (SetDriverCode);
//	                a driver without one gets per-assignment PINs (logged)
//
// In the last two, the driver's code is a driver-code grant
// "fleetio-driver-<contact>" with DriverRef "fleetio:<contact>" on each box
// where the driver has a booking; every booking grant carries the same
// DriverRef, so the box opens the driver's active bookings with it. A booking
// grant still needs a code of its own: it gets 16 random digits nobody is
// told. The driver-code grant is revoked on a box once the driver has no
// active or future booking there. A drawn code that another grant of a box
// holds is drawn again (and the driver's other bookings told the new one); an
// own code that clashes is refused by SetDriverCode with ErrDriverCodeInUse,
// and a booking on a box where it clashes falls back to a PIN.
//
// # Box events, overdue keys, reconciliation
//
// HandleEvents (registered with cloud.OnEvents) ties each box event to the
// booking it belongs to: by the booking's grant, by the driver's code grant
// and the window, by the key for a take or a return, and wrong codes or
// lockouts at the box to every booking whose window holds them. It only
// writes the store (its watch side: events, holders, overdue flags,
// returns, the seq seen per box) and fills a gap in a box's seq from the
// cloud's copy.
// BookingEvents lists them. CheckOverdue raises "key_overdue" once for a
// booking whose window is over (plus Options.OverdueGrace) while its key is
// out and its box is not reported offline, and tells the driver and the
// admin. Reconcile lists every linked vehicle's current and future
// assignments, reads everything first (a Fleetio error changes nothing) and
// then repairs what missed webhooks left wrong. RunMaintenance runs event
// catch-up, Reconcile and CheckOverdue on a ticker.
//
// # A fob alone is weak evidence
//
// EM4100 fob UIDs are copied with a ten-euro tool, so a key_returned is
// taken as proof that the key is back only when it says so: return_by
// "remote" (the slot was opened by a signed command), or "fob" with the
// slot's key sensor having seen a key seated (seated_ms) for at least
// Options.ReturnSettle (default 2 s, the box's own settle time). Any other
// return, including one without return_by from firmware older than the
// field (fail secure), is attached to the booking marked unconfirmed
// ("return_by: fob", "not confirmed by the slot sensor"), but the key still
// counts as out with its booking: an overdue alert stays raised
// (OverdueKeys), one is raised when the window ends, and the admin is told
// (return_unconfirmed). The next take of the key from its slot proves it
// was back and clears the alert.
//
// The sensor says something sat in the slot, not which key: a copied fob
// plus any object pressed on the sensor for the settle time passes. Pulling
// the object out afterwards is seen by the box as a slot_unexpected
// removal ("key removed from a locked slot", the slot only); the integration
// finds the slot's key from the box's keys and, when that key's last
// return was proven within the day before (removalWatch) and it has not
// been taken since, undoes the return: the booking holds the key again, an
// overdue alert the return cleared is raised again (the same alert: no
// second key_overdue, the driver not told twice), the return is marked
// unconfirmed and the admin is told (return_unconfirmed, the reason
// "removed from its locked slot ... after the return"). A return inside the
// window undone that way leaves the key overdue when the window ends. The
// limit that remains: an object left in the slot still looks returned
// until someone looks (or the next driver finds no key); a removal more
// than a day after the return is the box's slot_unexpected for the admin
// to look into, not held against the booking.
//
// # Alerts to the admin
//
// HandleEvents queues, in the transaction that marks the events handled, an
// alert to Options.Admin for each keypad_attack (a box saw wrong codes past
// its threshold: someone may be guessing), each keypad_closed (wrong codes
// spent the box's guess budget: no code is checked until the time the
// message gives, or until the admin runs the restore-keypad command it
// quotes) and each unconfirmed return; Run sends them at once (within
// seconds of the box's batch reaching the cloud), retrying a failed message
// with back-off. keypad_attack messages about one box are at most one per
// 15 minutes, the wrong codes reported meanwhile added to the next;
// keypad_closed is never held (a box closes at most once per refill or
// restore). Stats counts keypad attacks, closures and unconfirmed returns.
//
// # The live receipt
//
// Each put of a booking's grant records the box's records revision that
// holds it (Booking.GrantRev; a changed PIN or window is a new one). A box
// publishes its status, with the revision it holds, after it applies
// records; HandleStatus (registered with cloud.OnStatus, on whichever
// replica the status lands) makes every booking of the box waiting for that
// revision or an older one live (Booking.LiveAt: when the cloud received the
// status). A grant changed after it was live is not live until the box
// reports its new revision; PutBooking keeps the receipt of an unchanged
// grant, so a writer holding an older copy does not undo it. CatchUpLive
// applies the statuses the cloud kept (one that arrived while the bridge was
// down). CheckLive raises a not_live alert once per grant for a booking
// whose start is within Options.LiveAlertBefore (10 minutes by default) and
// whose grant the box has not applied. The access page says "Your code is
// active on <box> since <time>", or that it is on its way. The bookings
// waiting for their box are indexed by box in both engines (waitingFor,
// storeTx.putBooking), so a status reads its box's few and not every
// booking kept.
//
// # Notifications
//
// The integration builds sync/notify's Message itself (notify.Recipient,
// notify.Kind, the data in notify's Data* keys, the booking's ContactMethod
// as notify.Method) and hands it to Options.Notifier: the service's
// *notify.Dispatcher renders it with the deployer's templates and sends it
// by email or SMS. Options.Zone shows times in the box's zone,
// Options.AdminLink says where the admin makes a Prompt booking. The
// driver gets the PIN only in booking_created (and when a driver code is
// redrawn); an update of the window says the PIN is unchanged.
//
// # Stats
//
// Stats counts webhooks (accepted, rejected, ignored, duplicate, busy), grants
// pushed and revoked, Fleetio errors, notifications sent and failed, overdue
// keys and reconcile repairs, and reads the queue depth from the store.
//
// # Caveats
//
// The sealing key lives in the store (the file, or the bookings_meta table;
// like sync/cloud's default code key): it keeps PINs and driver codes out of a casual dump, not from someone
// holding the file. A booking in progress at Disconnect keeps its grant with
// no word from Fleetio any more; an open-ended one stays until the admin
// revokes it. Overdue is judged on what boxes have reported: a box offline
// is judged once it is back, but one that lost its network without saying
// so (its last will not yet out) may hold a return the cloud has not heard of.
//
// # Files
//
//	integration.go    Integration, Options, New, the defaults
//	booking.go        Booking, BookingState, Reservation, BookingEdit
//	delivery.go       Delivery, DeliveryState, the integration's own delivery events
//	link.go           Link, LinkMode, BoxInfo
//	settings.go       Settings (the connection's secrets)
//	store.go          Store, the sealing helpers
//	store_engine.go   the engine seam: tables, keys, transactions
//	store_bolt.go     the bbolt engine: OpenStore, the buckets
//	store_pg.go       the PostgreSQL engine: OpenPostgresStore; migrations/
//	store_copy.go     CopyToPostgres: a bbolt file into PostgreSQL
//	store_settings.go storing settings, the code mode, boxes and links
//	store_queue.go    storing deliveries: the queue, ClaimDue
//	store_claims.go   the queue's claims across replicas: ClaimDelivery, RenewClaims, ReleaseClaims
//	store_bookings.go storing bookings, access tokens and reservations
//	store_codes.go    storing drivers' codes (sealed)
//	store_watch.go    storing box events tied to bookings, holders, overdue flags
//	webhook.go        the webhook handler; bodyslots.go its body bounds
//	queue.go          Run, Drain, the lanes and their worker pools, ProcessDue, inflight
//	locks.go          the work, driver and alerts locks: memory, or PostgreSQL advisory locks
//	budget_pg.go      PostgresBudget: a Fleetio request budget replicas share
//	process.go        a delivery: processOne, its retry and back-off; intake
//	                  (from the payload), confirm (the read-back), echoes
//	apply.go          an assignment: applyAssignment, book, finish, end, prompt
//	createbooking.go  CreateBooking: the admin's booking of a Prompt reservation
//	message.go        what people are told: notify.Message built from a booking
//	connect.go        Connect, Disconnect, SetLink, Unlink, the listings
//	codes.go          CodeMode, driver codes; pin.go drawing PINs
//	access.go         the driver's access page
//	events.go         HandleEvents: box events tied to bookings
//	overdue.go        CheckOverdue; removal.go a return undone by a removal
//	alerts.go         the admin's alerts (keypad_attack, keypad_closed, return_unconfirmed, not_live)
//	live.go           the live receipt: HandleStatus, CatchUpLive, CheckLive, LiveText
//	store_live.go     storing it: keepLive, waitingFor (the waiting index), boxHolds, raiseNotLive
//	expire.go         ExpireEnded; reconcile.go Reconcile (the sweep)
//	maintenance.go    RunMaintenance; stats.go Stats
package bookings
