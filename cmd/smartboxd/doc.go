// Command smartboxd is the daemon on a SmartBox key locker. It wires the
// keypad, the slots (lock relays, key-present sensors, LEDs), the RFID fob
// reader, the store (DIR/box.db) and the box controller from one TOML config
// file, and runs until SIGTERM or SIGINT, when it relocks every slot and
// exits 0.
//
// Usage:
//
//	smartboxd [--config /etc/smartbox/smartboxd.toml] [--hardware sim] [--data DIR] [--log-level info]
//	          [--socket PATH] [--socket-group NAME] [--sim-clock RFC3339] [--sim-keys all|none|1,2,5]
//
// The config is decoded strictly: an unknown key, a pin list of the wrong
// length or a malformed duration stops smartboxd before it touches any
// hardware, with a message naming the file, line and field. See
// cmd/smartboxd/smartboxd.example.toml.
//
// # Fail secure
//
// Every slot lock is de-energised the moment its pin is found: the lock pins
// are looked up first and each is driven Low at once, before the other pins,
// the cloud's files, the store, the keypad, the reader and the link, any of
// which may fail. A daemon that crashed with a slot released and restarts
// onto a store that will not open (corrupt, held by another process, another
// box's card) exits with every lock Low, not as the crash left it. Every exit
// path de-energises the locks again: an error from newDaemon, the end of run,
// and a panic in newDaemon, run or any goroutine they start (a deferred
// close that runs while the panic unwinds, which then goes on and ends the
// process), including the sync link's callbacks on paho's goroutines
// (link.Options.Guard) and hal/slots' relock timer (slots.Options.Guard).
// The controller's timers only post to its loop, which run covers. What a
// SIGKILL or a kernel crash leaves is the next start's to undo, which is why
// it comes first.
//
// # Hardware profiles
//
// "smartbox-v1" opens real GPIO lines by name (periph.io) and the reader's
// UART. "sim" runs the same hal code on simulated pins (sim) and a
// pseudo-terminal reader (sim/rfid), and reads a line console on stdin for
// a person to press keys, tap fobs and take or return keys (type "help").
//
// # The local admin socket
//
// --socket PATH serves HTTP and JSON on a Unix socket (mode 0600: it drives
// the hardware, so only its owner and root may connect; with --socket-group
// NAME it is 0660 with that group, so that its members may too: the systemd
// unit passes smartbox), for as long as the daemon runs. Under systemd
// (RUNTIME_DIRECTORY set) it defaults to $RUNTIME_DIRECTORY/smartboxd.sock,
// boxsocket.DefaultPath for the unit's RuntimeDirectory=smartbox; else there
// is none unless --socket says; the file is removed at stop. A socket file that nothing
// answers on (a killed daemon's) is removed first; one that answers is
// another daemon's, and smartboxd refuses to start. A path longer than the
// 107 bytes of sun_path is refused with a message saying so. The routes and
// their types are in cmd/internal/boxsocket (one definition for the daemon
// and its callers): status (with the sync link's last sync, last ack and
// last refused message, and whether NTP keeps the clock), slots, keys,
// grants (never a code), events, POST /v1/slots/{n}/release (a technician's
// release, recorded as slot_released_locally with who, why and the peer's
// uid from SO_PEERCRED; 409 while the slot is released), and /v1/watch, a
// server-sent event stream of the whole state pushed on every change (the
// sim pins, the keypad entry, every event committed, the sync link
// connecting, dropping or applying records, the clock being set), at most
// one message per 50 ms, with a comment line every 15 s to notice a client
// gone. Its /v1/sim routes act on the simulated board (type on the keypad,
// take or return a key, hold a fob or feed the reader bytes, jam a latch,
// cut a key sensor, set the clock) and answer 404 on real hardware. Every
// body is checked: a malformed one is a 400 with the reason; a move the slot
// will not make (latched, jammed, empty, full) a 409 saying why.
//
// /v1/selftest is a technician's maintenance session (smartboxctl
// selftest): one at a time, refused while a slot is released for a driver.
// While it lasts the keypad, the reader and the key sensors report to the
// session, not the controller (no code or fob opens anything, nor does a
// cloud command), and the client releases and relocks locks itself, each
// release recorded in the outbox (slot_released, purpose selftest) between
// maintenance_began and maintenance_ended. A session its client has not
// spoken to for 60 s ends by itself; at every end every lock is
// de-energised and the controller is told what the key sensors read now.
//
// # Cloud sync
//
// An optional [cloud] table (broker_url, username, password_file, ca_file,
// cert_file, key_file) runs the sync link (sync/link) beside the controller.
// The cloud's signing keys come from the store, set by `smartboxctl
// provision`; [cloud] on a store never provisioned stops smartboxd at start
// with a message saying so. Without [cloud] the box is offline-only.
//
// PIN checks never wait on the network: the controller commits its events to
// the store, and the store adapter the controller is given then kicks the
// link (a non-blocking signal) to drain the outbox. At shutdown the
// controller stops first (every slot relocked, box_stopped recorded), then
// the link gets up to 3 s to have the outbox acknowledged and publishes its
// offline status, then the store closes. The console's "status" shows
// whether the link is connected, the records revision and the outbox depth.
//
// The software version in the box's status, and what --version prints, come
// from cmd/internal/buildinfo (stamped by the Makefile's -ldflags, else the
// module version and VCS commit stamped by go build).
//
// Under systemd (Type=notify; the unit is dist/smartboxd.service) smartboxd
// sends READY=1 once its controller answers (logged as "ready": the keypad,
// reader and key sensors run), WATCHDOG=1 only while the controller keeps
// answering, and STOPPING=1 at stop (notify.go).
//
// # Clock floor
//
// A box clock earlier than the clock floor is not trusted (see box: windowed
// grants then follow [clock] untrusted). The floor is never missing. It is
// the latest of:
//
//   - the build time: buildinfo's, stamped with -ldflags "-X
//     .../cmd/internal/buildinfo.buildTime=RFC3339" (the Makefile sets it),
//     else the binary's vcs.time, else (a plain go build or go install
//     without VCS information) the date compiled into the source,
//     sourceFloor: a box cannot run this code before it was written. The
//     start line logs build_time_from=ldflags, vcs.time or source;
//   - sourceFloor itself (an ldflags date older than the source is wrong);
//   - [clock] floor in the config (RFC 3339), for a site that knows better;
//   - the latest time the store remembers the box having seen (store meta
//     "clock_floor").
//
// The "clock floor" log line names it: clock_floor_from=source, build_time,
// config or store.
//
// The store's time is written while the clock is trusted: at start, every
// 5 minutes (floorWriteInterval: one commit of about 28 KiB, 8 MB a day,
// against a power cut taking the clock back unnoticed by at most that much),
// and at stop. What is written is the box clock, but never more than the floor at
// start plus the real time passed since (Go's monotonic clock, which a
// change of the wall clock does not move). So a clock that jumped into the
// future is not remembered as the floor (it would leave the corrected clock
// untrusted until that date, with no way back but editing the store): if
// every source was true at start, the floor stays at or behind the true
// time. The price is that the floor does not learn the time a box spent
// switched off; it lags the true time by the box's total downtime. (A signed
// time from the cloud, such as RecordBatch.IssuedAt, would let it catch up;
// the link does not pass it on yet.)
//
// The floor also rises while the box runs. The controller checks its clock
// against the floor it was started with; smartboxd checks every second that
// the clock has not gone back more than a minute (floorTolerance: an NTP
// step is no reason) below the floor reached since, and if it has, stops
// with an error (every lock de-energised) so that systemd restarts it with
// the new floor: the restarted box does not trust its clock. The sync
// link's trust check (release_slot commands) sees the rising floor at once.
//
// The sim profile always runs on a settable board clock (the system's time
// moved by an offset). --sim-clock TIME starts it at TIME (as a board without
// an RTC battery boots in 1970), and the socket's PUT /v1/sim/clock moves it
// while the box runs. That route answers 200 once the clock is set; a clock
// set back more than a minute below the floor reached while running (but not
// below the floor the box started with) then stops the daemon within a
// second, as above, and a clock set before the start floor (1970) leaves it
// running, untrusted. --sim-keys says which slots hold a key at start
// ("all", the default; "none"; or a list such as 1,2,5): the simulator
// carries the physical world across a power cut. Both are refused with any
// other hardware profile.
package main
