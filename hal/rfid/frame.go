package rfid

import (
	"errors"
	"fmt"
)

// Frame bytes (RDM6300 and ID-12/ID-20 datasheets).
const (
	stx = 0x02 // start of text: every frame begins with it
	etx = 0x03 // end of text
	cr  = 0x0D // ID-12/ID-20 only, before ETX
	lf  = 0x0A // ID-12/ID-20 only, before ETX

	uidChars  = 10            // 5 UID bytes as hex
	bodyChars = uidChars + 2  // plus the checksum byte as hex
	frameRDM  = bodyChars + 2 // STX body ETX
	frameID12 = bodyChars + 4 // STX body CR LF ETX
)

var (
	// ErrFrame is wrapped by errors about a frame's shape: its length, its
	// start and end bytes, or a character that is not a hex digit.
	ErrFrame = errors.New("rfid: malformed frame")
	// ErrChecksum is wrapped when a well-formed frame's checksum is not the
	// XOR of its data bytes (a misread tag or line noise).
	ErrChecksum = errors.New("rfid: bad frame checksum")
)

// DecodeFrame decodes one whole frame, either the RDM6300 (14 bytes) or the
// ID-12/ID-20 (16 bytes, CR LF before ETX) layout, and returns the UID as 10
// upper-case hex digits. Errors wrap ErrFrame or ErrChecksum.
func DecodeFrame(frame []byte) (string, error) {
	switch len(frame) {
	case frameRDM:
	case frameID12:
		if frame[1+bodyChars] != cr || frame[2+bodyChars] != lf {
			return "", fmt.Errorf("%w: 16-byte frame without CR LF before ETX (bytes 13-14 are %#02x %#02x)",
				ErrFrame, frame[1+bodyChars], frame[2+bodyChars])
		}
	default:
		return "", fmt.Errorf("%w: %d bytes, want %d (RDM6300) or %d (ID-12)", ErrFrame, len(frame), frameRDM, frameID12)
	}
	if frame[0] != stx {
		return "", fmt.Errorf("%w: first byte %#02x, want STX 0x02", ErrFrame, frame[0])
	}
	if last := frame[len(frame)-1]; last != etx {
		return "", fmt.Errorf("%w: last byte %#02x, want ETX 0x03", ErrFrame, last)
	}
	var body [bodyChars]byte
	for i := range body {
		c := frame[1+i]
		if !isHex(c) {
			return "", fmt.Errorf("%w: byte %d is %#02x, want an ASCII hex digit", ErrFrame, 1+i, c)
		}
		body[i] = c
	}
	uid, err := checkBody(&body)
	if err != nil {
		return "", err
	}
	return string(uid[:]), nil
}

// checkBody verifies the checksum of 12 hex digits (already checked to be
// hex) and returns the UID upper-cased.
func checkBody(body *[bodyChars]byte) (uid [uidChars]byte, err error) {
	var sum byte
	for i := 0; i < uidChars; i += 2 {
		sum ^= hexVal(body[i])<<4 | hexVal(body[i+1])
	}
	want := hexVal(body[uidChars])<<4 | hexVal(body[uidChars+1])
	if sum != want {
		return uid, fmt.Errorf("%w: frame says %02X, data bytes XOR to %02X", ErrChecksum, want, sum)
	}
	for i := range uid {
		uid[i] = upper(body[i])
	}
	return uid, nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f')
}

// hexVal is only called on bytes isHex accepted.
func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'f' {
		return c - ('a' - 'A')
	}
	return c
}
