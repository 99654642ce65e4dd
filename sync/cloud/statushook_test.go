package cloud_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// A received status is kept, then handed to the OnStatus hooks with when
// the cloud received it; one speaking for another box is neither.
func TestReceiveStatusRunsHooksAfterStoring(t *testing.T) {
	e := newEnv(t, nil)
	type call struct {
		box string
		st  wire.Status
		at  time.Time
	}
	var got []call
	e.c.OnStatus(func(boxID string, st wire.Status, at time.Time) {
		kept, ok, err := e.c.Status(boxID)
		require.NoError(t, err)
		require.True(t, ok, "the hook runs after the status is stored")
		require.Equal(t, st, kept)
		got = append(got, call{boxID, st, at})
	})
	st := wire.Status{V: wire.Version, Box: "box-a", Online: true, Revision: 4}
	require.NoError(t, e.c.ReceiveStatus("box-a", st))
	require.Len(t, got, 1)
	require.Equal(t, "box-a", got[0].box)
	require.Equal(t, st, got[0].st)
	require.True(t, got[0].at.Equal(e.clock.Now()), "received at the cloud's clock")

	require.ErrorIs(t, e.c.ReceiveStatus("box-a", wire.Status{V: wire.Version, Box: "box-b"}), wire.ErrWrongBox)
	require.Len(t, got, 1, "a refused status reaches no hook")
}
