// Package boardprofile is the catalogue of boards smartboxd runs on: for
// each, the GPIO line names the board offers (so that a config naming a pin
// the board lacks is refused on the technician's laptop, not at the box),
// the lines it reserves for its buses (the I2C of the expanders, the
// reader's UART), and a documented config wired for it, which
// `smartboxctl provision` renders for a box and the firmware packages ship
// as examples.
//
// Profiles:
//
//	rpi3, rpi4, rpi5  a Raspberry Pi wired straight to its 40-pin header:
//	                  a 4x3 keypad and 4 slots (lock, key sensor, LED)
//	smartbox-v1       a Raspberry Pi with three MCP23017 expanders on I2C:
//	                  a 4x3 keypad on the header and 12 slots on the expanders
//	sim               the simulator's board (no pins to name)
//
// Line names are periph's: on a Raspberry Pi 3 or 4 its bcm283x driver
// names the header's lines GPIO0..GPIO27; on a Pi 5 the gpio character
// device of the RP1 chip names them the same. The expanders' lines are
// named LOCKn, KEYn and LEDn by the device-tree overlay (gpio-line-names)
// that the SmartBox v1 image loads.
package boardprofile
