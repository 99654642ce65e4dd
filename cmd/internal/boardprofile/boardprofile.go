package boardprofile

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"strings"
	"text/template"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
)

//go:embed profiles/*.toml.tmpl
var templates embed.FS

// Profile is one board.
type Profile struct {
	Name        string // "rpi4"
	Description string // for `smartboxctl provision --list-profiles`
	// Hardware is the config's hardware.profile for this board.
	Hardware string
	// Pins are the GPIO line names the board offers; nil for the sim.
	Pins []string
	// Reserved are lines the board uses for its own buses, by why: a
	// config must not name them.
	Reserved map[string]string
	// template is the file in profiles/ that renders its config.
	template string
}

// header is the Raspberry Pi 40-pin header's GPIO lines.
var header = func() []string {
	var p []string
	for i := range 28 {
		p = append(p, fmt.Sprintf("GPIO%d", i))
	}
	return p
}()

// piReserved are the header lines every profile leaves alone: the HAT
// EEPROM's I2C, and the reader's UART.
var piReserved = map[string]string{
	"GPIO0":  "the HAT ID EEPROM's I2C (ID_SD)",
	"GPIO1":  "the HAT ID EEPROM's I2C (ID_SC)",
	"GPIO14": "the fob reader's UART (TXD)",
	"GPIO15": "the fob reader's UART (RXD)",
}

// expanderLines are the SmartBox v1's MCP23017 lines, as its overlay names them.
var expanderLines = func() []string {
	var p []string
	for _, role := range []string{"LOCK", "KEY", "LED"} {
		for i := 1; i <= 12; i++ {
			p = append(p, fmt.Sprintf("%s%d", role, i))
		}
	}
	return p
}()

func withReserved(extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range piReserved {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

var all = []Profile{
	{Name: "rpi3", Description: "Raspberry Pi 3 wired to its header: 4x3 keypad, 4 slots", Hardware: boxconfig.ProfileSmartBoxV1,
		Pins: header, Reserved: piReserved, template: "header.toml.tmpl"},
	{Name: "rpi4", Description: "Raspberry Pi 4 wired to its header: 4x3 keypad, 4 slots", Hardware: boxconfig.ProfileSmartBoxV1,
		Pins: header, Reserved: piReserved, template: "header.toml.tmpl"},
	{Name: "rpi5", Description: "Raspberry Pi 5 wired to its header (RP1): 4x3 keypad, 4 slots", Hardware: boxconfig.ProfileSmartBoxV1,
		Pins: header, Reserved: piReserved, template: "header.toml.tmpl"},
	{Name: "smartbox-v1", Description: "SmartBox v1: Raspberry Pi, 4x3 keypad on the header, 12 slots on three MCP23017 expanders (I2C)",
		Hardware: boxconfig.ProfileSmartBoxV1, Pins: append(slices.Clone(header), expanderLines...),
		Reserved: withReserved(map[string]string{"GPIO2": "the expanders' I2C (SDA1)", "GPIO3": "the expanders' I2C (SCL1)"}),
		template: "smartbox-v1.toml.tmpl"},
	{Name: "sim", Description: "the simulator's board: simulated pins and reader", Hardware: boxconfig.ProfileSim, template: "sim.toml.tmpl"},
}

// All is every profile, in the order above.
func All() []Profile { return slices.Clone(all) }

// Names lists the profiles' names, for messages.
func Names() string {
	var n []string
	for _, p := range all {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

// ByName finds a profile; the error lists the ones there are.
func ByName(name string) (Profile, error) {
	for _, p := range all {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("no board profile %q: want one of %s", name, Names())
}

// Cloud is the [cloud] table a rendered config gets; paths are relative
// to the config file's directory (boxconfig resolves them so).
type Cloud struct {
	BrokerURL string
	CAFile    string
	CertFile  string
	KeyFile   string
}

// Params fill a profile's template.
type Params struct {
	BoxID   string
	DataDir string // "" leaves the default (/var/lib/smartbox)
	Cloud   *Cloud // nil: an offline box (the [cloud] table commented out)
}

// Render writes the profile's config for a box, and checks it: it parses,
// validates and names only pins the board has.
func (p Profile) Render(v Params) ([]byte, error) {
	t, err := template.ParseFS(templates, "profiles/common.toml.tmpl", "profiles/"+p.template)
	if err != nil {
		return nil, fmt.Errorf("board profile %s: %w", p.Name, err)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, p.template, struct {
		Profile
		Params
	}{p, v}); err != nil {
		return nil, fmt.Errorf("board profile %s: %w", p.Name, err)
	}
	c, err := boxconfig.ParseConfig("smartboxd.toml", b.Bytes())
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := p.CheckPins(c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CheckPins says whether every pin c names is one this board has and does
// not keep for its own buses. The error names the field, the pin and the
// board.
func (p Profile) CheckPins(c *boxconfig.Config) error {
	if p.Pins == nil {
		return nil
	}
	for _, l := range c.PinLists() {
		for i, pin := range l.Pins {
			if why, ok := p.Reserved[pin]; ok {
				return c.FieldErr(l.Field, "pin %d %q is %s on a %s board: wire it to another line", i+1, pin, why, p.Name)
			}
			if !slices.Contains(p.Pins, pin) {
				return c.FieldErr(l.Field, "pin %d %q: a %s board has no such line (it has %s)", i+1, pin, p.Name, describe(p.Pins))
			}
		}
	}
	return nil
}

// describe shortens a pin list for a message: "GPIO0..GPIO27, LOCK1..LOCK12, ...".
func describe(pins []string) string {
	var out []string
	for i := 0; i < len(pins); {
		j := i
		prefix := strings.TrimRight(pins[i], "0123456789")
		for j+1 < len(pins) && strings.TrimRight(pins[j+1], "0123456789") == prefix {
			j++
		}
		if j > i {
			out = append(out, pins[i]+".."+pins[j])
		} else {
			out = append(out, pins[i])
		}
		i = j + 1
	}
	return strings.Join(out, ", ")
}
