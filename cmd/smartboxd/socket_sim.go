package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/sim"
)

// defaultFobHold is a quick tap of a fob: about three frames at the
// reader's 50 ms repeat (what the console's scan does).
const defaultFobHold = 150 * time.Millisecond

// simRoutes adds the /v1/sim routes: the simulated hardware, acted on as a
// person at the box would (or someone breaking it). On real hardware each
// answers 404.
func (d *daemon) simRoutes(mux *http.ServeMux) {
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if d.sim == nil {
				boxsocket.WriteError(w, http.StatusNotFound, "not a simulated box")
				return
			}
			h(w, r)
		})
	}
	route("POST /v1/sim/keypad", d.simKeypad)
	route("POST /v1/sim/slots/{n}/take", func(w http.ResponseWriter, r *http.Request) { d.simMove(w, r, "take") })
	route("POST /v1/sim/slots/{n}/put-back", func(w http.ResponseWriter, r *http.Request) { d.simMove(w, r, "return") })
	route("PUT /v1/sim/slots/{n}/fault", d.simFault)
	route("POST /v1/sim/reader", d.simReader)
	// PUT /v1/sim/clock answers 200 as soon as the clock is set. A clock
	// set back below the floor the box reached while running (but not
	// below the one it started with) then stops the daemon within a
	// second (clockFloor.check: the restarted box checks its clock against
	// the new floor); a clock set before the start floor (1970) leaves it
	// running with its clock not trusted.
	route("PUT /v1/sim/clock", d.simClock)
}

// done is a /v1/sim action's answer.
func done(w http.ResponseWriter) { boxsocket.WriteJSON(w, http.StatusOK, struct{}{}) }

func (d *daemon) simKeypad(w http.ResponseWriter, r *http.Request) {
	var req boxsocket.KeypadRequest
	if !boxsocket.DecodeBody(w, r, &req) {
		return
	}
	layout := strings.Join(d.cfg.Hardware.Keypad.Layout, "")
	switch n := len([]rune(req.Keys)); {
	case n == 0:
		boxsocket.WriteError(w, http.StatusBadRequest, "keys: empty, want the keys to type such as 123456#")
		return
	case n > boxsocket.MaxKeys:
		boxsocket.WriteError(w, http.StatusBadRequest, fmt.Sprintf("keys: %d of them, at most %d", n, boxsocket.MaxKeys))
		return
	}
	for _, k := range req.Keys {
		if !strings.ContainsRune(layout, k) {
			boxsocket.WriteError(w, http.StatusBadRequest, fmt.Sprintf("keys: %q is not on the keypad (%s)", k, strings.Join(d.cfg.Hardware.Keypad.Layout, " ")))
			return
		}
	}
	hold := time.Duration(req.HoldMS) * time.Millisecond
	if req.HoldMS < 0 || hold > boxsocket.MaxKeyHold {
		boxsocket.WriteError(w, http.StatusBadRequest, fmt.Sprintf("hold_ms %d: want 0 (a tap) to %d", req.HoldMS, boxsocket.MaxKeyHold.Milliseconds()))
		return
	}
	if hold == 0 {
		// What the console types: well past the debounce, as a finger.
		hold = max(sim.DefaultHold, 3*d.cfg.Hardware.Keypad.Debounce.Duration)
	}
	d.sim.keypadMu.Lock()
	defer d.sim.keypadMu.Unlock()
	if err := d.sim.keypad.Type(req.Keys, hold, hold); err != nil {
		boxsocket.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("typing %q: %v", req.Keys, err))
		return
	}
	done(w)
}

// slotPath reads {n}; on a bad one it has answered 400.
func (d *daemon) slotPath(w http.ResponseWriter, r *http.Request) (int, bool) {
	n, err := d.slotArg(r.PathValue("n"))
	if err != nil {
		boxsocket.WriteError(w, http.StatusBadRequest, err.Error())
		return 0, false
	}
	return n, true
}

// simMove takes a key out of a slot (cmd "take") or seats one ("return").
func (d *daemon) simMove(w http.ResponseWriter, r *http.Request, cmd string) {
	slot, ok := d.slotPath(w, r)
	if !ok {
		return
	}
	var err error
	if cmd == "take" {
		err = d.sim.slots.Take(slot)
	} else {
		err = d.sim.slots.PutBack(slot)
	}
	if err != nil {
		// Latched, jammed, empty or full: the slot says no, in words.
		boxsocket.WriteError(w, http.StatusConflict, d.explainMove(cmd, slot, err).Error())
		return
	}
	done(w)
}

func (d *daemon) simFault(w http.ResponseWriter, r *http.Request) {
	slot, ok := d.slotPath(w, r)
	if !ok {
		return
	}
	var f boxsocket.SlotFault
	if !boxsocket.DecodeBody(w, r, &f) {
		return
	}
	if f.Jammed == nil && f.SensorDead == nil {
		boxsocket.WriteError(w, http.StatusBadRequest, "fault: set jammed or sensor_dead (true or false)")
		return
	}
	var errs []error
	if f.Jammed != nil {
		errs = append(errs, d.sim.slots.Jam(slot, *f.Jammed))
	}
	if f.SensorDead != nil {
		errs = append(errs, d.sim.slots.KillSensor(slot, *f.SensorDead))
	}
	if err := errors.Join(errs...); err != nil {
		boxsocket.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	d.log.Info("sim: slot fault set", "slot", slot, "jammed", d.sim.slots.Jammed(slot), "sensor_dead", d.sim.slots.SensorDead(slot))
	done(w)
}

func (d *daemon) simReader(w http.ResponseWriter, r *http.Request) {
	var req boxsocket.ReaderRequest
	if !boxsocket.DecodeBody(w, r, &req) {
		return
	}
	bad := func(format string, args ...any) {
		boxsocket.WriteError(w, http.StatusBadRequest, fmt.Sprintf(format, args...))
	}
	hold := time.Duration(req.HoldMS) * time.Millisecond
	switch {
	case (req.Fob == "") == (req.Raw == nil):
		bad("reader: give exactly one of fob (a fob's UID) and raw (bytes, base64)")
		return
	case req.Raw != nil && len(req.Raw) == 0:
		bad("raw: empty")
		return
	case len(req.Raw) > boxsocket.MaxRawBytes:
		bad("raw: %d bytes, at most %d", len(req.Raw), boxsocket.MaxRawBytes)
		return
	case req.Raw != nil && req.HoldMS != 0:
		bad("hold_ms is for a fob, not raw bytes")
		return
	case req.HoldMS < 0 || hold > boxsocket.MaxFobHold:
		bad("hold_ms %d: want 0 (a quick tap) to %d", req.HoldMS, boxsocket.MaxFobHold.Milliseconds())
		return
	}
	d.sim.readerMu.Lock()
	defer d.sim.readerMu.Unlock()
	if req.Raw != nil {
		if err := d.sim.reader.WriteRaw(req.Raw); err != nil {
			boxsocket.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("writing on the reader's line: %v", err))
			return
		}
		done(w)
		return
	}
	uid, ok := box.NormalizeFobUID(req.Fob)
	if !ok {
		bad("fob %q: want 10 hex digits such as 01000734E0", req.Fob)
		return
	}
	if hold == 0 {
		hold = defaultFobHold
	}
	if err := d.sim.reader.Tap(uid, hold); err != nil {
		boxsocket.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("holding fob %s at the reader: %v", uid, err))
		return
	}
	done(w)
}

func (d *daemon) simClock(w http.ResponseWriter, r *http.Request) {
	if d.sim.clock == nil {
		boxsocket.WriteError(w, http.StatusConflict, "this box's clock is not settable (a test gave it its own)")
		return
	}
	var req boxsocket.ClockRequest
	if !boxsocket.DecodeBody(w, r, &req) {
		return
	}
	switch {
	case req.At.IsZero() == !req.Reset:
		boxsocket.WriteError(w, http.StatusBadRequest, `clock: give exactly one of at (an RFC 3339 time) and reset (true)`)
		return
	case req.Reset:
		d.sim.clock.Reset()
	default:
		if jump := time.Until(req.At); jump > boxsocket.MaxClockJump || jump < -boxsocket.MaxClockJump {
			boxsocket.WriteError(w, http.StatusBadRequest, fmt.Sprintf("at %s: more than %d years from now", req.At.Format(time.RFC3339), int(boxsocket.MaxClockJump/(365*24*time.Hour))))
			return
		}
		d.sim.clock.Set(req.At)
	}
	d.log.Info("sim: board clock set", "clock", d.clock.Now().UTC().Format(time.RFC3339), "trusted", d.floor.Trusted())
	d.changes.Notify()
	done(w)
}
