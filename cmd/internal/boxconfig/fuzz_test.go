package boxconfig

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParseConfig: any bytes as a config file give a config or an error,
// never a panic; a config that validates keeps the invariants the wiring
// relies on.
func FuzzParseConfig(f *testing.F) {
	for _, p := range []string{"smartboxd.example.toml", "smartboxd.sim.toml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "smartboxd", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("box_id = \"b\"\n[hardware\n"))
	f.Add([]byte("box_id = 7\n[timing]\nrelease = 5\n"))
	f.Add([]byte("[[hardware.slots]]\n"))
	f.Add([]byte("box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[cloud]\nbroker_url = \"ssl://h:8883\"\npassword_file = \"pw\"\n"))
	f.Add([]byte("box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[cloud]\nbroker_url = \"tcp://u:p@h\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := ParseConfig("fuzz.toml", src)
		if err != nil {
			return
		}
		if c.Validate() != nil {
			return
		}
		h := c.Hardware
		n := h.Slots.Count
		if n < 1 || len(h.Keypad.Layout) == 0 {
			t.Fatalf("validated config with %d slots, layout %q", n, h.Keypad.Layout)
		}
		if h.Profile == ProfileSmartBoxV1 {
			if len(h.Slots.Locks) != n || len(h.Slots.Sensors) != n || len(h.Keypad.Rows) != len(h.Keypad.Layout) ||
				len(h.Keypad.Cols) != len(h.Keypad.Layout[0]) || h.Reader.Port == "" {
				t.Fatalf("validated smartbox-v1 config with inconsistent pins: %+v", h)
			}
		}
		if c.Timing.Release.Duration > c.Timing.ReleaseMax.Duration || c.Timing.ReleaseMax.Duration > h.Slots.HardMax.Duration {
			t.Fatalf("validated config with release %s > max %s or > hard max %s", c.Timing.Release, c.Timing.ReleaseMax, h.Slots.HardMax)
		}
		if cc := c.Cloud; cc != nil && (cc.BrokerURL == "" || cc.Username == "" || (cc.PasswordFile == "" && cc.CertFile == "")) {
			t.Fatalf("validated [cloud] without a broker, a user or credentials: %+v", cc)
		}
		if _, err := c.BoxConfig(time.Time{}).WithDefaults(); err != nil {
			t.Fatalf("validated config that box refuses: %v", err)
		}
	})
}
