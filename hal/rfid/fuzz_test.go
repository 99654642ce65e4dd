package rfid_test

import (
	"errors"
	"regexp"
	"testing"

	"github.com/smartbox-oss/smartbox/hal/rfid"
	simrfid "github.com/smartbox-oss/smartbox/sim/rfid"
)

var uidPattern = regexp.MustCompile(`^[0-9A-F]{10}$`)

func fuzzSeeds(f *testing.F) [][]byte {
	a, _ := simrfid.Frame("01000734E0", simrfid.RDM6300)
	b, _ := simrfid.Frame("0415AB93C7", simrfid.ID12)
	return [][]byte{
		nil, a, b, cat(a, b), lower(a), cat(a[:5], b), cat([]byte{0x02}, a),
		[]byte("\x02\x02\x03\x03\r\n"), []byte("\x0201000734E0D2\r\x03"),
	}
}

// FuzzDecoder feeds any bytes in any split: no panic; every UID emitted is 10
// upper-case hex digits whose re-encoded frame decodes to it; and the split
// does not change what is decoded or counted.
func FuzzDecoder(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, []byte{1, 3, 7})
	}
	f.Fuzz(func(t *testing.T, in []byte, splits []byte) {
		whole := feed(in, nil)
		var cuts []int
		off := 0
		for _, s := range splits {
			off += 1 + int(s)%17
			if off >= len(in) {
				break
			}
			cuts = append(cuts, off)
		}
		split := feed(in, cuts)
		if len(whole.uids) != len(split.uids) || whole.badChecksum != split.badChecksum || whole.badFrame != split.badFrame {
			t.Fatalf("split %v changed the result: whole %+v, split %+v", cuts, whole, split)
		}
		for i, uid := range split.uids {
			if uid != whole.uids[i] {
				t.Fatalf("uid %d: whole %q, split %q", i, whole.uids[i], uid)
			}
			if !uidPattern.MatchString(uid) {
				t.Fatalf("emitted %q: not 10 upper-case hex digits", uid)
			}
			for _, v := range []simrfid.Variant{simrfid.RDM6300, simrfid.ID12} {
				fr, err := simrfid.Frame(uid, v)
				if err != nil {
					t.Fatalf("re-encode %q: %v", uid, err)
				}
				back, err := rfid.DecodeFrame(fr)
				if err != nil || back != uid {
					t.Fatalf("re-encoded %q as %q: decoded %q, %v", uid, fr, back, err)
				}
			}
		}
		// Every frame that completes is either emitted or counted; the count
		// of STX bytes bounds them all.
		stx := 0
		for _, c := range in {
			if c == 0x02 {
				stx++
			}
		}
		if n := uint64(len(whole.uids)) + whole.badChecksum + whole.badFrame; n > uint64(stx) {
			t.Fatalf("%d outcomes from %d STX bytes", n, stx)
		}
	})
}

// FuzzDecodeFrame: no panic, errors wrap ErrFrame or ErrChecksum, a good
// frame agrees with the streaming decoder and round-trips.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		uid, err := rfid.DecodeFrame(in)
		if err != nil {
			if !errors.Is(err, rfid.ErrFrame) && !errors.Is(err, rfid.ErrChecksum) {
				t.Fatalf("error wraps neither ErrFrame nor ErrChecksum: %v", err)
			}
			if uid != "" {
				t.Fatalf("uid %q with error %v", uid, err)
			}
			return
		}
		if !uidPattern.MatchString(uid) {
			t.Fatalf("uid %q: not 10 upper-case hex digits", uid)
		}
		r := feed(in, nil)
		if len(r.uids) != 1 || r.uids[0] != uid || r.badChecksum+r.badFrame != 0 {
			t.Fatalf("DecodeFrame says %q, Decoder says %+v", uid, r)
		}
		v := simrfid.RDM6300
		if len(in) == 16 {
			v = simrfid.ID12
		}
		fr, err := simrfid.Frame(uid, v)
		if err != nil {
			t.Fatal(err)
		}
		if string(fr) != string(upperHex(in)) {
			t.Fatalf("frame %q re-encodes as %q", in, fr)
		}
	})
}

func upperHex(p []byte) []byte {
	out := make([]byte, len(p))
	for i, c := range p {
		if c >= 'a' && c <= 'f' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return out
}
