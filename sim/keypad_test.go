package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"periph.io/x/conn/v3/gpio"
)

// levels reads the columns without counting as scanner reads.
func levels(k *Keypad) []gpio.Level {
	var out []gpio.Level
	for _, c := range k.ColPins() {
		out = append(out, c.Level())
	}
	return out
}

// selectRow drives row r Low and leaves the others as pulled-up inputs,
// the way hal/keypad scans.
func selectRow(t *testing.T, k *Keypad, r int) {
	t.Helper()
	for i, p := range k.Rows() {
		if i == r {
			require.NoError(t, p.Out(gpio.Low))
		} else {
			require.NoError(t, p.In(gpio.PullUp, gpio.NoEdge))
		}
	}
}

func newTestKeypad(t *testing.T) *Keypad {
	t.Helper()
	k := NewKeypad(nil)
	for _, c := range k.Cols() {
		require.NoError(t, c.In(gpio.PullUp, gpio.FallingEdge))
	}
	return k
}

const L, H = gpio.Low, gpio.High

func TestKeypadMatrix(t *testing.T) {
	tests := []struct {
		name  string
		press string
		row   int // selected row, -1: all rows Low (idle)
		want  []gpio.Level
	}{
		{"idle no key", "", -1, []gpio.Level{H, H, H}},
		{"idle key 5", "5", -1, []gpio.Level{H, L, H}},
		{"row 2 key 5", "5", 1, []gpio.Level{H, L, H}},
		{"row 1 key 5", "5", 0, []gpio.Level{H, H, H}},
		{"row 4 key #", "#", 3, []gpio.Level{H, H, L}},
		{"row 1 keys 1 3", "13", 0, []gpio.Level{L, H, L}},
		{"same column no short", "14", 0, []gpio.Level{L, H, H}},
		// 1, 2 and 4 on three corners: row 2 sees 4 and the phantom 5.
		{"ghost", "124", 1, []gpio.Level{L, L, H}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestKeypad(t)
			if tt.row < 0 {
				for _, r := range k.Rows() {
					require.NoError(t, r.Out(gpio.Low))
				}
			} else {
				selectRow(t, k, tt.row)
			}
			for _, r := range tt.press {
				require.NoError(t, k.Press(r))
			}
			require.Equal(t, tt.want, levels(k))
			require.Zero(t, k.Shorts())
		})
	}
}

func TestKeypadShortCircuitIsCounted(t *testing.T) {
	k := newTestKeypad(t)
	// Rows 1 and 2 pushed to opposite levels, joined by keys 1 and 4 through
	// column 1: what a scanner driving unselected rows High would do.
	require.NoError(t, k.Rows()[0].Out(gpio.Low))
	require.NoError(t, k.Rows()[1].Out(gpio.High))
	require.NoError(t, k.Press('1'))
	require.NoError(t, k.Press('4'))
	require.NotZero(t, k.Shorts())
}

func TestKeypadEdgesAndRelease(t *testing.T) {
	k := newTestKeypad(t)
	for _, r := range k.Rows() {
		require.NoError(t, r.Out(gpio.Low))
	}
	col := k.ColPins()[1]
	require.False(t, col.WaitForEdge(0))
	require.NoError(t, k.Press('8'))
	require.True(t, col.WaitForEdge(0), "press pulls the column down: falling edge")
	require.NoError(t, k.Press('8'), "pressing again is a no-op")
	require.False(t, col.WaitForEdge(0))
	require.NoError(t, k.Release('8'))
	require.Equal(t, H, col.Level())
	require.False(t, col.WaitForEdge(0), "release is a rising edge, not listened for")
	require.Equal(t, []rune(nil), k.Down())
}

func TestKeypadErrors(t *testing.T) {
	k := NewKeypad(nil)
	require.ErrorContains(t, k.Press('A'), `no key 'A'`)
	require.ErrorContains(t, k.Release('A'), `no key 'A'`)
	require.ErrorContains(t, k.Type("12A", time.Millisecond, time.Millisecond), `no key 'A'`)
	require.Empty(t, k.Down(), "Type checks every key before pressing any")
	require.Panics(t, func() { NewKeypad([]string{"12", "3"}) })
	require.Panics(t, func() { NewKeypad([]string{"12", "31"}) })
}

func TestKeypadTapAndType(t *testing.T) {
	k := newTestKeypad(t)
	for _, r := range k.Rows() {
		require.NoError(t, r.Out(gpio.Low))
	}
	require.NoError(t, k.Tap('0', time.Millisecond))
	require.NoError(t, k.Type("*#", time.Millisecond, time.Millisecond))
	require.Empty(t, k.Down())
	// Each tap is one falling edge on its column.
	require.Equal(t, []uint64{1, 1, 1}, []uint64{k.ColPins()[0].Edges(), k.ColPins()[1].Edges(), k.ColPins()[2].Edges()})
	require.Equal(t, []string{"KP_ROW1", "KP_COL3"}, []string{k.Rows()[0].Name(), k.Cols()[2].Name()})
}

// A confirmed tap with nobody scanning gives up after its bound, says the
// scanner never read the key, and leaves the key released.
func TestKeypadConfirmTimeoutPressed(t *testing.T) {
	k := newTestKeypad(t)
	k.confirmTimeout = 50 * time.Millisecond
	k.ConfirmScans(20 * time.Millisecond)
	err := k.Tap('5', time.Millisecond)
	require.ErrorContains(t, err, `key '5' pressed, the scanner never read it down for 20ms within 50ms`)
	require.Empty(t, k.Down())
}

// A scanner that reads the key down but stops reading before it is released:
// the tap's wait for the release is bounded too.
func TestKeypadConfirmTimeoutReleased(t *testing.T) {
	k := newTestKeypad(t)
	k.confirmTimeout = 50 * time.Millisecond
	k.ConfirmScans(time.Millisecond)
	selectRow(t, k, 1)
	col := k.ColPins()[1]
	go func() {
		// Wake on the press's falling edge, read the key while it is down,
		// then never again.
		if !col.WaitForEdge(5 * time.Second) {
			return
		}
		for len(k.Down()) > 0 {
			col.Read()
		}
	}()
	err := k.Tap('5', time.Millisecond)
	require.ErrorContains(t, err, `key '5' released, the scanner never read it up or went idle for 1ms within 50ms`)
	require.Empty(t, k.Down())
}

// ConfirmScans(0) turns the mode off again: a tap then takes its hold only.
func TestKeypadConfirmOff(t *testing.T) {
	k := newTestKeypad(t)
	k.confirmTimeout = time.Hour
	k.ConfirmScans(20 * time.Millisecond)
	k.ConfirmScans(-time.Second)
	require.Zero(t, k.ConfirmDebounce())
	k.ConfirmScans(0)
	require.Zero(t, k.ConfirmDebounce())
	require.NoError(t, k.Tap('5', time.Millisecond))
	require.Empty(t, k.Down())
}
