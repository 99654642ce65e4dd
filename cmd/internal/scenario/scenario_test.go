package scenario_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/cmd/internal/scenario"
)

// TestScenarios plays every scenario, each on a fresh depot with a real
// smartboxd process, as `smartbox-sim --scenario all` does.
func TestScenarios(t *testing.T) {
	bin := depottest.Smartboxd(t)
	for _, s := range scenario.All {
		t.Run(s.Name, func(t *testing.T) {
			var out bytes.Buffer
			err := scenario.RunOne(t.Context(), s, depot.Options{Dir: t.TempDir(), Smartboxd: bin}, &out)
			t.Log("\n" + out.String())
			require.NoError(t, err)
		})
	}
}

func TestSelect(t *testing.T) {
	all, err := scenario.Select("all")
	require.NoError(t, err)
	require.Len(t, all, len(scenario.All))
	one, err := scenario.Select("offline")
	require.NoError(t, err)
	require.Equal(t, "offline", one[0].Name)
	_, err = scenario.Select("nope")
	require.ErrorContains(t, err, `no scenario "nope": want one of automatic, prompt`)
}
