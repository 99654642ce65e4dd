package rfid

import "sync/atomic"

// Decoder is a streaming frame decoder for both frame layouts. The zero value
// is ready to use. Feed must not be called concurrently; Errors and Frames may
// be called from any goroutine.
//
// It keeps at most one frame body in a fixed array, so no input makes it grow:
// a byte outside a frame is skipped, a byte that cannot continue the current
// frame drops that frame (counted as a bad frame), and an STX always starts a
// new frame, so the decoder is back in step with the reader at its next frame
// whatever came before.
type Decoder struct {
	in   bool // an STX was seen and the frame is still plausible
	n    int  // hex digits of the body so far
	tail int  // after the body: 0 nothing, 1 CR seen, 2 CR LF seen (ID-12)
	body [bodyChars]byte

	// recent holds the last few UIDs emitted: a tag in the field repeats its
	// frame every 50 ms, and reusing its string keeps the steady state free
	// of allocations.
	recent [4]string
	next   int // the recent entry to replace on a miss

	frames      atomic.Uint64
	badChecksum atomic.Uint64
	badFrame    atomic.Uint64
}

// Feed decodes p, which may be any piece of the stream, and calls emit with the
// UID (10 upper-case hex digits) of every good frame completed in it.
func (d *Decoder) Feed(p []byte, emit func(uid string)) {
	for _, c := range p {
		if c == stx {
			if d.in {
				d.badFrame.Add(1) // cut short by the next frame
			}
			d.in, d.n, d.tail = true, 0, 0
			continue
		}
		if !d.in {
			continue // noise between frames
		}
		if d.n < bodyChars {
			if !isHex(c) {
				d.drop()
				continue
			}
			d.body[d.n] = c
			d.n++
			continue
		}
		switch {
		case c == etx && (d.tail == 0 || d.tail == 2):
			d.in = false
			d.finish(emit)
		case c == cr && d.tail == 0:
			d.tail = 1
		case c == lf && d.tail == 1:
			d.tail = 2
		default:
			d.drop() // overlong, or a broken CR LF ETX tail
		}
	}
}

// Reset forgets a partly received frame without counting it, e.g. when the
// port was reopened and the rest of that frame is lost.
func (d *Decoder) Reset() { d.in, d.n, d.tail = false, 0, 0 }

// Errors reports how many frames were dropped for a bad checksum and for a
// bad shape (cut short, overlong, a byte that is not hex or not the tail).
func (d *Decoder) Errors() (badChecksum, badFrame uint64) {
	return d.badChecksum.Load(), d.badFrame.Load()
}

// Frames reports how many good frames were decoded (repeats included).
func (d *Decoder) Frames() uint64 { return d.frames.Load() }

func (d *Decoder) drop() {
	d.badFrame.Add(1)
	d.in = false
}

func (d *Decoder) finish(emit func(string)) {
	uid, err := checkBody(&d.body)
	if err != nil {
		d.badChecksum.Add(1)
		return
	}
	d.frames.Add(1)
	if emit != nil {
		emit(d.intern(&uid))
	}
}

func (d *Decoder) intern(uid *[uidChars]byte) string {
	for _, s := range d.recent {
		if s == string(uid[:]) { // compared without allocating
			return s
		}
	}
	s := string(uid[:])
	d.recent[d.next] = s
	d.next = (d.next + 1) % len(d.recent)
	return s
}
