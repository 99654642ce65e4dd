package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSoftwareVersion(t *testing.T) {
	require.Equal(t, "smartboxd v1.2.0", softwareVersion("v1.2.0")[:len("smartboxd v1.2.0")])
	require.Contains(t, softwareVersion(""), "smartboxd ")
}
