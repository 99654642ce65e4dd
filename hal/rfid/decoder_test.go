package rfid_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/hal/rfid"
	simrfid "github.com/smartbox-oss/smartbox/sim/rfid"
)

// datasheet is the RDM6300 datasheet's example frame: UID 01000734E0.
var datasheet = []byte{0x02, 0x30, 0x31, 0x30, 0x30, 0x30, 0x37, 0x33, 0x34, 0x45, 0x30, 0x44, 0x32, 0x03}

func frame(t testing.TB, uid string, v simrfid.Variant) []byte {
	t.Helper()
	f, err := simrfid.Frame(uid, v)
	require.NoError(t, err)
	return f
}

// lower turns a frame's hex digits to lower case (STX, ETX, CR, LF are not letters).
func lower(f []byte) []byte { return bytes.ToLower(f) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecodeFrame(t *testing.T) {
	id12 := frame(t, "01000734E0", simrfid.ID12)
	badSum := bytes.Clone(datasheet)
	badSum[12] = '3' // D3
	tests := []struct {
		name  string
		in    []byte
		want  string
		isErr error
		msg   string
	}{
		{name: "datasheet RDM6300", in: datasheet, want: "01000734E0"},
		{name: "ID-12", in: id12, want: "01000734E0"},
		{name: "lower case", in: lower(datasheet), want: "01000734E0"},
		{name: "lower case ID-12", in: lower(id12), want: "01000734E0"},
		{name: "mixed case", in: []byte("\x020415aB93c7" + fmt.Sprintf("%02x", 0x04^0x15^0xAB^0x93^0xC7) + "\x03"), want: "0415AB93C7"},
		{name: "bad checksum", in: badSum, isErr: rfid.ErrChecksum, msg: "frame says D3, data bytes XOR to D2"},
		{name: "empty", in: nil, isErr: rfid.ErrFrame, msg: "0 bytes"},
		{name: "short", in: datasheet[:13], isErr: rfid.ErrFrame, msg: "13 bytes"},
		{name: "no STX", in: cat([]byte{0x00}, datasheet[1:]), isErr: rfid.ErrFrame, msg: "first byte 0x00"},
		{name: "no ETX", in: cat(datasheet[:13], []byte{0x04}), isErr: rfid.ErrFrame, msg: "last byte 0x04"},
		{name: "not hex", in: cat(datasheet[:5], []byte{'G'}, datasheet[6:]), isErr: rfid.ErrFrame, msg: "byte 5 is 0x47"},
		{name: "ID-12 without CR LF", in: cat(datasheet[:13], []byte("AB\x03")), isErr: rfid.ErrFrame, msg: "without CR LF"},
		{name: "LF CR swapped", in: cat(datasheet[:13], []byte("\n\r\x03")), isErr: rfid.ErrFrame, msg: "without CR LF"},
		{name: "two frames", in: cat(datasheet, datasheet), isErr: rfid.ErrFrame, msg: "28 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rfid.DecodeFrame(tc.in)
			if tc.isErr != nil {
				require.ErrorIs(t, err, tc.isErr)
				require.ErrorContains(t, err, tc.msg)
				require.Empty(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

type decodeResult struct {
	uids                  []string
	badChecksum, badFrame uint64
}

// feed runs a fresh Decoder over in, cut into pieces by cuts (sorted offsets).
func feed(in []byte, cuts []int) decodeResult {
	var d rfid.Decoder
	var r decodeResult
	emit := func(uid string) { r.uids = append(r.uids, uid) }
	prev := 0
	for _, c := range cuts {
		d.Feed(in[prev:c], emit)
		prev = c
	}
	d.Feed(in[prev:], emit)
	r.badChecksum, r.badFrame = d.Errors()
	return r
}

func TestDecoder(t *testing.T) {
	a := frame(t, "01000734E0", simrfid.RDM6300)
	b := frame(t, "0415AB93C7", simrfid.ID12)
	c := frame(t, "FFFFFFFFFF", simrfid.RDM6300)
	badSum := bytes.Clone(a)
	badSum[12] ^= 1
	tests := []struct {
		name         string
		in           []byte
		want         []string
		badSum, badF uint64
	}{
		{name: "nothing", in: nil},
		{name: "one RDM6300", in: a, want: []string{"01000734E0"}},
		{name: "one ID-12", in: b, want: []string{"0415AB93C7"}},
		{name: "both layouts back to back", in: cat(a, b, c, b), want: []string{"01000734E0", "0415AB93C7", "FFFFFFFFFF", "0415AB93C7"}},
		{name: "repeats all emitted", in: cat(a, a, a), want: []string{"01000734E0", "01000734E0", "01000734E0"}},
		{name: "lower case", in: cat(lower(a), lower(b)), want: []string{"01000734E0", "0415AB93C7"}},
		{name: "garbage before and between", in: cat([]byte("\xff\x00junk\x03\r\n"), a, []byte("0123456789AB\x03"), b, []byte{0x80, 0x03}),
			want: []string{"01000734E0", "0415AB93C7"}},
		{name: "bad checksum dropped", in: cat(badSum, a), want: []string{"01000734E0"}, badSum: 1},
		{name: "cut frame then good", in: cat(a[:7], b), want: []string{"0415AB93C7"}, badF: 1},
		{name: "cut at the tail then good", in: cat(b[:14], a), want: []string{"01000734E0"}, badF: 1},
		{name: "cut frame at the very end is pending, not counted", in: cat(a, b[:9]), want: []string{"01000734E0"}},
		{name: "overlong", in: cat([]byte("\x02"), []byte("01000734E0D2D2\x03"), a), want: []string{"01000734E0"}, badF: 1},
		{name: "endless hex stays bounded", in: cat([]byte{0x02}, bytes.Repeat([]byte("A"), 10000), a), want: []string{"01000734E0"}, badF: 1},
		{name: "not hex inside", in: cat([]byte("\x0201000x34E0D2\x03"), a), want: []string{"01000734E0"}, badF: 1},
		{name: "short frame", in: cat([]byte("\x020100\x03"), a), want: []string{"01000734E0"}, badF: 1},
		{name: "CR without LF", in: cat(a[:13], []byte("\r\x03"), a), want: []string{"01000734E0"}, badF: 1},
		{name: "LF alone", in: cat(a[:13], []byte("\n\x03"), a), want: []string{"01000734E0"}, badF: 1},
		{name: "CR LF then junk", in: cat(a[:13], []byte("\r\nX\x03"), a), want: []string{"01000734E0"}, badF: 1},
		{name: "double STX", in: cat([]byte{0x02}, a), want: []string{"01000734E0"}, badF: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := decodeResult{uids: tc.want, badChecksum: tc.badSum, badFrame: tc.badF}
			require.Equal(t, want, feed(tc.in, nil), "whole")

			bytewise := make([]int, 0, len(tc.in))
			for i := 1; i < len(tc.in); i++ {
				bytewise = append(bytewise, i)
			}
			require.Equal(t, want, feed(tc.in, bytewise), "byte by byte")

			rng := rand.New(rand.NewPCG(1, uint64(len(tc.in))))
			for range 20 {
				var cuts []int
				for i := 1; i < len(tc.in); i++ {
					if rng.IntN(4) == 0 {
						cuts = append(cuts, i)
					}
				}
				require.Equal(t, want, feed(tc.in, cuts), "cut at %v", cuts)
			}
		})
	}
}

func TestDecoderFramesAndReset(t *testing.T) {
	var d rfid.Decoder
	a := frame(t, "01000734E0", simrfid.RDM6300)
	n := 0
	d.Feed(cat(a, a[:8]), func(string) { n++ })
	d.Reset() // the rest of that frame is lost: not counted
	d.Feed(a[8:], func(string) { n++ })
	d.Feed(nil, nil)
	d.Feed(a, nil) // a nil emit is allowed
	require.Equal(t, 1, n)
	require.EqualValues(t, 2, d.Frames())
	bc, bf := d.Errors()
	require.Zero(t, bc)
	require.Zero(t, bf)
}

// BenchmarkDecoderFeed measures decoding throughput on a realistic stream:
// repeats of a few tags in both layouts with some line noise, fed in the
// small reads a UART gives.
func BenchmarkDecoderFeed(b *testing.B) {
	var stream []byte
	for i := range 64 {
		uid := fmt.Sprintf("%010X", 0x0415AB93C7+uint64(i%4))
		v := simrfid.RDM6300
		if i%2 == 1 {
			v = simrfid.ID12
		}
		stream = append(stream, frame(b, uid, v)...)
		if i%16 == 0 {
			stream = append(stream, 0xFF, 0x00, 'x')
		}
	}
	const chunk = 32 // a read of a 9600-baud line rarely returns more
	var d rfid.Decoder
	uids := 0
	emit := func(string) { uids++ }
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for off := 0; off < len(stream); off += chunk {
			d.Feed(stream[off:min(off+chunk, len(stream))], emit)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(uids)/b.Elapsed().Seconds(), "frames/s")
	if bc, bf := d.Errors(); bc+bf != 0 {
		b.Fatalf("clean stream gave errors: checksum %d, frame %d", bc, bf)
	}
}

// A tag held at the reader sends ~20 frames a second for as long as it stays:
// the steady state must not allocate, and the UID cache must never hand back
// a wrong UID when more tags come and go than it holds.
func TestDecoderSteadyStateDoesNotAllocate(t *testing.T) {
	var d rfid.Decoder
	var stream []byte
	var want []string
	for i := range 6 {
		uid := fmt.Sprintf("00000000%02X", i)
		stream = append(stream, frame(t, uid, simrfid.RDM6300)...)
		want = append(want, uid)
	}
	var got []string
	d.Feed(stream, func(uid string) { got = append(got, uid) })
	d.Feed(stream, func(uid string) { got = append(got, uid) })
	require.Equal(t, append(want, want...), got)

	a := frame(t, "01000734E0", simrfid.ID12)
	last := ""
	emit := func(uid string) { last = uid }
	allocs := testing.AllocsPerRun(100, func() { d.Feed(a, emit) })
	require.Zero(t, allocs)
	require.Equal(t, "01000734E0", last)
}
