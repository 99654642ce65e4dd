// Package slots drives a SmartBox's key slots on periph GPIO pins: the lock
// outputs, the key-present inputs and the LEDs. Dev implements box.Locks,
// box.KeySensors and box.Indicators. Slots are numbered from 1.
//
// # Wiring (SmartBox v1)
//
//   - Lock: an output driving the relay or MOSFET of a solenoid lock. High
//     energises the coil, which releases the latch (the slot opens); Low
//     de-energises it (the slot is locked). Fail secure: New and Close drive
//     every lock Low, and an unpowered lock is locked. DeEnergise does the
//     same on bare pins, for a program that has found its lock pins but has
//     no Dev (yet, or because something else failed).
//   - Key sensor: a switch to ground that closes while a key's fob is
//     seated, on an input with pull-up: Low means a key is present.
//   - LED: an output, High lights it. Optional.
//
// # The coil's hard maximum
//
// Solenoid locks are made for short pulses; energised for long they
// overheat. Release therefore always arms a timer that relocks, after the
// asked time or HardMax (10 s by default), whichever is sooner, and
// repeated Releases cannot stretch one energising beyond HardMax.
//
// # Key sensors
//
// Present reads a sensor as it is. Watch reports debounced changes and is
// edge-driven (WaitForEdge with a finite timeout in a loop, never -1, which
// returns at once on periph's gpio cdev backend, periph/host#78).
package slots
