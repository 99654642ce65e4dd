// Package sim is SmartBox's simulated hardware at the lowest level the real
// code touches: GPIO pins. (The simulated RFID reader's serial line is in
// sim/rfid.)
//
// # Basics
//
// Pin implements periph's gpio.PinIO, so hal/keypad and hal/slots run on it
// unchanged: nothing above the pin is faked. Pins are wired into circuits
// that model the hardware electrically:
//
//   - Keypad: a diode-less matrix keypad. Rows and columns are wires, keys are
//     switches, and levels come from a net list (drivers, pull resistors), so
//     scanning, ghost keys and shorted outputs behave as on the real part.
//   - Slots: lock outputs (High energises the solenoid and releases the
//     latch), key-present sensors (a switch to ground, closed while a fob is
//     seated) and LEDs, with the latch mechanics: a key leaves or goes back
//     only while its lock is released.
//
// A person at the box is modelled by methods: Keypad.Press, Tap and Type;
// Slots.Take and PutBack.
//
// # Caveats
//
// An input that nothing drives and that has no pull reads Low (on hardware it
// is undefined), so a forgotten pull-up shows up as a pressed key or a
// seated fob instead of working by luck.
//
// WaitForEdge(-1) waits forever here, as on periph's sysfs backend; on the
// gpio cdev backend it returns false at once (periph/host#78). hal code uses
// finite timeouts in a loop and must not depend on either.
//
// Levels change instantly: no RC settling, no contact bounce unless a test
// makes it.
package sim
