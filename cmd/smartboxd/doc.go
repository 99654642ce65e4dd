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
// process). What a SIGKILL or a kernel crash leaves is the next start's to
// undo, which is why it comes first.
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
// # Build time
//
// A clock earlier than the build time is not trusted (see box). The build
// time comes from -ldflags "-X main.buildTime=RFC3339" (the Makefile sets
// it), else from the binary's vcs.time, else there is no check.
package main
