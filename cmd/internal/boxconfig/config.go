package boxconfig

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/tomlconf"
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

	// file is where the config came from, for error messages that name
	// the line of a field.
	file tomlconf.File
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
	Release       Duration `toml:"release"`
	ReleaseMax    Duration `toml:"release_max"`
	EntryTimeout  Duration `toml:"entry_timeout"`
	RefusalWindow Duration `toml:"refusal_window"`
}

// LockoutConfig is the wrong-code tarpit and its alert (box.Config).
type LockoutConfig struct {
	Threshold       int      `toml:"threshold"`
	Base            Duration `toml:"base"`
	Max             Duration `toml:"max"`
	Decay           Duration `toml:"decay"`
	AttackThreshold int      `toml:"attack_threshold"`
	AttackWindow    Duration `toml:"attack_window"`
	// Budget and Refill are the slow guess budget above the tarpit
	// (box.Config.LockoutBudget, LockoutRefill): Budget wrong codes, one
	// given back per Refill; with none left the keypad checks no code.
	Budget int      `toml:"budget"`
	Refill Duration `toml:"refill"`
}

// Bounds of lockout.refill. At an hour the budget still lets through a
// tenth of the tarpit's codes a day (20 + 24 against 395 with the
// defaults); much shorter it bounds little (at about 4 minutes, nothing
// the tarpit does not), so a shorter refill is a typo. Longer than a week,
// a guesser who spends the budget shuts drivers out for more than a week
// (the admin can reopen the keypad at once, but may be on leave).
const (
	MinLockoutRefill = time.Hour
	MaxLockoutRefill = 7 * 24 * time.Hour
)

// ClockConfig says what windowed grants do while the clock is untrusted,
// and the earliest time the clock can be trusted at.
type ClockConfig struct {
	Untrusted string `toml:"untrusted"`
	// Floor: a clock before it is not trusted (one source of the clock
	// floor; see cmd/smartboxd/doc.go). RFC 3339, quoted or a TOML
	// date-time. Zero: only the other sources.
	Floor time.Time `toml:"floor"`
}

// Duration is a duration written as a string with a unit ("5s", "250ms");
// a bare number (toml's nanoseconds) is refused.
type Duration = tomlconf.Duration[durationExamples]

// durationExamples fit smartboxd's timings in Duration's error message.
type durationExamples struct{}

func (durationExamples) DurationExamples() string { return `"5s" or "250ms"` }

// Default values for fields left out of the file.
const (
	defaultKeypadDebounce = 20 * time.Millisecond
	defaultSensorDebounce = 50 * time.Millisecond
	defaultHardMax        = 10 * time.Second
	defaultBaud           = 9600
)

var defaultLayout = []string{"123", "456", "789", "*0#"}

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
	c := &Config{file: tomlconf.File{Path: path, Src: src}}
	md, err := c.file.Decode(c)
	if err != nil {
		return nil, err
	}
	if err := c.file.UnknownKey(md, "smartboxd"); err != nil {
		return nil, err
	}
	c.fillDefaults()
	if !md.IsDefined("lockout", "budget") {
		// Here, not in fillDefaults: an explicit budget = 0 is an error
		// (Validate), not the default; no budget at all is what 0 would
		// seem to mean, and that is not on offer.
		c.Lockout.Budget = box.DefaultLockoutBudget
	}
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
	fill(&c.Timing.RefusalWindow, def.RefusalWindow)
	fill(&c.Lockout.Base, def.LockoutBase)
	fill(&c.Lockout.Max, def.LockoutMax)
	fill(&c.Lockout.AttackWindow, def.AttackWindow)
	fill(&c.Lockout.Refill, box.DefaultLockoutRefill)
	if c.Lockout.Threshold == 0 {
		c.Lockout.Threshold = def.LockoutThreshold
	}
	if c.Clock.Untrusted == "" {
		c.Clock.Untrusted = string(def.UntrustedClock)
	}
}

// name is the file name used in messages.
func (c *Config) Name() string { return c.file.Name() }

// fieldErr makes "file:line: field: msg" (tomlconf.File.FieldErr).
func (c *Config) FieldErr(field, format string, args ...any) error {
	return c.file.FieldErr(field, format, args...)
}

// Validate checks every field before anything touches hardware or the store.
func (c *Config) Validate() error {
	if c.BoxID == "" {
		return c.FieldErr("box_id", "missing: every box needs an id (letters, digits, ._:@-)")
	}
	if !box.ValidID(c.BoxID) {
		return c.FieldErr("box_id", "%q is not a valid id: want 1-128 letters, digits or ._:@-", c.BoxID)
	}
	h := &c.Hardware
	switch h.Profile {
	case ProfileSmartBoxV1, ProfileSim:
	default:
		return c.FieldErr("hardware.profile", "%q is not %q or %q", h.Profile, ProfileSmartBoxV1, ProfileSim)
	}
	n := h.Slots.Count
	if n < 1 || n > box.MaxSlots {
		return c.FieldErr("hardware.slots.count", "%d is not in 1..%d", n, box.MaxSlots)
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
			return c.FieldErr("hardware.keypad.layout", "row %d %q has %d keys, want %d like row 1", i+1, row, len(row), len(k.Layout[0]))
		}
		for _, r := range row {
			if !strings.ContainsRune("0123456789*#", r) {
				return c.FieldErr("hardware.keypad.layout", "row %d: key %q is not a digit, * or #", i+1, r)
			}
			if seen[r] {
				return c.FieldErr("hardware.keypad.layout", "key %q appears twice", r)
			}
			seen[r] = true
		}
	}
	if d := k.Debounce.Duration; d < time.Millisecond || d > 500*time.Millisecond {
		return c.FieldErr("hardware.keypad.debounce", "%s is not in 1ms..500ms", d)
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
		return c.FieldErr("hardware.slots.leds", "has %d pins, want %d (one per slot) or none", len(s.LEDs), n)
	}
	if err := c.pinNames("hardware.slots.leds", s.LEDs); err != nil {
		return err
	}
	// The hard maximum protects the lock coils; the controller's own
	// maximum can never exceed box.HardMaxRelease either.
	if d := s.HardMax.Duration; d < 100*time.Millisecond || d > box.HardMaxRelease {
		return c.FieldErr("hardware.slots.hard_max", "%s is not in 100ms..%s", d, box.HardMaxRelease)
	}
	if d := s.Debounce.Duration; d < time.Millisecond || d > 2*time.Second {
		return c.FieldErr("hardware.slots.debounce", "%s is not in 1ms..2s", d)
	}
	return nil
}

func (c *Config) pinList(field string, pins []string, want int, why string) error {
	if len(pins) == 0 && !c.needPins() {
		return nil // the simulator makes its own pins
	}
	if len(pins) != want {
		return c.FieldErr(field, "has %d pins, want %d (%s)", len(pins), want, why)
	}
	return c.pinNames(field, pins)
}

func (c *Config) pinNames(field string, pins []string) error {
	for i, p := range pins {
		if strings.TrimSpace(p) == "" {
			return c.FieldErr(field, "pin %d is empty", i+1)
		}
	}
	return nil
}

// PinList is one of the config's lists of pin names: its field, what each
// pin is for (in messages: "keypad row 2") and the names.
type PinList struct {
	Field, Role string
	Pins        []string
}

// PinLists is every list of pins the config names, keypad first. Reading
// them here keeps one list for the checks that walk them (uniqueness here,
// a board's lines, a machine's GPIO).
func (c *Config) PinLists() []PinList {
	h := &c.Hardware
	return []PinList{
		{"hardware.keypad.rows", "keypad row", h.Keypad.Rows},
		{"hardware.keypad.cols", "keypad column", h.Keypad.Cols},
		{"hardware.slots.locks", "slot lock", h.Slots.Locks},
		{"hardware.slots.sensors", "slot key sensor", h.Slots.Sensors},
		{"hardware.slots.leds", "slot LED", h.Slots.LEDs},
	}
}

// validateUniquePins refuses a pin named twice: a lock relay wired to the
// same GPIO as a keypad row would open a slot on every keypad scan.
func (c *Config) validateUniquePins() error {
	seen := map[string]string{}
	for _, l := range c.PinLists() {
		for i, p := range l.Pins {
			where := fmt.Sprintf("%s[%d]", l.Field, i+1)
			if prev, ok := seen[p]; ok {
				return c.FieldErr(l.Field, "pin %q is used twice (%s and %s)", p, prev, where)
			}
			seen[p] = where
		}
	}
	return nil
}

func (c *Config) validateReader() error {
	r := &c.Hardware.Reader
	if r.Port == "" && c.needPins() {
		return c.FieldErr("hardware.reader.port", "missing: name the reader's UART, e.g. \"/dev/serial0\"")
	}
	switch r.Baud {
	case 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200:
	default:
		return c.FieldErr("hardware.reader.baud", "%d is not a standard baud rate (EM4100 readers use 9600)", r.Baud)
	}
	switch r.Variant {
	case VariantRDM6300, VariantID12:
	default:
		return c.FieldErr("hardware.reader.variant", "%q is not %q or %q", r.Variant, VariantRDM6300, VariantID12)
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
		{"timing.refusal_window", c.Timing.RefusalWindow.Duration},
		{"lockout.base", c.Lockout.Base.Duration},
		{"lockout.max", c.Lockout.Max.Duration},
		{"lockout.decay", c.Lockout.Decay.Duration},
		{"lockout.attack_window", c.Lockout.AttackWindow.Duration},
		{"lockout.refill", c.Lockout.Refill.Duration},
	}
	for _, ch := range checks {
		if ch.d < 0 {
			return c.FieldErr(ch.field, "%s is negative", ch.d)
		}
	}
	if c.Lockout.Threshold < 1 {
		return c.FieldErr("lockout.threshold", "%d is below 1", c.Lockout.Threshold)
	}
	if c.Lockout.Budget < 1 {
		return c.FieldErr("lockout.budget", "%d is below 1 (the keypad would check no code at all)", c.Lockout.Budget)
	}
	if r := c.Lockout.Refill.Duration; r < MinLockoutRefill || r > MaxLockoutRefill {
		return c.FieldErr("lockout.refill", "%s is not in %s..%s", r, MinLockoutRefill, MaxLockoutRefill)
	}
	switch box.ClockPolicy(c.Clock.Untrusted) {
	case box.ClockRefuse, box.ClockAllow:
	default:
		return c.FieldErr("clock.untrusted", "%q is not %q or %q", c.Clock.Untrusted, box.ClockRefuse, box.ClockAllow)
	}
	if c.Timing.Release.Duration > c.Timing.ReleaseMax.Duration {
		return c.FieldErr("timing.release", "%s is longer than timing.release_max %s", c.Timing.Release.Duration, c.Timing.ReleaseMax.Duration)
	}
	// The controller waits up to release_max for a key to move; if the lock
	// driver cut the coil sooner, the slot would relock under the driver's
	// hand while the box still says "open".
	if c.Timing.ReleaseMax.Duration > c.Hardware.Slots.HardMax.Duration {
		return c.FieldErr("timing.release_max", "%s is longer than hardware.slots.hard_max %s", c.Timing.ReleaseMax.Duration, c.Hardware.Slots.HardMax.Duration)
	}
	if c.Lockout.Max.Duration < c.Lockout.Base.Duration {
		return c.FieldErr("lockout.max", "%s is shorter than lockout.base %s", c.Lockout.Max.Duration, c.Lockout.Base.Duration)
	}
	// box.Config has the last word on its own numbers.
	if _, err := c.BoxConfig(time.Time{}).WithDefaults(); err != nil {
		return fmt.Errorf("%s: %w", c.Name(), err)
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
		RefusalWindow:    c.Timing.RefusalWindow.Duration,
		LockoutThreshold: c.Lockout.Threshold,
		LockoutBase:      c.Lockout.Base.Duration,
		LockoutMax:       c.Lockout.Max.Duration,
		LockoutDecay:     c.Lockout.Decay.Duration,
		AttackThreshold:  c.Lockout.AttackThreshold,
		AttackWindow:     c.Lockout.AttackWindow.Duration,
		LockoutBudget:    c.Lockout.Budget,
		LockoutRefill:    c.Lockout.Refill.Duration,
		BuildTime:        buildTime,
		UntrustedClock:   box.ClockPolicy(c.Clock.Untrusted),
	}
}
