// Package box is the SmartBox controller: the rules of a key locker, as pure
// logic over narrow interfaces.
//
// # Basics
//
// A box has numbered slots (1..N). Each slot holds one key, and each key hangs
// on an RFID fob whose UID names it. A driver types a code on the keypad:
//   - a booking PIN opens the slot of its key(s);
//   - a driver code opens the slots of every key currently granted to that
//     driver (its own keys plus the keys of the driver's active bookings).
//
// A key is returned by scanning its fob at the reader: its home slot releases,
// the key is seated, the slot relocks.
//
// Every outcome is an Event, committed to the store together with the state
// change it belongs to (use counts, lockout) in one transaction.
//
// # What box does not know
//
// box imports none of SmartBox's other packages and no hardware, MQTT or
// database types. It declares the interfaces it needs (Store, Locks,
// KeySensors, Indicators, Clock) and the adapters in store/, hal/, sim/ and
// sync/ implement them. The clock is injected so that the rules about time
// (windows, lockout, entry timeout, release time) are tested without sleeping.
//
// # Clock trust
//
// A box boots with whatever its RTC says, and a board without a battery says
// 1970. A clock earlier than Config.BuildTime is not trusted; smartboxd sets
// it to its clock floor, never zero: the latest of the build time, a date
// compiled into its source, a config floor and the latest time its store
// remembers (see cmd/smartboxd). The controller reads it once, at New: a
// daemon whose floor rises while it runs restarts the controller (the
// process) if the clock goes back below it. While the clock is
// not trusted, grants with a window [from, until) follow Config.UntrustedClock:
// by default they are refused (with a code_refused event whose reason is
// clock_untrusted); grants without a window are unaffected.
package box
