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
// configs/smartboxd.example.toml.
//
// # Hardware profiles
//
// "smartbox-v1" opens real GPIO lines by name (periph.io) and the reader's
// UART. "sim" runs the same hal code on simulated pins (sim) and a
// pseudo-terminal reader (sim/rfid), and reads a line console on stdin for
// a person to press keys, tap fobs and take or return keys (type "help").
//
// # Build time
//
// A clock earlier than the build time is not trusted (see box). The build
// time comes from -ldflags "-X main.buildTime=RFC3339" (the Makefile sets
// it), else from the binary's vcs.time, else there is no check.
package main
