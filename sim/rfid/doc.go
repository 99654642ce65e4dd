// Package rfid simulates an EM4100 fob reader (RDM6300 or ID-12/ID-20) on a
// pseudo-terminal, so that hal/rfid and the daemon read it exactly as they
// read a UART: nothing above the tty is simulated.
//
// # Basics
//
// New opens a pty pair. The slave (Path) is what hal/rfid opens; the
// simulator writes real frames into the master. Present puts a tag in the
// field: like a real reader, the simulator then sends its frame every 50 ms
// until Remove. Tap is a short presentation. WriteRaw sends any bytes (noise,
// cut frames) for tests. Frame encodes one frame.
//
// LinkAt points a stable path (a symlink) at the slave. A test or the
// simulator can then make "the reader vanishes and comes back": Close the
// simulator (the daemon's reads fail with EIO), make a new one, and LinkAt the
// same path again; the daemon reopens it within its back-off.
//
// # Caveats
//
//   - The slave is put in raw mode at once. A pty's default termios would
//     translate the ID-12's CR into LF (ICRNL) and echo input back into the
//     master, where nobody reads it, until the echo filled the buffer and
//     writes blocked. hal/rfid also sets raw mode when it opens the port, but
//     frames may arrive before that.
//   - The simulator keeps its own slave descriptor open for its whole life:
//     when the last slave descriptor closes, the master reads EIO, and the
//     pty could vanish between two opens by the reader.
//   - Writes to the master carry a deadline: when nobody drains the slave,
//     the kernel buffer fills and a real reader would just keep sending into
//     the void; the simulator drops frames instead of blocking.
package rfid
