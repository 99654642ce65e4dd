package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The replica config in docs/cloud-service.md is one this binary accepts,
// with the share group and client id it says.
func TestCloudServiceDocConfig(t *testing.T) {
	doc, err := os.ReadFile("../../docs/cloud-service.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "```toml\n")
	require.True(t, ok, "the doc has a toml block")
	src, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	c, err := ParseConfig("docs/cloud-service.md", []byte(src))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Equal(t, "bridge-1", c.Replica)
	require.Equal(t, "smartbox-bridge", c.Broker.ShareGroup)
	require.Equal(t, "smartbox-cloud-bridge-1", c.Broker.ClientID, "the doc names this client id")
	require.Contains(t, string(doc), "`smartbox-cloud-<replica>`")
}
