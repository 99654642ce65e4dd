package pins

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

var (
	initOnce  sync.Once
	initState *driverreg.State
	initErr   error
)

// Init loads periph's host drivers, once; later calls return the first
// call's result. It succeeds on a machine without GPIO hardware. Drivers
// that failed to load are an error only when no GPIO pin is left at all (a
// failed driver is then the likely reason, e.g. no permission on
// /dev/gpiochip0); otherwise they are logged.
func Init() error {
	initOnce.Do(func() {
		initState, initErr = host.Init()
		if initErr != nil {
			initErr = fmt.Errorf("pins: loading periph host drivers: %w", initErr)
			return
		}
		if len(initState.Failed) == 0 {
			return
		}
		failed := make([]string, len(initState.Failed))
		for i, f := range initState.Failed {
			failed[i] = f.String()
		}
		if len(gpioreg.All()) == 0 {
			initErr = fmt.Errorf("pins: no GPIO pins, and these periph drivers failed: %s", strings.Join(failed, "; "))
			return
		}
		slog.Warn("pins: some periph drivers failed", "failed", failed)
	})
	return initErr
}

// Drivers returns the names of the periph drivers that loaded and of those
// that failed (with their error). Both are empty before Init.
func Drivers() (loaded, failed []string) {
	_ = Init()
	if initState == nil {
		return nil, nil
	}
	for _, d := range initState.Loaded {
		loaded = append(loaded, d.String())
	}
	for _, f := range initState.Failed {
		failed = append(failed, f.String())
	}
	return loaded, failed
}

// ByName finds the pin called name, for role (what the pin is for, such as
// "keypad row 2", used in errors). It calls Init first.
func ByName(role, name string) (gpio.PinIO, error) {
	if name == "" {
		return nil, fmt.Errorf("%s: no GPIO pin name configured", role)
	}
	if err := Init(); err != nil {
		return nil, fmt.Errorf("%s: GPIO pin %q: %w", role, name, err)
	}
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	loaded, failed := Drivers()
	what := "none"
	if len(loaded) > 0 {
		what = strings.Join(loaded, ", ")
	}
	if len(failed) > 0 {
		what += "; failed: " + strings.Join(failed, "; ")
	}
	return nil, fmt.Errorf("%s: no GPIO pin named %q on this machine (periph loaded: %s; %d GPIO pins known; is this the box?)",
		role, name, what, len(gpioreg.All()))
}

// ByNames finds one pin per name, for role numbered from 1: ByNames("keypad
// row", names) looks up "keypad row 1", "keypad row 2", ... It reports every
// missing pin, not only the first.
func ByNames(role string, names []string) ([]gpio.PinIO, error) {
	out := make([]gpio.PinIO, len(names))
	var errs []error
	for i, n := range names {
		p, err := ByName(fmt.Sprintf("%s %d", role, i+1), n)
		if err != nil {
			errs = append(errs, err)
		}
		out[i] = p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
