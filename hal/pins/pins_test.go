package pins

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

func TestInitWithoutHardware(t *testing.T) {
	require.NoError(t, Init())
	require.NoError(t, Init(), "second Init returns the first result")
}

func TestByName(t *testing.T) {
	name := fmt.Sprintf("SBTEST_GPIO_%s", t.Name())
	require.NoError(t, gpioreg.Register(&gpiotest.Pin{N: name, Num: 901}))
	t.Cleanup(func() { _ = gpioreg.Unregister(name) })

	tests := []struct {
		name    string
		pin     string
		wantErr []string
	}{
		{name: "registered", pin: name},
		{name: "unknown", pin: "GPIO17", wantErr: []string{"keypad row 2", `no GPIO pin named "GPIO17"`, "periph loaded", "is this the box?"}},
		{name: "empty", pin: "", wantErr: []string{"keypad row 2", "no GPIO pin name configured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ByName("keypad row 2", tt.pin)
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, tt.pin, p.Name())
				return
			}
			require.Error(t, err)
			require.Nil(t, p)
			for _, s := range tt.wantErr {
				require.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestByNamesReportsEveryMissingPin(t *testing.T) {
	_, err := ByNames("slot lock", []string{"NOPE_A", "NOPE_B"})
	require.Error(t, err)
	require.Contains(t, err.Error(), `slot lock 1: no GPIO pin named "NOPE_A"`)
	require.Contains(t, err.Error(), `slot lock 2: no GPIO pin named "NOPE_B"`)
}
