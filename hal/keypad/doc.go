// Package keypad scans a matrix keypad (the SmartBox v1 4x3: 1-9, *, 0, #)
// on periph GPIO pins.
//
// # Wiring
//
// Each key is a switch between its row wire and its column wire. Rows are
// outputs, columns inputs with the SoC's pull-up. Layout gives the keys row
// by row: Layout[r][c] is the key joining row pin r to column pin c.
//
// # Scanning
//
// Idle, every row is driven Low and each column waits for a falling edge
// (one goroutine per column, WaitForEdge with a finite timeout in a loop:
// -1 returns at once on periph's gpio cdev backend, periph/host#78). So an
// idle keypad costs a few wake-ups a second and no reads.
//
// After an edge, the scanner reads the matrix every few milliseconds: it
// drives one row Low at a time and reads the columns. The other rows are
// switched to inputs with pull-up instead of being driven High, because two
// keys down in one column would short a High row to the Low one (this is
// also what Linux's matrix-keypad driver does by default). When no key has
// been down for the debounce time, it goes back to idle.
//
// # What counts as a press
//
// The set of keys down must read the same for Debounce (20 ms) before it
// counts, which swallows contact bounce. A key is reported once, when it
// goes down, and not again until it has been released.
//
// Two keys down at once read exactly in a matrix, so a key pressed while one
// other key is still held is reported (two-key rollover: fast typists
// overlap keys). Three keys on the corners of a rectangle make the fourth
// read as down (ghosting, no diodes), so whenever three or more keys are
// down nothing is reported; and two keys going down within one debounce
// period are ambiguous too, so neither is reported.
package keypad
