package box_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
)

// newReturnRig is a box whose key k1 is out, its fob scanned at the reader:
// slot 1 is released for the key's return.
func newReturnRig(t *testing.T, b store.Batch) *rig {
	r := newRig(t, box.Config{}, b)
	r.sense(1, false)
	r.c.FobScanned("0100000001")
	r.c.Flush()
	r.newEvents()
	require.Equal(t, []int{1}, r.hw.openSlots())
	return r
}

// TestReturnSettle: the slot relocks the moment a key is seated; key_returned
// follows once the sensor has seen it seated for ReturnSettle, and says how
// long it did (SeatedMS) and what let it in (ReturnBy).
func TestReturnSettle(t *testing.T) {
	settle := box.DefaultReturnSettle

	t.Run("seated and stays", func(t *testing.T) {
		r := newReturnRig(t, store.Batch{Keys: keys(1)})
		seated := r.clock.Now()
		r.sense(1, true)
		require.Empty(t, r.hw.openSlots(), "relocked at once")
		evs := r.expect(box.EventSlotRelocked)
		require.Equal(t, box.ReasonKeyReturned, evs[0].Reason)
		r.advance(settle - time.Millisecond)
		r.expect()
		r.advance(time.Millisecond)
		evs = r.expect(box.EventKeyReturned)
		require.Equal(t, box.ReturnByFob, evs[0].ReturnBy)
		require.GreaterOrEqual(t, evs[0].SeatedMS, settle.Milliseconds())
		require.Equal(t, "k1", evs[0].KeyID)
		require.Equal(t, "0100000001", evs[0].FobUID)
		require.Equal(t, seated, evs[0].Time, "the time the key was seated")
	})
	t.Run("touched and pulled", func(t *testing.T) {
		r := newReturnRig(t, store.Batch{Keys: keys(1)})
		r.sense(1, true)
		r.expect(box.EventSlotRelocked)
		r.advance(300 * time.Millisecond)
		r.sense(1, false)
		evs := r.expect(box.EventKeyReturned, box.EventSlotUnexpected)
		require.Equal(t, box.ReturnByFob, evs[0].ReturnBy)
		require.Equal(t, int64(300), evs[0].SeatedMS)
		require.Less(t, evs[0].SeatedMS, settle.Milliseconds(), "not proof the key is back")
		r.advance(settle)
		r.expect() // no second key_returned
	})
	t.Run("box stops while settling", func(t *testing.T) {
		r := newReturnRig(t, store.Batch{Keys: keys(1)})
		r.sense(1, true)
		r.advance(500 * time.Millisecond)
		r.restart()
		evs := r.expect(box.EventSlotRelocked, box.EventKeyReturned, box.EventBoxStopped, box.EventBoxStarted)
		require.Equal(t, int64(500), evs[1].SeatedMS)
	})
	t.Run("released for taking while settling", func(t *testing.T) {
		r := newReturnRig(t, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
		r.sense(1, true)
		r.advance(time.Second)
		r.typeKeys("123456#")
		evs := r.expect(box.EventSlotRelocked, box.EventCodeAccepted, box.EventKeyReturned, box.EventSlotReleased)
		require.Equal(t, int64(1000), evs[2].SeatedMS, "the return first, with what it was seen")
		r.advance(settle)
		require.NotContains(t, types(r.newEvents()), box.EventKeyReturned)
	})
	t.Run("remote", func(t *testing.T) {
		r := newRig(t, box.Config{}, store.Batch{Keys: keys(1)})
		r.sense(1, false)
		r.newEvents()
		require.NoError(t, r.c.RemoteRelease(1, "tech", "key back from the garage", "cmd-1"))
		r.sense(1, true)
		require.Empty(t, r.hw.openSlots())
		evs := r.expect(box.EventSlotReleased, box.EventSlotRelocked)
		require.Equal(t, box.PurposeRemote, evs[1].Purpose)
		r.advance(settle)
		evs = r.expect(box.EventKeyReturned)
		require.Equal(t, box.ReturnByRemote, evs[0].ReturnBy)
		require.Equal(t, box.PurposeRemote, evs[0].Purpose)
		require.GreaterOrEqual(t, evs[0].SeatedMS, settle.Milliseconds())
	})
}
