package sim

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"periph.io/x/conn/v3/gpio"
)

func TestPinLevels(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *Pin)
		want  gpio.Level
	}{
		{"unconfigured floats low", func(p *Pin) {}, gpio.Low},
		{"pull-up", func(p *Pin) { require.NoError(t, p.In(gpio.PullUp, gpio.NoEdge)) }, gpio.High},
		{"pull-down", func(p *Pin) { require.NoError(t, p.In(gpio.PullDown, gpio.NoEdge)) }, gpio.Low},
		{"driven low beats pull-up", func(p *Pin) {
			require.NoError(t, p.In(gpio.PullUp, gpio.NoEdge))
			p.Drive(gpio.Low)
		}, gpio.Low},
		{"undriven returns to pull", func(p *Pin) {
			require.NoError(t, p.In(gpio.PullUp, gpio.NoEdge))
			p.Drive(gpio.Low)
			p.Undrive()
		}, gpio.High},
		{"PullNoChange keeps pull", func(p *Pin) {
			require.NoError(t, p.In(gpio.PullUp, gpio.NoEdge))
			require.NoError(t, p.In(gpio.PullNoChange, gpio.NoEdge))
		}, gpio.High},
		{"output reads what it drives", func(p *Pin) {
			p.Drive(gpio.Low)
			require.NoError(t, p.Out(gpio.High))
		}, gpio.High},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPin("P", 1)
			tt.setup(p)
			require.Equal(t, tt.want, p.Read())
			require.Equal(t, tt.want, p.Level())
		})
	}
}

func TestPinEdgeFiltering(t *testing.T) {
	tests := []struct {
		edge        gpio.Edge
		fall, raise bool // whether a falling / rising change is latched
	}{
		{gpio.NoEdge, false, false},
		{gpio.FallingEdge, true, false},
		{gpio.RisingEdge, false, true},
		{gpio.BothEdges, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.edge.String(), func(t *testing.T) {
			p := NewPin("P", 1)
			require.NoError(t, p.In(gpio.PullUp, tt.edge))
			p.Drive(gpio.Low)
			require.Equal(t, tt.fall, p.WaitForEdge(0), "falling")
			p.Undrive()
			require.Equal(t, tt.raise, p.WaitForEdge(0), "rising")
			require.False(t, p.WaitForEdge(0), "an edge is reported once")
		})
	}
}

func TestPinWaitForEdge(t *testing.T) {
	t.Run("wakes on edge", func(t *testing.T) {
		p := NewPin("P", 1)
		require.NoError(t, p.In(gpio.PullUp, gpio.FallingEdge))
		got := make(chan bool)
		go func() { got <- p.WaitForEdge(-1) }()
		require.Eventually(t, func() bool { return p.Waits() == 1 }, 5*time.Second, time.Millisecond)
		p.Drive(gpio.Low)
		require.True(t, <-got)
	})
	t.Run("times out", func(t *testing.T) {
		p := NewPin("P", 1)
		require.NoError(t, p.In(gpio.PullUp, gpio.FallingEdge))
		start := time.Now()
		require.False(t, p.WaitForEdge(20*time.Millisecond))
		require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
	})
	// In a testing/synctest bubble (where the hal tests run) the timeout is
	// the bubble's fake clock: exact, and an edge wakes the waiter at the
	// instant it happens.
	t.Run("on a synctest clock", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := NewPin("P", 1)
			require.NoError(t, p.In(gpio.PullUp, gpio.FallingEdge))
			start := time.Now()
			require.False(t, p.WaitForEdge(20*time.Millisecond))
			require.Equal(t, 20*time.Millisecond, time.Since(start))

			woke := make(chan time.Duration)
			start = time.Now()
			go func() {
				require.True(t, p.WaitForEdge(time.Second))
				woke <- time.Since(start)
			}()
			time.Sleep(10 * time.Millisecond)
			p.Drive(gpio.Low)
			require.Equal(t, 10*time.Millisecond, <-woke)
		})
	})
	t.Run("halt interrupts", func(t *testing.T) {
		p := NewPin("P", 1)
		require.NoError(t, p.In(gpio.PullUp, gpio.FallingEdge))
		got := make(chan bool)
		go func() { got <- p.WaitForEdge(-1) }()
		require.Eventually(t, func() bool { return p.Waits() == 1 }, 5*time.Second, time.Millisecond)
		require.NoError(t, p.Halt())
		require.False(t, <-got)
	})
	t.Run("In interrupts and flushes", func(t *testing.T) {
		p := NewPin("P", 1)
		require.NoError(t, p.In(gpio.PullUp, gpio.FallingEdge))
		p.Drive(gpio.Low)
		require.NoError(t, p.In(gpio.PullUp, gpio.FallingEdge))
		require.False(t, p.WaitForEdge(0), "In flushed the latched edge")
	})
	t.Run("not an edge input returns at once", func(t *testing.T) {
		p := NewPin("P", 1)
		require.NoError(t, p.Out(gpio.Low))
		require.False(t, p.WaitForEdge(-1))
	})
}

func TestPinMisc(t *testing.T) {
	p := NewPin("GPIO5", 5)
	require.Equal(t, "GPIO5", p.Name())
	require.Equal(t, "GPIO5", p.String())
	require.Equal(t, 5, p.Number())
	require.Equal(t, gpio.Float, p.DefaultPull())
	require.ErrorIs(t, p.PWM(gpio.DutyHalf, 0), ErrNoPWM)
	require.Error(t, p.In(gpio.Pull(9), gpio.NoEdge))
	require.NoError(t, p.Out(gpio.High))
	require.Equal(t, "Out/High", p.Function())
	require.True(t, p.IsOutput())
	require.NoError(t, p.SetFunc(gpio.IN))
	require.Equal(t, "In/Low", p.Function())
	require.Error(t, p.SetFunc(gpio.PWM))
}
