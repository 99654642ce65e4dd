package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"periph.io/x/conn/v3/gpio/gpioreg"

	"github.com/smartbox-oss/smartbox/cmd/internal/boardprofile"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/hal/pins"
)

// checkConfig loads and validates the config and reads [cloud]'s files.
func (d *doctor) checkConfig() {
	cfg, err := boxconfig.LoadConfig(d.configPath)
	if errors.Is(err, fs.ErrNotExist) {
		d.problem("config", fmt.Sprintf("no config at %s", d.configPath),
			"write one for this board: 'smartboxctl provision' renders it from a board profile, or copy smartboxd.example.toml; or pass --config FILE")
		return
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		d.problem("config", fmt.Sprintf("%s does not load: %v", d.configPath, err),
			"fix the field the message names (smartboxd.example.toml documents each); smartboxd refuses to start until then")
		return
	}
	d.cfg = cfg
	cloud := "offline-only (no [cloud])"
	if cfg.Cloud != nil {
		cloud = "broker " + cfg.Cloud.BrokerURL
		creds, err := cfg.Credentials()
		if err != nil {
			d.problem("config", fmt.Sprintf("%s: [cloud]'s files: %v", d.configPath, err),
				"fix the file the message names (owner-only mode 0600 for secrets); smartboxd refuses to start until then")
			return
		}
		d.creds = &creds
	}
	d.ok("config", "%s parses and validates: box %s, profile %s, %d slots, %s", d.configPath, cfg.BoxID, cfg.Hardware.Profile,
		cfg.Hardware.Slots.Count, cloud)
}

// checkPins looks up every pin the config names on this machine's GPIO
// (periph's gpioreg, as smartboxd does) and lists the missing ones by field
// and role, with the board profiles the config and the machine match.
func (d *doctor) checkPins() {
	if d.cfg == nil {
		d.skipped("pins", "no valid config")
		return
	}
	if d.cfg.Hardware.Profile == boxconfig.ProfileSim {
		d.skipped("pins", "the sim profile makes its own pins")
		return
	}
	var missing []string
	n := 0
	for _, f := range d.cfg.PinLists() {
		var gone []string
		for i, name := range f.Pins {
			n++
			if _, err := pins.ByName(fmt.Sprintf("%s %d", f.Role, i+1), name); err != nil {
				gone = append(gone, fmt.Sprintf("%s %d %q", f.Role, i+1, name))
			}
		}
		switch {
		case len(gone) == 0:
		case len(gone) == len(f.Pins) && len(gone) > 2:
			// All of a list: the names say it shorter than each one.
			missing = append(missing, fmt.Sprintf("%s: all %d %s pins (%q .. %q)", f.Field, len(gone), f.Role, f.Pins[0], f.Pins[len(f.Pins)-1]))
		default:
			missing = append(missing, f.Field+": "+strings.Join(gone, ", "))
		}
	}
	if len(missing) == 0 {
		d.ok("pins", "all %d GPIO lines the config names exist on this machine", n)
		return
	}
	loaded, failed := pins.Drivers()
	what := fmt.Sprintf("this machine has no GPIO line by these names: %s (periph loaded %s; %d lines known",
		strings.Join(missing, "; "), orNone(loaded), len(gpioreg.All()))
	if len(failed) > 0 {
		what += "; failed: " + strings.Join(failed, "; ")
	}
	what += ")"
	var fits, machine []string
	for _, p := range boardprofile.All() {
		if p.Pins == nil {
			continue
		}
		if p.CheckPins(d.cfg) == nil {
			fits = append(fits, p.Name)
		}
		if hasLines(p.Pins) {
			machine = append(machine, p.Name)
		}
	}
	if len(fits) > 0 {
		what += fmt.Sprintf("; the config's pins are those of board profile %s", strings.Join(fits, ", "))
	}
	var fix string
	switch {
	case len(machine) > 0:
		fix = fmt.Sprintf("this machine has the lines of board profile %s: render the config from it ('smartboxctl provision --profile %s ...'), or name lines it has",
			strings.Join(machine, ", "), machine[len(machine)-1])
		if slices.Contains(fits, "smartbox-v1") {
			fix += "; on a SmartBox v1 the LOCK/KEY/LED lines come from the MCP23017 expanders: check their overlay is loaded and the I2C bus is wired"
		}
	case len(gpioreg.All()) == 0:
		fix = "no GPIO at all: run doctor on the box itself, as root or a member of the gpio group (is /dev/gpiochip0 readable?)"
	default:
		fix = "name lines this board has (see 'gpioinfo'), or render the config from a board profile ('smartboxctl provision --profile ...')"
	}
	d.problem("pins", what, fix)
}

// hasLines says whether gpioreg knows every name.
func hasLines(names []string) bool {
	for _, n := range names {
		if gpioreg.ByName(n) == nil {
			return false
		}
	}
	return len(names) > 0
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no driver"
	}
	return strings.Join(s, ", ")
}

// checkReader checks the fob reader's UART: there, a character device, and
// one this user may open.
func (d *doctor) checkReader() {
	if d.cfg == nil {
		d.skipped("reader", "no valid config")
		return
	}
	port := d.cfg.Hardware.Reader.Port
	if d.cfg.Hardware.Profile == boxconfig.ProfileSim || port == "" {
		d.skipped("reader", "the sim profile makes its own reader")
		return
	}
	const uartFix = "enable the UART (Raspberry Pi: enable_uart=1 in config.txt, serial console off in raspi-config, then reboot), or set hardware.reader.port to the reader's device"
	fi, err := os.Lstat(port)
	if errors.Is(err, fs.ErrNotExist) {
		d.problem("reader", fmt.Sprintf("hardware.reader.port %s does not exist", port), uartFix)
		return
	}
	if err != nil {
		d.problem("reader", fmt.Sprintf("hardware.reader.port %s: %v", port, err), uartFix)
		return
	}
	shown := port
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(port)
		if fi, err = os.Stat(port); err != nil {
			d.problem("reader", fmt.Sprintf("hardware.reader.port %s is a link to %s, which does not exist", port, target), uartFix)
			return
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(port), target)
		}
		shown = fmt.Sprintf("%s (-> %s)", port, target)
	}
	if fi.Mode()&fs.ModeCharDevice == 0 {
		d.problem("reader", fmt.Sprintf("hardware.reader.port %s is not a character device (%s): not a serial port", shown, fi.Mode().Type()),
			"set hardware.reader.port to the reader's UART, e.g. /dev/serial0 or /dev/ttyUSB0")
		return
	}
	if err := syscall.Access(port, 6 /* R_OK|W_OK */); err != nil {
		d.problem("reader", fmt.Sprintf("hardware.reader.port %s: this user may not open it (%v)%s", shown, err, groupHint(fi)),
			"run smartboxd as a user in the device's group (usermod -aG GROUP USER, then log in again), or as root")
		return
	}
	d.ok("reader", "hardware.reader.port %s is a character device this user may open", shown)
}

// groupHint names the device's group and whether this user is in it.
func groupHint(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	gid := strconv.FormatUint(uint64(st.Gid), 10)
	name := gid
	if g, err := user.LookupGroupId(gid); err == nil {
		name = g.Name
	}
	groups, _ := os.Getgroups()
	if slices.Contains(groups, int(st.Gid)) {
		return fmt.Sprintf("; the device's group is %s and this user is in it: check its mode", name)
	}
	return fmt.Sprintf("; the device's group is %s, and this user is not in the %s group", name, name)
}
