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
//     only while its lock is released. Two faults can be set per slot:
//     Slots.Jam (the latch stays shut though the lock is energised: Take and
//     PutBack fail with ErrJammed) and Slots.KillSensor (the sensor wire is
//     cut: the pin reads its pull, "no key", whatever is seated).
//
// A person at the box is modelled by methods: Keypad.Press, Tap and Type;
// Slots.Take and PutBack. NewSlotsHolding starts slots with keys in some of
// them only (the simulator carries the physical world across a power cut).
//
// # Confirmed taps
//
// A plain Tap holds a key for a fixed real time. The scanner runs on its own
// goroutines and reports a key only once its scans have read it down for the
// debounce, so on a loaded machine (race detector, 2 cores) a late scanner
// can miss a tap and a correct PIN arrives with a digit lost.
// Keypad.ConfirmScans(debounce) makes Tap and Type wait for the scanner
// instead: the keypad sees every column Read, and a Read while exactly one
// row is driven Low is a reading of the key where they cross. A confirmed
// tap holds the key at least its hold and until the scanner has read it
// down in scans spanning the debounce (counted from the second reading, so
// that it holds on the scanner's clock too, however late the scanner ran),
// then releases it and waits until the scanner has read it up for the
// debounce or has gone idle (a Read with every row Low and no key down). So
// every tap is reported, "11" is two presses, and by the time Type returns
// every key has been reported. Each wait is bounded by ConfirmTimeout (5 s),
// after which Tap returns an error saying the scanner never read the key.
// smartboxd's sim profile turns this on; hal/keypad's own tests leave it off,
// as they test the scanner's timing with taps of a given length. A confirmed
// tap assumes nothing else presses keys meanwhile, and Press and Release
// never wait.
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
