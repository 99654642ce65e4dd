// Command smartboxd is the daemon on a SmartBox key locker. It wires the
// keypad, the slots (lock relays, key-present sensors, LEDs), the RFID fob
// reader, the store (DIR/box.db) and the box controller from one TOML config
// file, and runs until SIGTERM or SIGINT, when it relocks every slot and
// exits 0.
//
// Usage:
//
//	smartboxd [--config /etc/smartbox/smartboxd.toml] [--hardware sim] [--data DIR] [--log-level info]
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
// The software version in the box's status comes from -ldflags
// "-X main.version=v1.2.0", else the module version and VCS commit stamped
// by go build.
//
// # Clock floor
//
// A box clock earlier than the clock floor is not trusted (see box: windowed
// grants then follow [clock] untrusted). The floor is never missing. It is
// the latest of:
//
//   - the build time: -ldflags "-X main.buildTime=RFC3339" (the Makefile sets
//     it), else the binary's vcs.time, else (a plain go build or go install
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
// For the simulator, --sim-clock TIME starts the simulated board's clock at
// TIME (as a board without an RTC battery boots in 1970); it is refused with
// any other hardware profile.
package main
