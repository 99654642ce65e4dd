package depot_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
)

// TestBridgeProcess runs the bridge as its own process: a box connects, the
// bridge is SIGKILLed and restarted (and restarted in order), and each time
// the box is back online with the same admin client and the same data.
func TestBridgeProcess(t *testing.T) {
	ctx := t.Context()
	d, err := depot.Start(ctx, depot.Options{Dir: t.TempDir(), Boxes: 1, Smartboxd: depottest.Smartboxd(t),
		BridgeProcess: true, SmartboxBridge: depottest.SmartboxBridge(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	require.Nil(t, d.Bridge())
	id := d.Boxes()[0].ID
	online := func() bool {
		var boxes []adminapi.BoxInfo
		if err := d.Admin().Do(ctx, http.MethodGet, "/v1/boxes", nil, &boxes); err != nil {
			return false
		}
		for _, b := range boxes {
			if b.ID == id && b.Status != nil && b.Status.Online {
				return true
			}
		}
		return false
	}
	require.Eventually(t, online, waitFor, 50*time.Millisecond)

	require.NoError(t, d.KillBridge(ctx))
	require.Equal(t, 1, d.BridgeKills())
	require.True(t, d.BrokerUp())
	require.Eventually(t, online, waitFor, 50*time.Millisecond)

	require.NoError(t, d.RestartBroker(ctx))
	require.Eventually(t, online, waitFor, 50*time.Millisecond)
	require.NoError(t, d.Close())
}
