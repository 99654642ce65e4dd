package selftest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Per-step bounds. Each step waits for the hardware on its own: a key not
// pressed fails its row after KeyTimeout and the next key is asked for.
const (
	// DefaultReleaseFor is how long one step energises a lock: long
	// enough to pull a key or seat one, no longer than a driver's release
	// (the board caps it at its hard maximum, 10 s on the SmartBox v1).
	DefaultReleaseFor = 10 * time.Second
	// DefaultTakeTimeout bounds the wait for a key to leave its released
	// slot: past it the latch is taken as jammed (or the key not pulled).
	DefaultTakeTimeout = 10 * time.Second
	// DefaultReturnTimeout bounds the wait for the key to be seated again.
	DefaultReturnTimeout = 10 * time.Second
	// DefaultSteadyWatch is how long an empty released slot's sensor is
	// watched for a change by itself (--yes, nobody looks at the latch).
	DefaultSteadyWatch = 2 * time.Second
	// DefaultKeyTimeout bounds the wait for each asked keypad key.
	DefaultKeyTimeout = 15 * time.Second
	// DefaultFobTimeout bounds the wait for a fob at the reader.
	DefaultFobTimeout = 30 * time.Second
)

// Options tunes a run. Zero durations take the defaults above (tests
// shorten them).
type Options struct {
	Via    string  // Report.Via
	Groups []Group // nil: every group

	ReleaseFor, TakeTimeout, ReturnTimeout, SteadyWatch, KeyTimeout, FobTimeout time.Duration
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReleaseFor, DefaultReleaseFor)
	def(&o.TakeTimeout, DefaultTakeTimeout)
	def(&o.ReturnTimeout, DefaultReturnTimeout)
	def(&o.SteadyWatch, DefaultSteadyWatch)
	def(&o.KeyTimeout, DefaultKeyTimeout)
	def(&o.FobTimeout, DefaultFobTimeout)
	if o.Groups == nil {
		o.Groups = Groups
	}
}

// run is one self-test in progress.
type run struct {
	ctx  context.Context
	b    Board
	p    Prompter
	opts Options
	rep  *Report
}

// Run tests the board group by group and returns the report. A failed row
// does not stop the test; an error (ctx ended, the board gone) does, and
// the report so far comes with it. Every lock the test released is locked
// again before the step ends, whatever happened.
func Run(ctx context.Context, b Board, p Prompter, opts Options) (*Report, error) {
	opts.defaults()
	r := &run{ctx: ctx, b: b, p: p, opts: opts, rep: &Report{Via: opts.Via, Rows: []Row{}}}
	err := r.all()
	if err != nil {
		r.rep.Error = err.Error()
	}
	r.rep.Passed = !r.rep.Failed()
	return r.rep, err
}

func (r *run) want(g Group) bool { return slices.Contains(r.opts.Groups, g) }

func (r *run) add(row Row) { r.rep.Rows = append(r.rep.Rows, row) }

func (r *run) all() error {
	var slots []SlotInfo
	var present []bool
	if r.want(GroupSensors) || r.want(GroupLocks) {
		var err error
		if slots, err = r.b.Slots(r.ctx); err != nil {
			return fmt.Errorf("reading the slots: %w", err)
		}
		present = make([]bool, len(slots))
		for i, s := range slots {
			if present[i], err = r.b.Present(r.ctx, s.Slot); err != nil {
				return fmt.Errorf("reading slot %d's key sensor: %w", s.Slot, err)
			}
		}
	}
	if r.want(GroupSensors) {
		for i := range slots {
			if err := r.askExpected(&slots[i], present[i]); err != nil {
				return err
			}
			r.add(sensorRow(slots[i], present[i]))
		}
	}
	if r.want(GroupLocks) {
		for i, s := range slots {
			row, err := r.lock(s, present[i])
			r.add(row)
			if err != nil {
				return err
			}
		}
	}
	if r.want(GroupKeys) {
		if err := r.keys(); err != nil {
			return err
		}
	}
	if r.want(GroupReader) {
		if err := r.reader(); err != nil {
			return err
		}
	}
	if r.want(GroupClock) || r.want(GroupStore) || r.want(GroupBroker) {
		c, err := r.b.Checks(r.ctx)
		if err != nil {
			return fmt.Errorf("reading the box's checks: %w", err)
		}
		r.checks(c)
	}
	if r.want(GroupSigning) {
		r.add(r.signing())
	}
	return r.ctx.Err()
}

// askExpected asks the technician, when nothing else says so, whether a
// slot whose sensor reads no key holds its key (the records make it its
// home): a yes is a dead sensor. With --yes nothing is asked (a yes would
// fail every slot whose key is out with a driver).
func (r *run) askExpected(s *SlotInfo, present bool) error {
	if s.Expected != nil || s.KeyID == "" || present || r.p.AssumeYes() {
		return nil
	}
	in, err := r.p.Confirm(r.ctx, fmt.Sprintf("Slot %d's sensor reads no key: is %s in the slot?", s.Slot, keyName(*s)))
	if err != nil {
		return err
	}
	s.Expected = &in
	return nil
}

// sensorRow is what slot s's sensor reads, failed when another source
// (the simulator's truth) says otherwise.
func sensorRow(s SlotInfo, present bool) Row {
	row := Row{Group: GroupSensors, Name: fmt.Sprintf("slot %d sensor", s.Slot), Slot: s.Slot, Result: Pass}
	reads := "reads no key"
	if present {
		reads = "reads a key"
	}
	key := ""
	if s.KeyID != "" {
		key = fmt.Sprintf(" (home of %s)", keyName(s))
	}
	row.Detail = reads + key
	if s.Expected != nil && *s.Expected != present {
		row.Result = Fail
		if *s.Expected {
			row.Detail = fmt.Sprintf("reads no key though %s is in the slot: dead sensor or its wire cut", keyName(s))
		} else {
			row.Detail = "reads a key though the slot is empty: sensor stuck or its wire shorted"
		}
	}
	return row
}

func keyName(s SlotInfo) string {
	switch {
	case s.KeyID == "":
		return "a key"
	case s.KeyName != "":
		return fmt.Sprintf("key %s (%s)", s.KeyID, s.KeyName)
	default:
		return "key " + s.KeyID
	}
}

// waitFor waits up to timeout for an input that match accepts; the others
// are passed to seen (may be nil). ok is false on timeout.
func (r *run) waitFor(timeout time.Duration, match func(Input) bool, seen func(Input)) (in Input, ok bool, err error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return Input{}, false, nil
		}
		in, err := r.b.Next(r.ctx, left)
		if err != nil {
			return Input{}, false, err
		}
		if in.Kind == InputNone {
			return Input{}, false, nil
		}
		if match(in) {
			return in, true, nil
		}
		if seen != nil {
			seen(in)
		}
	}
}

func sensorIs(slot int, present bool) func(Input) bool {
	return func(in Input) bool { return in.Kind == InputSensor && in.Slot == slot && in.Present == present }
}

// lock tests slot s's lock. A slot with a key: release, the key taken,
// relock; release, the key back, relock. An empty slot: release, the latch
// seen open (or with --yes the sensor steady), relock.
func (r *run) lock(s SlotInfo, present bool) (row Row, err error) {
	n := s.Slot
	row = Row{Group: GroupLocks, Name: fmt.Sprintf("slot %d lock", n), Slot: n}
	released := false
	// Whatever happens below (a failure, the board gone, a panic), the
	// lock is de-energised before the row is written.
	defer func() {
		if released {
			if lerr := r.b.Lock(context.WithoutCancel(r.ctx), n); lerr != nil {
				row.Result, row.Detail = Fail, fmt.Sprintf("%s; relocking failed: %v", row.Detail, lerr)
				err = errors.Join(err, fmt.Errorf("relocking slot %d: %w", n, lerr))
			}
		}
	}()
	release := func() error {
		if err := r.b.Release(r.ctx, n, r.opts.ReleaseFor); err != nil {
			return err
		}
		released = true
		return nil
	}
	relock := func() error {
		released = false
		return r.b.Lock(r.ctx, n)
	}
	what := "empty"
	if present {
		what = "holding " + keyName(s)
	}
	yes, err := r.p.Confirm(r.ctx, fmt.Sprintf("Release slot %d (%s) to test its lock?", n, what))
	if err != nil {
		return row, err
	}
	if !yes {
		row.Result, row.Detail = Skipped, "not released (the technician said no)"
		return row, nil
	}
	if err := release(); err != nil {
		row.Result, row.Detail = Fail, fmt.Sprintf("the lock did not release: %v", err)
		return row, r.ctx.Err()
	}
	if !present {
		return r.emptyLock(row, relock)
	}
	r.p.Say(Step{Do: ActTake, Slot: n, Key: keyName(s)}.String())
	_, ok, err := r.waitFor(r.opts.TakeTimeout, sensorIs(n, false), nil)
	if err != nil {
		return row, err
	}
	if !ok {
		row.Result = Fail
		row.Detail = fmt.Sprintf("the key sensor still reads a key %s after release: jammed latch or key not pulled", r.opts.TakeTimeout)
		return row, nil
	}
	if err := relock(); err != nil {
		row.Result, row.Detail = Fail, fmt.Sprintf("key taken, relocking failed: %v", err)
		return row, nil
	}
	if err := release(); err != nil {
		row.Result = Fail
		row.Detail = fmt.Sprintf("key taken, the lock did not release again: %v (the key is out of the box: return it through a driver's return)", err)
		return row, r.ctx.Err()
	}
	// Said once the slot is open, not before: a quick hand would meet a
	// latched slot.
	r.p.Say(Step{Do: ActPutBack, Slot: n, Key: keyName(s)}.String())
	_, ok, err = r.waitFor(r.opts.ReturnTimeout, sensorIs(n, true), nil)
	if err != nil {
		return row, err
	}
	if !ok {
		row.Result = Fail
		row.Detail = fmt.Sprintf("key taken, but not seen back within %s: the key is out of the box (seat it, then run the test again)", r.opts.ReturnTimeout)
		return row, nil
	}
	if err := relock(); err != nil {
		row.Result, row.Detail = Fail, fmt.Sprintf("key back, relocking failed: %v", err)
		return row, nil
	}
	row.Result, row.Detail = Pass, "released, key taken, key back, relocked"
	return row, nil
}

// emptyLock finishes an empty slot's row: the slot is released.
func (r *run) emptyLock(row Row, relock func() error) (Row, error) {
	n := row.Slot
	if r.p.AssumeYes() {
		in, changed, err := r.waitFor(r.opts.SteadyWatch, func(in Input) bool { return in.Kind == InputSensor && in.Slot == n }, nil)
		if err != nil {
			return row, err
		}
		if err := relock(); err != nil {
			row.Result, row.Detail = Fail, fmt.Sprintf("relocking failed: %v", err)
			return row, nil
		}
		if changed {
			row.Result = Fail
			row.Detail = fmt.Sprintf("the empty slot's sensor changed by itself while released (reads a key: %v): a loose sensor or its wiring", in.Present)
			return row, nil
		}
		row.Result, row.Detail = Pass, "released and relocked, sensor steady (latch not looked at: --yes)"
		return row, nil
	}
	opened, err := r.p.Confirm(r.ctx, fmt.Sprintf("Slot %d is released: did its latch open?", n))
	if lerr := relock(); lerr != nil {
		row.Result, row.Detail = Fail, fmt.Sprintf("relocking failed: %v", lerr)
		return row, err
	}
	if err != nil {
		return row, err
	}
	if !opened {
		row.Result, row.Detail = Fail, "the latch did not open though the lock was energised: jammed latch, lock coil or its wiring"
		return row, nil
	}
	row.Result, row.Detail = Pass, "released, latch seen open, relocked"
	return row, nil
}

// keys asks for each keypad key in turn.
func (r *run) keys() error {
	for _, line := range r.b.Layout() {
		for _, k := range line {
			key := string(k)
			row := Row{Group: GroupKeys, Name: "key " + key}
			r.p.Say(Step{Do: ActPress, Key: key}.String())
			var others []string
			_, ok, err := r.waitFor(r.opts.KeyTimeout, func(in Input) bool { return in.Kind == InputKey && in.Key == key },
				func(in Input) {
					if in.Kind == InputKey {
						others = append(others, in.Key)
					}
				})
			if err != nil {
				return err
			}
			switch {
			case ok && len(others) == 0:
				row.Result, row.Detail = Pass, "pressed"
			case ok:
				row.Result, row.Detail = Pass, fmt.Sprintf("pressed (read first: %s)", strings.Join(others, " "))
			case len(others) > 0:
				row.Result = Fail
				row.Detail = fmt.Sprintf("not read within %s; read instead: %s: a row or column wire crossed or cut", r.opts.KeyTimeout, strings.Join(others, " "))
			default:
				row.Result = Fail
				row.Detail = fmt.Sprintf("not read within %s: a dead key, or its row or column wire cut", r.opts.KeyTimeout)
			}
			r.add(row)
		}
	}
	return nil
}

// reader asks for a fob at the reader.
func (r *run) reader() error {
	row := Row{Group: GroupReader, Name: "fob reader"}
	r.p.Say(Step{Do: ActFob}.String())
	in, ok, err := r.waitFor(r.opts.FobTimeout, func(in Input) bool { return in.Kind == InputFob }, nil)
	if err != nil {
		return err
	}
	if ok {
		row.Result, row.Detail = Pass, "read fob "+in.Fob
	} else {
		row.Result = Fail
		row.Detail = fmt.Sprintf("no fob read within %s: the reader, its serial line (port, baud) or the fob", r.opts.FobTimeout)
	}
	r.add(row)
	return nil
}

// checks adds the clock, store and broker rows.
func (r *run) checks(c Checks) {
	if r.want(GroupClock) {
		row := Row{Group: GroupClock, Name: "clock trusted", Result: Pass, Detail: c.Clock.UTC().Format(time.RFC3339)}
		if !c.ClockTrusted {
			row.Result = Fail
			row.Detail = fmt.Sprintf("%s is before the earliest time the box can be: set the clock (NTP or the RTC)", row.Detail)
		}
		r.add(row)
		row = Row{Group: GroupClock, Name: "clock NTP", Result: Pass, Detail: "synchronised"}
		switch {
		case c.Simulated:
			row.Result, row.Detail = NotAvailable, "the simulator's clock (NTP does not set it)"
		case !c.ClockSynced:
			row.Result, row.Detail = Fail, "not synchronised by NTP: check the network and timesyncd/chrony"
		}
		r.add(row)
	}
	if r.want(GroupStore) {
		row := Row{Group: GroupStore, Name: "store", Result: Pass, Detail: "opens, bbolt check clean, identity matches"}
		if c.StoreErr != "" {
			row.Result, row.Detail = Fail, c.StoreErr
		}
		r.add(row)
	}
	if r.want(GroupBroker) {
		row := Row{Group: GroupBroker, Name: "broker connection"}
		switch c.Cloud {
		case "connected":
			row.Result, row.Detail = Pass, "connected to "+c.Broker
		case daemonStopped:
			row.Result, row.Detail = NotAvailable, "smartboxd is stopped: nothing holds a broker connection"
		case "offline-only", "":
			row.Result, row.Detail = NotAvailable, "no [cloud] in the config: an offline box"
		default:
			row.Result = Fail
			row.Detail = fmt.Sprintf("%s to %s: check the network, the broker URL and the box's certificate", c.Cloud, c.Broker)
		}
		r.add(row)
	}
}

// signing is the signed round trip's row.
func (r *run) signing() Row {
	row := Row{Group: GroupSigning, Name: "signed round trip"}
	res, err := r.b.Probe(r.ctx)
	switch {
	case errors.Is(err, ErrNotAvailable):
		row.Result, row.Detail = NotAvailable, err.Error()
	case err != nil:
		row.Result, row.Detail = Fail, err.Error()
	default:
		key := res.KeyID
		if key == "" {
			key = "the default key"
		}
		row.Result, row.Detail = Pass, fmt.Sprintf("verified with %s in %s", key, res.RTT.Round(time.Millisecond))
	}
	return row
}
