package sim

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"periph.io/x/conn/v3/gpio"
)

func newTestSlots(t *testing.T, n int, occupied bool) *Slots {
	t.Helper()
	s := NewSlots(n, occupied)
	for i := range n {
		require.NoError(t, s.LockPins()[i].Out(gpio.Low))
		require.NoError(t, s.SensorPins()[i].In(gpio.PullUp, gpio.BothEdges))
		require.NoError(t, s.LEDPins()[i].Out(gpio.Low))
	}
	return s
}

func TestSlotsMechanics(t *testing.T) {
	tests := []struct {
		name     string
		occupied bool
		release  bool
		op       func(s *Slots) error
		wantErr  error
		wantKey  bool
	}{
		{"take locked", true, false, func(s *Slots) error { return s.Take(1) }, ErrLatched, true},
		{"take released", true, true, func(s *Slots) error { return s.Take(1) }, nil, false},
		{"take empty", false, true, func(s *Slots) error { return s.Take(1) }, ErrEmpty, false},
		{"put back locked", false, false, func(s *Slots) error { return s.PutBack(1) }, ErrLatched, false},
		{"put back released", false, true, func(s *Slots) error { return s.PutBack(1) }, nil, true},
		{"put back occupied", true, true, func(s *Slots) error { return s.PutBack(1) }, ErrOccupied, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSlots(t, 2, tt.occupied)
			if tt.release {
				require.NoError(t, s.LockPins()[0].Out(gpio.High))
			}
			err := tt.op(s)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.ErrorContains(t, err, "slot 1")
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.wantKey, s.Occupied(1))
			want := gpio.High
			if tt.wantKey {
				want = gpio.Low
			}
			require.Equal(t, want, s.SensorPins()[0].Read(), "sensor follows the key")
			require.Equal(t, tt.occupied, s.Occupied(2), "other slot untouched")
		})
	}
}

func TestSlotsSensorEdges(t *testing.T) {
	s := newTestSlots(t, 1, true)
	p, err := s.SensorPin(1)
	require.NoError(t, err)
	require.NoError(t, s.LockPins()[0].Out(gpio.High))
	require.NoError(t, s.Take(1))
	require.True(t, p.WaitForEdge(0))
	require.NoError(t, s.PutBack(1))
	require.True(t, p.WaitForEdge(0))
	require.EqualValues(t, 2, p.Edges())
}

func TestSlotsSensorWithoutPullUpReadsPresent(t *testing.T) {
	s := NewSlots(1, false)
	require.NoError(t, s.SensorPins()[0].In(gpio.Float, gpio.NoEdge))
	require.Equal(t, gpio.Low, s.SensorPins()[0].Read(), "a floating sensor reads Low, i.e. a phantom key")
}

func TestSlotsReleasedLEDAndPulses(t *testing.T) {
	s := newTestSlots(t, 3, true)
	require.False(t, s.Released(2))
	require.NoError(t, s.LockPins()[1].Out(gpio.High))
	require.True(t, s.Released(2))
	require.False(t, s.Released(1))
	require.NoError(t, s.LockPins()[1].Out(gpio.Low))
	require.False(t, s.Released(2))
	require.Len(t, s.Pulses(2), 1)
	require.Empty(t, s.Pulses(1))

	require.False(t, s.LED(3))
	require.NoError(t, s.LEDPins()[2].Out(gpio.High))
	require.True(t, s.LED(3))

	require.False(t, s.Released(0))
	require.False(t, s.Occupied(4))
	require.ErrorContains(t, s.Take(4), "slot 4 out of range 1..3")
	_, err := s.SensorPin(0)
	require.Error(t, err)
	require.Equal(t, 3, s.N())
}

func TestSlotsWait(t *testing.T) {
	s := newTestSlots(t, 2, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error)
	go func() { done <- s.WaitReleased(ctx, 2) }()
	ch := s.Changed()
	require.NoError(t, s.LockPins()[1].Out(gpio.High))
	<-ch
	require.NoError(t, <-done)
	go func() { done <- s.WaitLocked(ctx, 2) }()
	require.NoError(t, s.LockPins()[1].Out(gpio.Low))
	require.NoError(t, <-done)

	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, s.WaitReleased(short, 1), context.DeadlineExceeded)
	require.Error(t, s.WaitReleased(ctx, 9))
}

func TestSlotsJam(t *testing.T) {
	s := newTestSlots(t, 2, true)
	ch := s.Changed()
	require.NoError(t, s.Jam(1, true))
	<-ch // a fault is a change
	require.True(t, s.Jammed(1))
	require.False(t, s.Jammed(2))
	require.NoError(t, s.LockPins()[0].Out(gpio.High))
	require.True(t, s.Released(1), "the lock is energised; only the latch is stuck")
	require.ErrorIs(t, s.Take(1), ErrJammed)
	require.True(t, s.Occupied(1), "the key cannot leave")

	// Nor can a key be seated in a jammed, empty slot.
	require.NoError(t, s.LockPins()[1].Out(gpio.High))
	require.NoError(t, s.Take(2))
	require.NoError(t, s.Jam(2, true))
	require.ErrorIs(t, s.PutBack(2), ErrJammed)
	require.False(t, s.Occupied(2))

	// A latched slot says latched first: the jam is behind the latch.
	require.NoError(t, s.LockPins()[0].Out(gpio.Low))
	require.ErrorIs(t, s.Take(1), ErrLatched)

	// Cleared, the slot works again.
	require.NoError(t, s.Jam(1, false))
	require.NoError(t, s.LockPins()[0].Out(gpio.High))
	require.NoError(t, s.Take(1))
	require.ErrorContains(t, s.Jam(3, true), "slot 3 out of range 1..2")
	require.False(t, s.Jammed(3))
}

func TestSlotsKillSensor(t *testing.T) {
	s := newTestSlots(t, 2, true)
	p, err := s.SensorPin(1)
	require.NoError(t, err)
	require.Equal(t, gpio.Low, p.Read(), "a seated key reads Low")
	ch := s.Changed()
	require.NoError(t, s.KillSensor(1, true))
	<-ch
	require.True(t, s.SensorDead(1))
	require.False(t, s.SensorDead(2))
	require.Equal(t, gpio.High, p.Read(), "a cut wire reads the pull-up: no key")
	require.True(t, p.WaitForEdge(0), "the cut is an edge the driver sees")
	require.True(t, s.Occupied(1), "the key is still there")
	require.Equal(t, gpio.Low, s.SensorPins()[1].Read(), "other slot untouched")

	// Taking and seating the key does not show through a dead sensor.
	require.NoError(t, s.LockPins()[0].Out(gpio.High))
	require.NoError(t, s.Take(1))
	require.NoError(t, s.PutBack(1))
	require.Equal(t, gpio.High, p.Read())

	require.NoError(t, s.KillSensor(1, false))
	require.Equal(t, gpio.Low, p.Read(), "mended, it reads the key again")
	require.ErrorContains(t, s.KillSensor(0, true), "out of range")
	require.False(t, s.SensorDead(0))
}

func TestNewSlotsHolding(t *testing.T) {
	s := NewSlotsHolding([]bool{true, false, true})
	require.Equal(t, 3, s.N())
	require.True(t, s.Occupied(1))
	require.False(t, s.Occupied(2))
	require.True(t, s.Occupied(3))
	require.Panics(t, func() { NewSlotsHolding(nil) })
}
