// Package pins finds the box's GPIO pins by the names its config gives them.
//
// It loads periph's host drivers once (host.Init). On a machine without GPIO
// hardware that succeeds with no pins, so a config naming real pins fails
// later, in ByName, with an error naming the pin's role: the likely cause is
// running the daemon off the box.
//
// Names are whatever periph's gpioreg knows: on a Raspberry Pi "GPIO17",
// "17", the header position "P1_11" or an alias.
package pins
