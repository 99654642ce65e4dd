package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/smartbox-oss/smartbox/box"
)

// Hardware profiles.
const (
	ProfileSmartBoxV1 = "smartbox-v1"
	ProfileSim        = "sim"
)

// Reader variants: the frame layouts hal/rfid understands. The decoder takes
// both at once; the variant matters to the simulator and to documentation.
const (
	VariantRDM6300 = "rdm6300"
	VariantID12    = "id12"
)

// DefaultConfigPath is where smartboxd looks for its config on a box.
const DefaultConfigPath = "/etc/smartbox/smartboxd.toml"

// DefaultDataDir holds box.db when the config names no data_dir.
const DefaultDataDir = "/var/lib/smartbox"

// Config is smartboxd's TOML config file. See cmd/smartboxd/smartboxd.example.toml
// for the documented version of every field.
type Config struct {
	BoxID    string         `toml:"box_id"`
	DataDir  string         `toml:"data_dir"`
	Hardware HardwareConfig `toml:"hardware"`
	Timing   TimingConfig   `toml:"timing"`
	Lockout  LockoutConfig  `toml:"lockout"`
	Clock    ClockConfig    `toml:"clock"`
	// Cloud is the sync link; nil (no [cloud] table) is an offline box.
	Cloud *CloudConfig `toml:"cloud"`

	// file is the config's path, for error messages; src its bytes, to find
	// the line of a field that fails validation.
	file string
	src  []byte
}

// HardwareConfig selects the hardware profile and names its pins.
type HardwareConfig struct {
	Profile string       `toml:"profile"`
	Keypad  KeypadConfig `toml:"keypad"`
	Slots   SlotsConfig  `toml:"slots"`
	Reader  ReaderConfig `toml:"reader"`
}

// KeypadConfig names the matrix keypad's pins.
type KeypadConfig struct {
	Layout   []string `toml:"layout"`
	Rows     []string `toml:"rows"`
	Cols     []string `toml:"cols"`
	Debounce Duration `toml:"debounce"`
}

// SlotsConfig sets the slot count and names each slot's pins.
//
// The count lives here (hardware.slots.count) rather than as hardware.slots:
// TOML cannot have hardware.slots be both a number and a table.
type SlotsConfig struct {
	Count    int      `toml:"count"`
	Locks    []string `toml:"locks"`
	Sensors  []string `toml:"sensors"`
	LEDs     []string `toml:"leds"`
	HardMax  Duration `toml:"hard_max"`
	Debounce Duration `toml:"debounce"`
}

// ReaderConfig is the RFID reader's UART.
type ReaderConfig struct {
	Port    string `toml:"port"`
	Baud    int    `toml:"baud"`
	Variant string `toml:"variant"`
}

// TimingConfig is how long a slot stays released and how long an entry lasts.
type TimingConfig struct {
	Release      Duration `toml:"release"`
	ReleaseMax   Duration `toml:"release_max"`
	EntryTimeout Duration `toml:"entry_timeout"`
}

// LockoutConfig is the wrong-code back-off.
type LockoutConfig struct {
	Threshold int      `toml:"threshold"`
	Base      Duration `toml:"base"`
	Max       Duration `toml:"max"`
}

// ClockConfig says what windowed grants do while the clock is untrusted.
type ClockConfig struct {
	Untrusted string `toml:"untrusted"`
}

// Duration is a time.Duration written as a string ("5s", "250ms").
//
// toml's own time.Duration support takes a bare integer as nanoseconds, so
// `release = 5` would mean 5 ns; this type refuses anything but a string
// with a unit.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: write it as a string with a unit, e.g. \"5s\" or \"250ms\"", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default values for fields left out of the file.
const (
	defaultKeypadDebounce = 20 * time.Millisecond
	defaultSensorDebounce = 50 * time.Millisecond
	defaultHardMax        = 10 * time.Second
	defaultBaud           = 9600
)

var defaultLayout = []string{"123", "456", "789", "*0#"}

var tomlErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// LoadConfig reads, decodes and validates the config file at path.
func LoadConfig(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, src)
}

// ParseConfig decodes src strictly (unknown keys are errors) and fills
// defaults. It does not validate: call Validate once command-line overrides
// are applied. Errors name the file, the line where known, and the field.
func ParseConfig(path string, src []byte) (*Config, error) {
	c := &Config{file: path, src: src}
	md, err := toml.NewDecoder(bytes.NewReader(src)).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.LastKey != "" {
				msg = pe.LastKey + ": " + msg
			}
			line := pe.Position.Line
			// An error "at" the newline that ends a line (an unclosed
			// [table) is reported on the next line; point at the line
			// the technician has to fix.
			if st := pe.Position.Start; st >= 0 && st < len(src) && src[st] == '\n' {
				line = bytes.Count(src[:st], []byte("\n")) + 1
			}
			return nil, fmt.Errorf("%s:%d: %s", c.name(), line, msg)
		}
		// Type mismatches come as plain errors shaped
		// `toml: line N (last key "k"): msg`: reshape them like the rest.
		if m := tomlErrRE.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("%s:%s: %s: %s", c.name(), m[1], m[2], m[3])
		}
		return nil, fmt.Errorf("%s: %w", c.name(), err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, c.fieldErr(k.String(), "unknown key (misspelt, or not in this version of smartboxd)")
	}
	c.fillDefaults()
	return c, nil
}

func (c *Config) fillDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	h := &c.Hardware
	if h.Profile == "" {
		h.Profile = ProfileSmartBoxV1
	}
	if len(h.Keypad.Layout) == 0 {
		h.Keypad.Layout = slices.Clone(defaultLayout)
	}
	if h.Keypad.Debounce.Duration == 0 {
		h.Keypad.Debounce.Duration = defaultKeypadDebounce
	}
	if h.Slots.Count == 0 {
		h.Slots.Count = box.DefaultSlots
	}
	if h.Slots.HardMax.Duration == 0 {
		h.Slots.HardMax.Duration = defaultHardMax
	}
	if h.Slots.Debounce.Duration == 0 {
		h.Slots.Debounce.Duration = defaultSensorDebounce
	}
	if h.Reader.Baud == 0 {
		h.Reader.Baud = defaultBaud
	}
	if h.Reader.Variant == "" {
		h.Reader.Variant = VariantRDM6300
	}
	// The controller's numbers take box.Config's defaults, so that the
	// defaults live in one place and validation sees the values in force.
	def, _ := box.Config{}.WithDefaults()
	fill := func(d *Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	fill(&c.Timing.Release, def.ReleaseTime)
	fill(&c.Timing.ReleaseMax, def.MaxReleaseTime)
	fill(&c.Timing.EntryTimeout, def.EntryTimeout)
	fill(&c.Lockout.Base, def.LockoutBase)
	fill(&c.Lockout.Max, def.LockoutMax)
	if c.Lockout.Threshold == 0 {
		c.Lockout.Threshold = def.LockoutThreshold
	}
	if c.Clock.Untrusted == "" {
		c.Clock.Untrusted = string(def.UntrustedClock)
	}
}

// name is the file name used in messages: the base name keeps them short and
// is what a technician sees in the editor's title.
func (c *Config) name() string {
	if c.file == "" {
		return "config"
	}
	return filepath.Base(c.file)
}

// fieldErr makes "file:line: field: msg", with the line of field when it is
// written in the file (defaults have no line).
func (c *Config) fieldErr(field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := findKeyLine(c.src, field); line > 0 {
		return fmt.Errorf("%s:%d: %s: %s", c.name(), line, field, msg)
	}
	return fmt.Errorf("%s: %s: %s", c.name(), field, msg)
}

// Validate checks every field before anything touches hardware or the store.
func (c *Config) Validate() error {
	if c.BoxID == "" {
		return c.fieldErr("box_id", "missing: every box needs an id (letters, digits, ._:@-)")
	}
	if !box.ValidID(c.BoxID) {
		return c.fieldErr("box_id", "%q is not a valid id: want 1-128 letters, digits or ._:@-", c.BoxID)
	}
	h := &c.Hardware
	switch h.Profile {
	case ProfileSmartBoxV1, ProfileSim:
	default:
		return c.fieldErr("hardware.profile", "%q is not %q or %q", h.Profile, ProfileSmartBoxV1, ProfileSim)
	}
	n := h.Slots.Count
	if n < 1 || n > box.MaxSlots {
		return c.fieldErr("hardware.slots.count", "%d is not in 1..%d", n, box.MaxSlots)
	}
	if err := c.validateKeypad(); err != nil {
		return err
	}
	if err := c.validateSlotPins(); err != nil {
		return err
	}
	if err := c.validateReader(); err != nil {
		return err
	}
	if err := c.validateTiming(); err != nil {
		return err
	}
	if err := c.validateCloud(); err != nil {
		return err
	}
	return c.validateUniquePins()
}

func (c *Config) needPins() bool { return c.Hardware.Profile == ProfileSmartBoxV1 }

func (c *Config) validateKeypad() error {
	k := &c.Hardware.Keypad
	seen := map[rune]bool{}
	for i, row := range k.Layout {
		if len(row) != len(k.Layout[0]) || len(row) == 0 {
			return c.fieldErr("hardware.keypad.layout", "row %d %q has %d keys, want %d like row 1", i+1, row, len(row), len(k.Layout[0]))
		}
		for _, r := range row {
			if !strings.ContainsRune("0123456789*#", r) {
				return c.fieldErr("hardware.keypad.layout", "row %d: key %q is not a digit, * or #", i+1, r)
			}
			if seen[r] {
				return c.fieldErr("hardware.keypad.layout", "key %q appears twice", r)
			}
			seen[r] = true
		}
	}
	if d := k.Debounce.Duration; d < time.Millisecond || d > 500*time.Millisecond {
		return c.fieldErr("hardware.keypad.debounce", "%s is not in 1ms..500ms", d)
	}
	if err := c.pinList("hardware.keypad.rows", k.Rows, len(k.Layout), "one per layout row"); err != nil {
		return err
	}
	return c.pinList("hardware.keypad.cols", k.Cols, len(k.Layout[0]), "one per layout column")
}

func (c *Config) validateSlotPins() error {
	s := &c.Hardware.Slots
	n := s.Count
	if err := c.pinList("hardware.slots.locks", s.Locks, n, "one per slot"); err != nil {
		return err
	}
	if err := c.pinList("hardware.slots.sensors", s.Sensors, n, "one per slot"); err != nil {
		return err
	}
	// LEDs are optional on real hardware: a box without them leaves the list out.
	if len(s.LEDs) > 0 && len(s.LEDs) != n {
		return c.fieldErr("hardware.slots.leds", "has %d pins, want %d (one per slot) or none", len(s.LEDs), n)
	}
	if err := c.pinNames("hardware.slots.leds", s.LEDs); err != nil {
		return err
	}
	// The hard maximum protects the lock coils; the controller's own
	// maximum can never exceed box.HardMaxRelease either.
	if d := s.HardMax.Duration; d < 100*time.Millisecond || d > box.HardMaxRelease {
		return c.fieldErr("hardware.slots.hard_max", "%s is not in 100ms..%s", d, box.HardMaxRelease)
	}
	if d := s.Debounce.Duration; d < time.Millisecond || d > 2*time.Second {
		return c.fieldErr("hardware.slots.debounce", "%s is not in 1ms..2s", d)
	}
	return nil
}

func (c *Config) pinList(field string, pins []string, want int, why string) error {
	if len(pins) == 0 && !c.needPins() {
		return nil // the simulator makes its own pins
	}
	if len(pins) != want {
		return c.fieldErr(field, "has %d pins, want %d (%s)", len(pins), want, why)
	}
	return c.pinNames(field, pins)
}

func (c *Config) pinNames(field string, pins []string) error {
	for i, p := range pins {
		if strings.TrimSpace(p) == "" {
			return c.fieldErr(field, "pin %d is empty", i+1)
		}
	}
	return nil
}

// validateUniquePins refuses a pin named twice: a lock relay wired to the
// same GPIO as a keypad row would open a slot on every keypad scan.
func (c *Config) validateUniquePins() error {
	h := &c.Hardware
	seen := map[string]string{}
	lists := []struct {
		field string
		pins  []string
	}{
		{"hardware.keypad.rows", h.Keypad.Rows},
		{"hardware.keypad.cols", h.Keypad.Cols},
		{"hardware.slots.locks", h.Slots.Locks},
		{"hardware.slots.sensors", h.Slots.Sensors},
		{"hardware.slots.leds", h.Slots.LEDs},
	}
	for _, l := range lists {
		for i, p := range l.pins {
			where := fmt.Sprintf("%s[%d]", l.field, i+1)
			if prev, ok := seen[p]; ok {
				return c.fieldErr(l.field, "pin %q is used twice (%s and %s)", p, prev, where)
			}
			seen[p] = where
		}
	}
	return nil
}

func (c *Config) validateReader() error {
	r := &c.Hardware.Reader
	if r.Port == "" && c.needPins() {
		return c.fieldErr("hardware.reader.port", "missing: name the reader's UART, e.g. \"/dev/serial0\"")
	}
	switch r.Baud {
	case 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200:
	default:
		return c.fieldErr("hardware.reader.baud", "%d is not a standard baud rate (EM4100 readers use 9600)", r.Baud)
	}
	switch r.Variant {
	case VariantRDM6300, VariantID12:
	default:
		return c.fieldErr("hardware.reader.variant", "%q is not %q or %q", r.Variant, VariantRDM6300, VariantID12)
	}
	return nil
}

func (c *Config) validateTiming() error {
	checks := []struct {
		field string
		d     time.Duration
	}{
		{"timing.release", c.Timing.Release.Duration},
		{"timing.release_max", c.Timing.ReleaseMax.Duration},
		{"timing.entry_timeout", c.Timing.EntryTimeout.Duration},
		{"lockout.base", c.Lockout.Base.Duration},
		{"lockout.max", c.Lockout.Max.Duration},
	}
	for _, ch := range checks {
		if ch.d < 0 {
			return c.fieldErr(ch.field, "%s is negative", ch.d)
		}
	}
	if c.Lockout.Threshold < 1 {
		return c.fieldErr("lockout.threshold", "%d is below 1", c.Lockout.Threshold)
	}
	switch box.ClockPolicy(c.Clock.Untrusted) {
	case box.ClockRefuse, box.ClockAllow:
	default:
		return c.fieldErr("clock.untrusted", "%q is not %q or %q", c.Clock.Untrusted, box.ClockRefuse, box.ClockAllow)
	}
	if c.Timing.Release.Duration > c.Timing.ReleaseMax.Duration {
		return c.fieldErr("timing.release", "%s is longer than timing.release_max %s", c.Timing.Release.Duration, c.Timing.ReleaseMax.Duration)
	}
	// The controller waits up to release_max for a key to move; if the lock
	// driver cut the coil sooner, the slot would relock under the driver's
	// hand while the box still says "open".
	if c.Timing.ReleaseMax.Duration > c.Hardware.Slots.HardMax.Duration {
		return c.fieldErr("timing.release_max", "%s is longer than hardware.slots.hard_max %s", c.Timing.ReleaseMax.Duration, c.Hardware.Slots.HardMax.Duration)
	}
	if c.Lockout.Max.Duration < c.Lockout.Base.Duration {
		return c.fieldErr("lockout.max", "%s is shorter than lockout.base %s", c.Lockout.Max.Duration, c.Lockout.Base.Duration)
	}
	// box.Config has the last word on its own numbers.
	if _, err := c.BoxConfig(time.Time{}).WithDefaults(); err != nil {
		return fmt.Errorf("%s: %w", c.name(), err)
	}
	return nil
}

// BoxConfig is the controller's part of the config; zero fields take
// box.Config's defaults.
func (c *Config) BoxConfig(buildTime time.Time) box.Config {
	return box.Config{
		Slots:            c.Hardware.Slots.Count,
		ReleaseTime:      c.Timing.Release.Duration,
		MaxReleaseTime:   c.Timing.ReleaseMax.Duration,
		EntryTimeout:     c.Timing.EntryTimeout.Duration,
		LockoutThreshold: c.Lockout.Threshold,
		LockoutBase:      c.Lockout.Base.Duration,
		LockoutMax:       c.Lockout.Max.Duration,
		BuildTime:        buildTime,
		UntrustedClock:   box.ClockPolicy(c.Clock.Untrusted),
	}
}

// findKeyLine returns the 1-based line where the dotted key is written in
// src (as "key = ..." under its table, a dotted key, or a [table] header),
// or 0. toml's MetaData has no public positions for keys, and a message
// that says where to look saves a technician a hunt through the file.
func findKeyLine(src []byte, key string) int {
	want := strings.Split(key, ".")
	var table []string
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || s[0] == '#':
			continue
		case strings.HasPrefix(s, "[["):
			end := strings.Index(s, "]]")
			if end < 0 {
				continue
			}
			table = splitKey(s[2:end])
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				continue
			}
			table = splitKey(s[1:end])
			if slices.Equal(table, want) {
				return line
			}
		default:
			eq := strings.IndexByte(s, '=')
			if eq < 0 {
				continue
			}
			full := append(slices.Clone(table), splitKey(s[:eq])...)
			if slices.Equal(full, want) {
				return line
			}
		}
	}
	return 0
}

func splitKey(s string) []string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return parts
}
