package boardprofile

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
)

// TestRender: every profile renders a config that parses, validates and
// names only the board's pins, with and without a [cloud] table.
func TestRender(t *testing.T) {
	for _, p := range All() {
		for _, cloud := range []*Cloud{nil, {BrokerURL: "ssl://mqtt.example.com:8883", CAFile: "tls/ca.crt", CertFile: "tls/box.crt", KeyFile: "tls/box.key"}} {
			b, err := p.Render(Params{BoxID: "depot-1-box-1", Cloud: cloud})
			require.NoError(t, err, p.Name)
			c, err := boxconfig.ParseConfig("x.toml", b)
			require.NoError(t, err)
			require.Equal(t, "depot-1-box-1", c.BoxID)
			require.Equal(t, p.Hardware, c.Hardware.Profile)
			require.Equal(t, cloud != nil, c.Cloud != nil, p.Name)
		}
	}
}

// TestCheckPins: a pin the board lacks, and one it keeps for a bus, are
// refused with the field, the pin and the board named.
func TestCheckPins(t *testing.T) {
	p, err := ByName("rpi4")
	require.NoError(t, err)
	b, err := p.Render(Params{BoxID: "b1"})
	require.NoError(t, err)
	c, err := boxconfig.ParseConfig("x.toml", b)
	require.NoError(t, err)
	c.Hardware.Slots.Locks[2] = "LOCK3"
	require.ErrorContains(t, p.CheckPins(c), `hardware.slots.locks: pin 3 "LOCK3": a rpi4 board has no such line (it has GPIO0..GPIO27)`)
	c.Hardware.Slots.Locks[2] = "GPIO14"
	require.ErrorContains(t, p.CheckPins(c), `pin 3 "GPIO14" is the fob reader's UART (TXD)`)

	v1, err := ByName("smartbox-v1")
	require.NoError(t, err)
	c.Hardware.Slots.Locks[2] = "GPIO2"
	require.ErrorContains(t, v1.CheckPins(c), "the expanders' I2C")

	_, err = ByName("rpi6")
	require.ErrorContains(t, err, `no board profile "rpi6": want one of rpi3, rpi4, rpi5, smartbox-v1, sim`)
}
