package broadcast

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSignal(t *testing.T) {
	var s Signal
	a, b := s.Wait(), s.Wait()
	require.True(t, a == b, "waiters before one Notify share its channel")
	s.Notify() // wakes both
	<-a
	<-b
	s.Notify() // nobody waiting: nothing to do, never blocks
	c := s.Wait()
	select {
	case <-c:
		t.Fatal("a new wait is woken only by a later Notify")
	default:
	}
	s.Notify()
	<-c
}
