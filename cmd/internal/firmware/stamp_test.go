package firmware

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"1.2.3":                   "1.2.3",
		"v1.2.3-dirty":            "1.2.3+dirty",
		"v1.2.3-4-gabcdef1":       "1.2.3+4.gabcdef1",
		"v1.2.3-4-gabcdef1-dirty": "1.2.3+4.gabcdef1.dirty",
		"v1.2.3-rc.1":             "1.2.3~rc.1",
		"v1.2.3-rc1-2-g0123abcd":  "1.2.3~rc1+2.g0123abcd",
		"9c3b695":                 "0.0.0~git9c3b695",
		"9c3b695-dirty":           "0.0.0~git9c3b695+dirty",
		"dev":                     "0.0.0~dev",
		"my_build/7":              "0.0.0~my.build.7",
	} {
		got, err := DebVersion(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
}
