package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
)

// TestChaos runs the real thing: 6 boxes for 60 s with a fixed seed, every
// kind of fault injected, and no breach.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of real processes")
	}
	s, err := Run(t.Context(), Options{Boxes: 6, Duration: 60 * time.Second, Seed: 12, Dir: t.TempDir(),
		Smartboxd: depottest.Smartboxd(t), Smartboxctl: depottest.Smartboxctl(t), SmartboxBridge: depottest.SmartboxBridge(t)})
	require.NoError(t, err)
	var out strings.Builder
	s.Print(&out)
	t.Log(out.String())
	require.Empty(t, s.Breaches)
	for _, k := range AllFaults {
		require.Positive(t, s.Faults[k], "fault %s never injected", k)
	}
	require.Positive(t, s.Typed)
	require.Positive(t, s.Assignments)
}
