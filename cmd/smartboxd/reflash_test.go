package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
)

// TestReflashedBoxKeepsEvents: a box's SD card is re-flashed (a new store:
// new sync key, outbox back at seq 1) and the box registered again under the
// same id, as a technician does. The new card's events reach the cloud after
// the old card's, none taken for a duplicate.
func TestReflashedBoxKeepsEvents(t *testing.T) {
	r := startSyncRig(t, brokertest.Mochi)
	pw := writeSecret(t, "mqtt-password", boxPassword+"\n", 0o600)
	table := "[cloud]\nbroker_url = \"" + r.url + "\"\npassword_file = \"" + pw + "\"\n"

	runBox := func(dir string) {
		c := startConsole(t, "--config", boxConfig(t, dir, table))
		require.Eventually(t, func() bool {
			st, ok, err := r.cloud.Status(syncBoxID)
			return err == nil && ok && st.Online && st.OutboxDepth == 0
		}, waitFor, 20*time.Millisecond, "stderr:\n%s", c.stderr.String())
		c.quit(t)
		require.Eventually(t, func() bool {
			st, ok, err := r.cloud.Status(syncBoxID)
			return err == nil && ok && !st.Online
		}, waitFor, 20*time.Millisecond)
	}
	count := func(typ box.EventType) int {
		evs, err := r.cloud.Events(syncBoxID, 0, 1000)
		require.NoError(t, err)
		n := 0
		for i, e := range evs {
			require.EqualValues(t, i+1, e.Seq, "one numbering at the cloud, no gap")
			if e.Type == typ {
				n++
			}
		}
		return n
	}

	runBox(r.provisionBox(t))
	require.Equal(t, 1, count(box.EventBoxStarted))
	require.Equal(t, 1, count(box.EventBoxStopped))

	runBox(r.provisionBox(t)) // the re-flashed card, registered again
	require.Equal(t, 2, count(box.EventBoxStarted), "the new card's events are not duplicates")
	require.Equal(t, 2, count(box.EventBoxStopped))
}
