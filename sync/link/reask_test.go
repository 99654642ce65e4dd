package link_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/link"
)

// A sync request taken by a replica killed before it answered (the test
// cloud eats the first ones) is asked again within a few AckTimeouts, not at
// the 15-minute periodic sync, and the box becomes current.
func TestSyncReaskAfterLostRequest(t *testing.T) {
	t.Parallel()
	for _, k := range brokertest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, k, brokertest.Options{})
			st := openBox(t, t.TempDir()+"/box.db")
			pub, err := st.SyncPublicKey()
			require.NoError(t, err)
			tc := startCloud(t, b, pub)
			_, err = tc.PutBatch(boxID, testKeys(), grants(0, 20, "k1"))
			require.NoError(t, err)
			tc.dropRequests.Store(2) // the connect request and the first re-ask
			startLink(t, b, st, func(o *link.Options) {
				o.AckTimeout, o.MaxAckWait = 100*time.Millisecond, 400*time.Millisecond
			})
			// 100 + 200 ms of waits: waitFor only ends a hung test.
			requireSameRecords(t, tc, st, waitFor)
			reqs := tc.syncRequests()
			require.GreaterOrEqual(t, len(reqs), 3)
			require.Equal(t, "connect", reqs[0].Reason)
			require.Equal(t, "no_answer", reqs[1].Reason)
			require.Equal(t, "no_answer", reqs[2].Reason)

		})
	}
}

// The re-asks back off: with the cloud answering nothing, the box asks at
// AckTimeout, then twice as long each time up to MaxAckWait. The box can
// only ask late, never early, so from the first re-ask to the fifth is at
// least the sum of the four waits between (200, 400, 400, 400 ms), less
// what the broker's delivery may vary; asking every AckTimeout would take
// 400 ms. (The exact sequence, on a stepped clock: TestSyncReaskBacksOff.)
func TestSyncReaskBacksOffOnBroker(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Kinds(t)[0], brokertest.Options{})
	st := openBox(t, t.TempDir()+"/box.db")
	pub, err := st.SyncPublicKey()
	require.NoError(t, err)
	tc := startCloud(t, b, pub)
	tc.dropRequests.Store(1 << 30) // the cloud is down
	startLink(t, b, st, func(o *link.Options) {
		o.AckTimeout, o.MaxAckWait = 100*time.Millisecond, 400*time.Millisecond
	})
	var at []time.Time
	require.Eventually(t, func() bool { at = tc.syncRequestTimes(); return len(at) >= 6 }, waitFor, 10*time.Millisecond)
	require.GreaterOrEqual(t, at[5].Sub(at[1]), 1200*time.Millisecond, "re-asks 1 to 5 at %v", at[1:6])
	for _, r := range tc.syncRequests()[1:6] {
		require.Equal(t, "no_answer", r.Reason)
	}
}
