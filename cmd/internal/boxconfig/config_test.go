package boxconfig

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

func TestExampleConfigsParse(t *testing.T) {
	for _, tc := range []struct {
		file    string
		profile string
	}{
		{"smartboxd.example.toml", ProfileSmartBoxV1},
		{"smartboxd.sim.toml", ProfileSim},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			c, err := LoadConfig(filepath.Join("..", "..", "smartboxd", tc.file))
			require.NoError(t, err)
			require.NoError(t, c.Validate())
			require.Equal(t, tc.profile, c.Hardware.Profile)
			require.Equal(t, 12, c.Hardware.Slots.Count)
			require.Equal(t, 5*time.Second <= c.Timing.Release.Duration, true)
			bc, err := c.BoxConfig(time.Time{}).WithDefaults()
			require.NoError(t, err)
			require.Equal(t, 12, bc.Slots)
		})
	}
}

func TestExampleConfigPins(t *testing.T) {
	c, err := LoadConfig(filepath.Join("..", "..", "smartboxd", "smartboxd.example.toml"))
	require.NoError(t, err)
	require.Equal(t, []string{"GPIO5", "GPIO6", "GPIO13", "GPIO19"}, c.Hardware.Keypad.Rows)
	require.Len(t, c.Hardware.Slots.Locks, 12)
	require.Equal(t, "/dev/serial0", c.Hardware.Reader.Port)
	require.Equal(t, 9600, c.Hardware.Reader.Baud)
	require.Equal(t, 20*time.Millisecond, c.Hardware.Keypad.Debounce.Duration)
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig("min.toml", []byte("box_id = \"b1\"\n[hardware]\nprofile = \"sim\"\n"))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Equal(t, DefaultDataDir, c.DataDir)
	require.Equal(t, 12, c.Hardware.Slots.Count)
	require.Equal(t, 9600, c.Hardware.Reader.Baud)
	require.Equal(t, VariantRDM6300, c.Hardware.Reader.Variant)
	require.Equal(t, 5*time.Second, c.Timing.Release.Duration)
	require.Equal(t, 10*time.Second, c.Hardware.Slots.HardMax.Duration)
	require.Equal(t, "refuse", c.Clock.Untrusted)
	require.Equal(t, 5, c.Lockout.Threshold)
	require.Equal(t, box.DefaultLockoutBudget, c.Lockout.Budget)
	require.Equal(t, box.DefaultLockoutRefill, c.Lockout.Refill.Duration)
	bc, err := c.BoxConfig(time.Time{}).WithDefaults()
	require.NoError(t, err)
	require.Equal(t, box.DefaultLockoutBudget, bc.LockoutBudget)
	require.Equal(t, box.DefaultLockoutRefill, bc.LockoutRefill)
}

// TestLockoutBudgetConfig: [lockout] budget and refill reach box.Config.
func TestLockoutBudgetConfig(t *testing.T) {
	c, err := ParseConfig("b.toml", []byte("box_id = \"b1\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nbudget = 7\nrefill = \"90h\"\n"))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	bc := c.BoxConfig(time.Time{})
	require.Equal(t, 7, bc.LockoutBudget)
	require.Equal(t, 90*time.Hour, bc.LockoutRefill)
}

// pinArray makes a TOML array of n pin names with a prefix.
func pinArray(prefix string, n int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + prefix + strconv.Itoa(i+1) + `"`)
	}
	b.WriteString("]")
	return b.String()
}

// v1 is a valid smartbox-v1 config with hooks to break one thing.
func v1(mod func(map[string]string)) string {
	f := map[string]string{
		"box_id":   `"box-7"`,
		"rows":     `["GPIO5", "GPIO6", "GPIO13", "GPIO19"]`,
		"cols":     `["GPIO26", "GPIO20", "GPIO21"]`,
		"debounce": `"20ms"`,
		"locks":    pinArray("L", 12),
		"sensors":  pinArray("S", 12),
		"leds":     pinArray("D", 12),
		"port":     `"/dev/serial0"`,
		"release":  `"5s"`,
		"extra":    "",
	}
	if mod != nil {
		mod(f)
	}
	var b strings.Builder
	if f["box_id"] != "" {
		b.WriteString("box_id = " + f["box_id"] + "\n")
	}
	b.WriteString("data_dir = \"/tmp/x\"\n\n[hardware]\nprofile = \"smartbox-v1\"\n\n")
	b.WriteString("[hardware.keypad]\nrows = " + f["rows"] + "\ncols = " + f["cols"] + "\ndebounce = " + f["debounce"] + "\n\n")
	b.WriteString("[hardware.slots]\ncount = 12\nlocks = " + f["locks"] + "\nsensors = " + f["sensors"] + "\nleds = " + f["leds"] + "\n\n")
	b.WriteString("[hardware.reader]\nport = " + f["port"] + "\n\n")
	b.WriteString("[timing]\nrelease = " + f["release"] + "\n" + f["extra"] + "\n")
	return b.String()
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"valid", v1(nil), nil},
		{"unknown key", v1(func(f map[string]string) { f["extra"] = "relese_max = \"5s\"" }),
			[]string{"smartboxd.toml:", "timing.relese_max: unknown key"}},
		{"unknown table", "box_id = \"b\"\n[hardwear]\nprofile = \"sim\"\n",
			[]string{"smartboxd.toml:2: hardwear: unknown key"}},
		{"wrong lock pin count", v1(func(f map[string]string) { f["locks"] = pinArray("L", 11) }),
			[]string{"smartboxd.toml:", "hardware.slots.locks: has 11 pins, want 12 (one per slot)"}},
		{"wrong sensor pin count", v1(func(f map[string]string) { f["sensors"] = pinArray("S", 13) }),
			[]string{"hardware.slots.sensors: has 13 pins, want 12 (one per slot)"}},
		{"wrong led count", v1(func(f map[string]string) { f["leds"] = pinArray("D", 3) }),
			[]string{"hardware.slots.leds: has 3 pins, want 12 (one per slot) or none"}},
		{"no leds is fine", v1(func(f map[string]string) { f["leds"] = "[]" }), nil},
		{"wrong row count", v1(func(f map[string]string) { f["rows"] = `["GPIO5"]` }),
			[]string{"hardware.keypad.rows: has 1 pins, want 4 (one per layout row)"}},
		{"pin used twice", v1(func(f map[string]string) { f["cols"] = `["GPIO26", "GPIO20", "L3"]` }),
			[]string{"hardware.slots.locks", `pin "L3" is used twice (hardware.keypad.cols[3] and hardware.slots.locks[3])`}},
		{"missing port", v1(func(f map[string]string) { f["port"] = `""` }),
			[]string{"hardware.reader.port: missing"}},
		{"bad duration", v1(func(f map[string]string) { f["release"] = `"5 seconds"` }),
			[]string{"smartboxd.toml:", "timing.release", `"5 seconds" is not a duration`}},
		{"bare integer duration", v1(func(f map[string]string) { f["release"] = `5` }),
			[]string{"timing.release", `"5" is not a duration`}},
		{"negative duration", v1(func(f map[string]string) { f["release"] = `"-1s"` }),
			[]string{"timing.release: -1s is negative"}},
		{"release beyond max", v1(func(f map[string]string) { f["release"] = `"12s"` }),
			[]string{"timing.release: 12s is longer than timing.release_max 10s"}},
		{"release_max beyond hard_max", v1(func(f map[string]string) { f["extra"] = `release_max = "20s"` }),
			[]string{"timing.release_max: 20s is longer than hardware.slots.hard_max 10s"}},
		{"debounce out of range", v1(func(f map[string]string) { f["debounce"] = `"2s"` }),
			[]string{"hardware.keypad.debounce: 2s is not in 1ms..500ms"}},
		{"missing box_id", v1(func(f map[string]string) { f["box_id"] = "" }),
			[]string{"smartboxd.toml: box_id: missing"}},
		{"bad box_id", v1(func(f map[string]string) { f["box_id"] = `"box 7"` }),
			[]string{"smartboxd.toml:1: box_id:", "not a valid id"}},
		{"bad toml syntax", "box_id = \"b\"\n\n[hardware\nprofile = \"sim\"\n",
			[]string{"smartboxd.toml:3:"}},
		{"wrong type", "box_id = 7\n",
			[]string{"smartboxd.toml:1: box_id: incompatible types"}},
		{"bad profile", "box_id = \"b\"\n[hardware]\nprofile = \"pi\"\n",
			[]string{"smartboxd.toml:3: hardware.profile: \"pi\" is not \"smartbox-v1\" or \"sim\""}},
		{"bad clock policy", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[clock]\nuntrusted = \"maybe\"\n",
			[]string{"smartboxd.toml:5: clock.untrusted:"}},
		{"bad variant", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[hardware.reader]\nvariant = \"wiegand\"\n",
			[]string{"hardware.reader.variant: \"wiegand\""}},
		{"lockout max below base", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nbase = \"1m\"\nmax = \"30s\"\n",
			[]string{"smartboxd.toml:6: lockout.max: 30s is shorter than lockout.base 1m0s"}},
		{"lockout decay below max", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\ndecay = \"1m\"\n",
			[]string{"smartboxd.toml: lockout decay: 1m0s is shorter than lockout max 5m0s"}},
		{"lockout budget zero", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nbudget = 0\n",
			[]string{"smartboxd.toml:5: lockout.budget: 0 is below 1 (the keypad would check no code at all)"}},
		{"lockout budget negative", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nbudget = -3\n",
			[]string{"smartboxd.toml:5: lockout.budget: -3 is below 1"}},
		{"lockout budget one", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nbudget = 1\n", nil},
		{"lockout refill under an hour", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nrefill = \"59m\"\n",
			[]string{"smartboxd.toml:5: lockout.refill: 59m0s is not in 1h0m0s..168h0m0s"}},
		{"lockout refill an hour", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nrefill = \"1h\"\n", nil},
		{"lockout refill over a week", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nrefill = \"169h\"\n",
			[]string{"smartboxd.toml:5: lockout.refill: 169h0m0s is not in 1h0m0s..168h0m0s"}},
		{"lockout refill negative", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nrefill = \"-1h\"\n",
			[]string{"smartboxd.toml:5: lockout.refill: -1h0m0s is negative"}},
		{"lockout refill not a duration", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\nrefill = \"60 hours\"\n",
			[]string{"lockout.refill", `"60 hours" is not a duration`}},
		{"lockout refill below decay", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[lockout]\ndecay = \"2h\"\nrefill = \"1h\"\n",
			[]string{"lockout refill: 1h0m0s is shorter than lockout decay 2h0m0s"}},
		{"duplicate layout key", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[hardware.keypad]\nlayout = [\"123\", \"456\", \"789\", \"*1#\"]\n",
			[]string{"smartboxd.toml:5: hardware.keypad.layout: key '1' appears twice"}},
		{"too many slots", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[hardware.slots]\ncount = 1000\n",
			[]string{"smartboxd.toml:5: hardware.slots.count: 1000 is not in 1..256"}},
		{"sim with wrong pin count", "box_id = \"b\"\n[hardware]\nprofile = \"sim\"\n[hardware.slots]\nlocks = [\"A\"]\n",
			[]string{"hardware.slots.locks: has 1 pins, want 12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig("/etc/smartbox/smartboxd.toml", []byte(tc.src))
			if err == nil {
				err = c.Validate()
			}
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Contains(t, err.Error(), "nope.toml")
}

// TestConfigClockFloor: [clock] floor takes an RFC 3339 string or a TOML
// date-time; anything else is an error naming the line.
func TestConfigClockFloor(t *testing.T) {
	for _, v := range []string{`"2027-01-01T00:00:00Z"`, `2027-01-01T00:00:00Z`, `"2027-01-01T01:00:00+01:00"`} {
		c, err := ParseConfig("smartboxd.toml", []byte(v1(func(f map[string]string) { f["extra"] = "[clock]\nfloor = " + v })))
		require.NoError(t, err, v)
		require.True(t, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Equal(c.Clock.Floor), "%s: %s", v, c.Clock.Floor)
	}
	_, err := ParseConfig("smartboxd.toml", []byte(v1(func(f map[string]string) { f["extra"] = "[clock]\nfloor = \"next year\"" })))
	require.ErrorContains(t, err, "smartboxd.toml:24: clock.floor: parsing time \"next year\"")
}
