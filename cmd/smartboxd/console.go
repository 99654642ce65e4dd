package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/report"
	"github.com/smartbox-oss/smartbox/sim"
)

const consoleHelp = `commands:
  press KEYS      type on the keypad, e.g. "press 123456#" (* clears, # submits)
  scan UID        tap a key's fob on the reader, e.g. "scan 01000734E0" (to return it)
  take SLOT       take the key out of a released slot
  return SLOT     put the key back into a released slot (scan its fob first)
  slots           show every slot: key, key present, lock, LED
  keys            list keys and their fobs
  grants          list grants (codes are never shown: the box keeps only an HMAC)
  events [N]      show the last N events (default 10)
  status          the cloud link: connected?, records revision, events waiting in the outbox
  help            this text
  quit            relock every slot and stop
`

// How long the console waits to show what an action caused: long enough for
// the keypad debounce, the sensor debounce and a commit.
const (
	consoleEventWait  = 1500 * time.Millisecond
	consoleEventQuiet = 300 * time.Millisecond
	consolePoll       = 25 * time.Millisecond
)

// console reads commands for the simulated hardware from d.stdin. It is for
// a person at a terminal: output goes to d.stdout, logs stay on stderr.
func (d *daemon) console(ctx context.Context, quit context.CancelFunc) {
	out := d.stdout
	// Wait until the controller is running (box_started committed), so that
	// the first command's events are its own.
	d.ctrl.Flush()
	d.banner()
	sc := bufio.NewScanner(d.stdin)
	close(d.consoleReady)
	prompt := func() {
		if d.stdinIsTerm {
			fmt.Fprint(out, "smartbox> ")
		}
	}
	prompt()
	for sc.Scan() {
		if ctx.Err() != nil {
			return
		}
		line := strings.TrimSpace(sc.Text())
		if line == "quit" || line == "exit" {
			fmt.Fprintln(out, "relocking and stopping")
			quit()
			return
		}
		if line != "" {
			if err := d.command(ctx, line); err != nil {
				fmt.Fprintf(out, "error: %v\n", err)
			}
		}
		prompt()
	}
	if d.stdinIsTerm {
		// Ctrl-D at a terminal: the person is done.
		fmt.Fprintln(out)
		quit()
		return
	}
	// `make demo </dev/null`, or a service: keep the box running.
	d.log.Info("console input ended; running until SIGTERM or SIGINT")
}

func (d *daemon) banner() {
	out := d.stdout
	held := 0
	for slot := 1; slot <= d.sim.slots.N(); slot++ {
		if d.sim.slots.Occupied(slot) {
			held++
		}
	}
	fmt.Fprintf(out, "SmartBox simulator: box %s, %d slots, %d holding a key.\n", d.cfg.BoxID, d.cfg.Hardware.Slots.Count, held)
	if keys, err := d.store.Keys(); err == nil && len(keys) > 0 {
		fmt.Fprintln(out, "Keys in this box (scan a fob to return its key):")
		_ = report.Keys(out, keys)
	} else if err == nil {
		fmt.Fprintln(out, "No keys in this box yet: import some with smartboxctl import.")
	}
	fmt.Fprintln(out, `Type "help" for commands.`)
}

// command runs one console line.
func (d *daemon) command(ctx context.Context, line string) error {
	f := strings.Fields(line)
	cmd, args := f[0], f[1:]
	out := d.stdout
	nargs := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %d argument(s); type help", cmd, n)
		}
		return nil
	}
	switch cmd {
	case "help", "?":
		fmt.Fprint(out, consoleHelp)
	case "press":
		if err := nargs(1); err != nil {
			return err
		}
		return d.press(ctx, args[0])
	case "scan":
		if err := nargs(1); err != nil {
			return err
		}
		uid, ok := box.NormalizeFobUID(args[0])
		if !ok {
			return fmt.Errorf("fob uid %q is not 10 hex digits", args[0])
		}
		since := d.lastSeq()
		d.sim.readerMu.Lock() // one fob at a time, with the socket's
		err := d.sim.reader.Tap(uid, defaultFobHold)
		d.sim.readerMu.Unlock()
		if err != nil {
			return err
		}
		d.showEvents(ctx, since, "")
	case "take", "return":
		if err := nargs(1); err != nil {
			return err
		}
		slot, err := d.slotArg(args[0])
		if err != nil {
			return err
		}
		since := d.lastSeq()
		if cmd == "take" {
			err = d.sim.slots.Take(slot)
		} else {
			err = d.sim.slots.PutBack(slot)
		}
		if err != nil {
			return d.explainMove(cmd, slot, err)
		}
		var until box.EventType
		if cmd == "return" {
			until = box.EventKeyReturned // recorded once the key sensor settles
		}
		d.showEvents(ctx, since, until)
	case "slots":
		return d.printSlots()
	case "keys":
		keys, err := d.store.Keys()
		if err != nil {
			return err
		}
		return report.Keys(out, keys)
	case "grants":
		gs, err := d.store.Grants()
		if err != nil {
			return err
		}
		return report.Grants(out, gs)
	case "status":
		if err := nargs(0); err != nil {
			return err
		}
		return d.printStatus()
	case "events":
		n := 10
		if len(args) > 1 {
			return errors.New("events takes at most one argument: how many")
		}
		if len(args) == 1 {
			v, err := strconv.Atoi(args[0])
			if err != nil || v < 1 {
				return fmt.Errorf("events %s: want a positive number", args[0])
			}
			n = v
		}
		last, err := d.store.LastSeq()
		if err != nil {
			return err
		}
		after := uint64(0)
		if last > uint64(n) {
			after = last - uint64(n)
		}
		evs, err := d.eventsAfter(after, n)
		if err != nil {
			return err
		}
		return report.Events(out, evs)
	default:
		return fmt.Errorf("unknown command %q; type help", cmd)
	}
	return nil
}

// press types keys on the simulated keypad, through the real scanner.
func (d *daemon) press(ctx context.Context, keys string) error {
	for _, r := range keys {
		if !strings.ContainsRune(strings.Join(d.cfg.Hardware.Keypad.Layout, ""), r) {
			return fmt.Errorf("key %q is not on the keypad (%s)", r, strings.Join(d.cfg.Hardware.Keypad.Layout, " "))
		}
	}
	// Hold each key well past the debounce, as a finger does.
	hold := max(sim.DefaultHold, 3*d.cfg.Hardware.Keypad.Debounce.Duration)
	since := d.lastSeq()
	d.sim.keypadMu.Lock() // one finger at a time, with the socket's
	err := d.sim.keypad.Type(keys, hold, hold)
	d.sim.keypadMu.Unlock()
	if err != nil {
		return err
	}
	if strings.ContainsRune(keys, '#') {
		d.showEvents(ctx, since, "")
	} else {
		fmt.Fprintln(d.stdout, "typed; press # to submit")
	}
	return nil
}

func (d *daemon) slotArg(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > d.cfg.Hardware.Slots.Count {
		return 0, fmt.Errorf("slot %q: want a number in 1..%d", s, d.cfg.Hardware.Slots.Count)
	}
	return n, nil
}

// explainMove turns a refused take/return into what the person should do.
func (d *daemon) explainMove(cmd string, slot int, err error) error {
	switch {
	case errors.Is(err, sim.ErrJammed):
		return fmt.Errorf("slot %d is jammed: its latch stays shut though the lock is released: %w", slot, err)
	case cmd == "take" && !d.sim.slots.Released(slot):
		return fmt.Errorf("slot %d is locked: type a code first (press PIN#): %w", slot, err)
	case cmd == "take" && !d.sim.slots.Occupied(slot):
		return fmt.Errorf("slot %d is empty: %w", slot, err)
	case cmd == "return" && !d.sim.slots.Released(slot):
		return fmt.Errorf("slot %d is locked: scan the key's fob first (scan UID): %w", slot, err)
	case cmd == "return" && d.sim.slots.Occupied(slot):
		return fmt.Errorf("slot %d already holds a key: %w", slot, err)
	}
	return err
}

func (d *daemon) printSlots() error {
	keys, err := d.store.Keys()
	if err != nil {
		return err
	}
	home := map[int]string{}
	for _, k := range keys {
		home[k.Slot] = k.ID
	}
	views := d.ctrl.Slots()
	tw := report.NewTable(d.stdout)
	fmt.Fprintln(tw, "SLOT\tKEY\tKEY PRESENT\tLOCK\tLED\tWAITING FOR")
	for slot := 1; slot <= d.cfg.Hardware.Slots.Count; slot++ {
		lock := "locked"
		if d.sim.slots.Released(slot) {
			lock = "released"
		}
		waiting := "-"
		if i := slot - 1; i < len(views) && views[i].Released {
			switch views[i].Purpose {
			case box.PurposeTake:
				waiting = "key to be taken"
			case box.PurposeReturn:
				waiting = "key to be returned"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", slot, report.Dash(home[slot]), yesNo(d.sim.slots.Occupied(slot)),
			lock, onOff(d.sim.slots.LED(slot)), waiting)
	}
	return tw.Flush()
}

func (d *daemon) printStatus() error {
	st, err := d.syncStatus()
	if err != nil {
		return err
	}
	tw := report.NewTable(d.stdout)
	fmt.Fprintf(tw, "box\t%s\n", d.cfg.BoxID)
	fmt.Fprintf(tw, "cloud\t%s\n", st.Cloud)
	if st.Broker != "" {
		fmt.Fprintf(tw, "broker\t%s\n", st.Broker)
		fmt.Fprintf(tw, "cloud keys\t%d trusted (smartboxctl provision)\n", st.CloudKeys)
	}
	fmt.Fprintf(tw, "revision\t%d\n", st.Revision)
	fmt.Fprintf(tw, "outbox\t%d events not yet acknowledged by the cloud (last seq %d)\n", st.Outbox, st.LastSeq)
	floor, from := d.floor.Floor()
	trust := "trusted"
	if !d.floor.Trusted() {
		trust = "NOT trusted: windowed codes " + d.cfg.Clock.Untrusted
	}
	fmt.Fprintf(tw, "clock\t%s, %s (floor %s, from %s)\n", d.clock.Now().UTC().Format(time.RFC3339), trust,
		floor.Format(time.RFC3339), from)
	return tw.Flush()
}

func (d *daemon) lastSeq() uint64 {
	s, err := d.store.LastSeq()
	if err != nil {
		return 0
	}
	return s
}

// showEvents prints the events committed after seq since, waiting a moment
// for them: the hardware path (debounce, scan, commit) takes tens of ms. If
// until is set, it waits for an event of that type too, the key sensor's
// settle longer at most.
func (d *daemon) showEvents(ctx context.Context, since uint64, until box.EventType) {
	deadline := time.Now().Add(consoleEventWait)
	if until != "" {
		deadline = deadline.Add(d.ctrl.Config().ReturnSettle)
	}
	var quietUntil time.Time
	tick := time.NewTicker(consolePoll)
	defer tick.Stop()
	for {
		evs, err := d.eventsAfter(since, 100)
		if err != nil {
			fmt.Fprintf(d.stdout, "error: reading events: %v\n", err)
			return
		}
		for _, e := range evs {
			fmt.Fprintf(d.stdout, "  -> %s\n", describeEvent(e))
			since = e.Seq
			if e.Type == until {
				until = ""
			}
		}
		now := time.Now()
		if len(evs) > 0 {
			quietUntil = now.Add(consoleEventQuiet)
		}
		if (until == "" && !quietUntil.IsZero() && now.After(quietUntil)) || now.After(deadline) {
			if quietUntil.IsZero() {
				fmt.Fprintln(d.stdout, "  (nothing happened)")
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// describeEvent is one event in words.
func describeEvent(e box.Event) string {
	var b strings.Builder
	b.WriteString(string(e.Type))
	add := func(k, v string) {
		if v != "" && v != "0" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	add("slot", strconv.Itoa(e.Slot))
	add("key", e.KeyID)
	add("grant", e.GrantID)
	add("fob", e.FobUID)
	add("reason", string(e.Reason))
	add("return_by", string(e.ReturnBy))
	if e.Type == box.EventKeyReturned {
		add("seated_ms", strconv.FormatInt(e.SeatedMS, 10))
	}
	add("count", strconv.Itoa(e.Count))
	if !e.Until.IsZero() {
		add("until", e.Until.Local().Format(time.TimeOnly))
	}
	add("detail", e.Detail)
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
