// Package rfid reads key fobs from a 125 kHz EM4100 reader on a UART.
//
// # Basics
//
// Each key in a SmartBox hangs on an EM4100 fob. A driver returning a key
// holds its fob at the reader; the reader sends the fob's 40-bit UID over a
// UART at 9600 baud, 8 data bits, no parity, one stop bit (9600 8N1), and
// repeats it about every 50 ms for as long as the tag stays in the field.
//
// Two frame layouts are in use, both ASCII:
//
//	RDM6300:     STX(02) D0..D9 C0 C1 ETX(03)          14 bytes
//	ID-12/ID-20: STX(02) D0..D9 C0 C1 CR(0D) LF(0A) ETX(03)   16 bytes
//
// D0..D9 are the 5 UID bytes as 10 hex digits, C0 C1 is the XOR of those 5
// bytes as 2 hex digits. The RDM6300 datasheet example
// 02 30 31 30 30 30 37 33 34 45 30 44 32 03 is the UID 01000734E0
// (01^00^07^34^E0 = D2). Readers send upper-case hex; lower case is accepted
// too. UIDs are reported as 10 upper-case hex digits, the form
// box.NormalizeFobUID gives.
//
// DecodeFrame checks one whole frame. Decoder is the streaming form: it takes
// the byte stream in any split, resynchronises after noise or a cut frame (a
// new STX always restarts a frame), counts what it drops, and holds at most
// one frame in a fixed buffer whatever it is fed.
//
// Reader runs the port: it opens it with go.bug.st/serial, decodes, collapses
// the 50 ms repeats of one presentation into one scan, and reopens the port
// with exponential back-off when it is missing or vanishes (a USB adapter
// unplugged, a pseudo-terminal whose master closed).
//
// # Caveats
//
//   - go.bug.st/serial returns (0, nil) when a read times out; Reader sets a
//     read timeout so its loop sees a cancelled context, and also closes the
//     port on cancellation, which unblocks a pending Read at once.
//   - On a pseudo-terminal (tests, the simulator) modem-control ioctls fail:
//     Reader never sets Mode.InitialStatusBits and never calls SetDTR. A real
//     RDM6300 or ID-12 needs neither.
//   - Bytes that reached the kernel while nobody was reading are discarded
//     when the port opens: a real UART would not have received them either,
//     and replaying them would report a scan that happened in the past.
package rfid
