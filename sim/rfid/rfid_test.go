package rfid_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	simrfid "github.com/smartbox-oss/smartbox/sim/rfid"
)

func TestFrame(t *testing.T) {
	// RDM6300 datasheet example: 01^00^07^34^E0 = D2.
	datasheet := []byte{0x02, 0x30, 0x31, 0x30, 0x30, 0x30, 0x37, 0x33, 0x34, 0x45, 0x30, 0x44, 0x32, 0x03}
	tests := []struct {
		name    string
		uid     string
		v       simrfid.Variant
		want    []byte
		wantErr string
	}{
		{name: "datasheet RDM6300", uid: "01000734E0", v: simrfid.RDM6300, want: datasheet},
		{name: "lower case and spaces", uid: "01 00 07 34 e0", v: simrfid.RDM6300, want: datasheet},
		{name: "ID-12 has CR LF", uid: "01000734E0", v: simrfid.ID12,
			want: append(append(append([]byte{}, datasheet[:13]...), '\r', '\n'), 0x03)},
		{name: "zero checksum", uid: "0000000000", v: simrfid.RDM6300, want: []byte("\x02000000000000\x03")},
		{name: "all FF", uid: "FFFFFFFFFF", v: simrfid.RDM6300, want: []byte("\x02FFFFFFFFFFFF\x03")},
		{name: "too short", uid: "01000734E", v: simrfid.RDM6300, wantErr: "not 10 hex digits"},
		{name: "not hex", uid: "01000734EG", v: simrfid.RDM6300, wantErr: "not 10 hex digits"},
		{name: "bad variant", uid: "01000734E0", v: simrfid.Variant(7), wantErr: "unknown reader variant 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := simrfid.Frame(tc.uid, tc.v)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// openSlave opens the sim's slave the way a plain program would (no serial
// library, so no raw mode of its own): the sim's raw mode must be enough.
func openSlave(t *testing.T, r *simrfid.Reader) *os.File {
	t.Helper()
	f, err := os.OpenFile(r.Path(), os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// readN reads exactly n bytes from f within a generous timeout.
func readN(t *testing.T, f *os.File, n int) []byte {
	t.Helper()
	require.NoError(t, f.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, n)
	got := 0
	for got < n {
		m, err := f.Read(buf[got:])
		require.NoError(t, err, "read %d of %d bytes", got, n)
		got += m
	}
	return buf
}

func newSim(t *testing.T, v simrfid.Variant) *simrfid.Reader {
	t.Helper()
	r, err := simrfid.New(v)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

func TestPresentSendsRepeatedFramesUntilRemove(t *testing.T) {
	for _, v := range []simrfid.Variant{simrfid.RDM6300, simrfid.ID12} {
		t.Run(v.String(), func(t *testing.T) {
			r := newSim(t, v)
			slave := openSlave(t, r)
			frame, err := simrfid.Frame("0415AB93C7", v)
			require.NoError(t, err)

			require.NoError(t, r.Present("0415ab93c7"))
			// Three frames in a row, byte for byte: CR LF survive (raw mode).
			got := readN(t, slave, 3*len(frame))
			require.Equal(t, bytes.Repeat(frame, 3), got)

			r.Remove()
			// After Remove no frame follows: a raw marker is the next thing read
			// (whatever frames were already queued come before it).
			require.NoError(t, r.WriteRaw([]byte{0xAA}))
			var tail []byte
			for len(tail) == 0 || tail[len(tail)-1] != 0xAA {
				tail = append(tail, readN(t, slave, 1)...)
			}
			require.Zero(t, len(tail[:len(tail)-1])%len(frame), "only whole frames before the marker")
			require.NoError(t, slave.SetReadDeadline(time.Now().Add(3*Repeat())))
			n, err := slave.Read(make([]byte, 16))
			require.Zero(t, n)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded, "no frames after Remove")
		})
	}
}

func Repeat() time.Duration { return simrfid.Repeat }

func TestPresentOtherTagSwitches(t *testing.T) {
	r := newSim(t, simrfid.RDM6300)
	slave := openSlave(t, r)
	a, _ := simrfid.Frame("0000000001", simrfid.RDM6300)
	b, _ := simrfid.Frame("0000000002", simrfid.RDM6300)

	require.NoError(t, r.Present("0000000001"))
	require.Equal(t, a, readN(t, slave, len(a)))
	require.NoError(t, r.Present("0000000001"), "same tag again: no change")
	require.NoError(t, r.Present("0000000002"))
	// Some more A frames may be queued; then only B.
	for {
		f := readN(t, slave, len(a))
		if bytes.Equal(f, b) {
			break
		}
		require.Equal(t, a, f)
	}
	require.Equal(t, b, readN(t, slave, len(b)))
}

func TestTapAndWriteRaw(t *testing.T) {
	r := newSim(t, simrfid.ID12)
	slave := openSlave(t, r)
	frame, _ := simrfid.Frame("1234567890", simrfid.ID12)

	require.NoError(t, r.WriteRaw([]byte("noise\r\n")))
	require.Equal(t, []byte("noise\r\n"), readN(t, slave, 7))

	start := time.Now()
	require.NoError(t, r.Tap("1234567890", 120*time.Millisecond))
	require.GreaterOrEqual(t, time.Since(start), 120*time.Millisecond)
	require.Equal(t, frame, readN(t, slave, len(frame)))
}

func TestBadInput(t *testing.T) {
	r := newSim(t, simrfid.RDM6300)
	require.ErrorContains(t, r.Present("nope"), "not 10 hex digits")
	require.ErrorContains(t, r.Tap("", time.Millisecond), "not 10 hex digits")
	_, err := simrfid.New(simrfid.Variant(-1))
	require.ErrorContains(t, err, "unknown reader variant")
}

func TestClose(t *testing.T) {
	r, err := simrfid.New(simrfid.RDM6300)
	require.NoError(t, err)
	slave := openSlave(t, r)
	require.NoError(t, r.Present("0000000001"))
	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "idempotent")
	require.ErrorIs(t, r.Present("0000000001"), simrfid.ErrClosed)
	require.ErrorIs(t, r.WriteRaw([]byte{1}), simrfid.ErrClosed)
	r.Remove() // harmless

	// The other end of an unplugged line: reads drain what was queued, then
	// fail (EIO on Linux), which is what hal/rfid treats as "port vanished".
	require.NoError(t, slave.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 64)
	for {
		_, err = slave.Read(buf)
		if err != nil {
			break
		}
	}
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "want a read error after close, got %v", err)
}

func TestLinkAt(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "ttyRFID")
	a := newSim(t, simrfid.RDM6300)
	require.NoError(t, a.LinkAt(link))
	got, err := os.Readlink(link)
	require.NoError(t, err)
	require.Equal(t, a.Path(), got)

	b := newSim(t, simrfid.RDM6300)
	require.NoError(t, b.LinkAt(link), "re-pointing replaces the link")
	got, err = os.Readlink(link)
	require.NoError(t, err)
	require.Equal(t, b.Path(), got)

	require.Error(t, a.LinkAt(filepath.Join(dir, "missing", "x")))
}

// A reader nobody listens to must not wedge the simulator: writes time out
// and Remove/Close still return.
func TestNobodyReading(t *testing.T) {
	r := newSim(t, simrfid.RDM6300)
	err := r.WriteRaw(make([]byte, 1<<20)) // far beyond the pty's buffer
	require.Error(t, err)
	require.NoError(t, r.Present("0000000001"))
	done := make(chan struct{})
	go func() { r.Remove(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Remove blocked while the line was full")
	}
}
