package box

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Hardware is what the controller drives. hal/slots.Dev is all three.
type Hardware struct {
	Locks   Locks
	Sensors KeySensors
	LEDs    Indicators // may be nil
}

// Controller is the box: one event loop that owns the keypad entry, the slot
// sequences and the lockout. Inputs (Press, FobScanned, KeySensed) may be
// called from any goroutine; they are queued and handled in order.
type Controller struct {
	// immutable
	cfg   Config
	st    Store
	hw    Hardware
	clock Clock
	log   *slog.Logger
	in    chan func()
	done  chan struct{}

	// mutable, owned by the loop goroutine
	entry      []byte
	overflow   bool
	entryTimer Timer
	entryGen   uint64
	slots      []slotState // index slot-1
	untrusted  bool        // last clock trust seen, to report a change once

	lockout        Lockout
	lockoutPending bool  // memory is ahead of the store: the next commit writes it
	lockoutTimer   Timer // retries the write when nothing else commits
	// decayMark is the clock's Uptime at lockout.Since, as far as this
	// process knows it: the decay credits no more than real time passed.
	decayMark time.Duration
	// refillMark is the same for lockout.Refilled and the guess budget's
	// refill (Run credits it the time the box was off, see offCredit);
	// refillServed is the part of the current refill lockoutNow last found
	// served.
	refillMark, refillServed time.Duration
	// attempts are the times of the last AttackThreshold failed codes;
	// lastAttack is when keypad_attack was last raised, sinceAlert the
	// failed codes since then.
	attempts   []time.Time
	lastAttack time.Time
	sinceAlert int
	refusals   map[refusalKind]*refusalRun

	viewMu sync.Mutex
	view   []SlotView
	// typed mirrors len(entry) for Typed (other goroutines); changed is
	// closed (and dropped) when it or view changes.
	typed   int
	changed chan struct{}
}

type phase int

const (
	idle phase = iota
	releasedTake
	releasedReturn
	releasedRemote
	releasedLocal // ReleaseLocal: like releasedRemote, a person who may take or seat the key
)

type slotState struct {
	phase    phase
	keyID    string
	grantID  string
	fobUID   string
	occupied bool
	timer    Timer
	gen      uint64
	ret      *seatedReturn // a key seated for its return, settling
	// fruitless counts the releases in a row that timed out with nothing
	// moved; until then the slot is not released for a code or a fob
	// (coolDownFor). A key moving in the slot resets both.
	fruitless int
	coolUntil time.Time
}

// cooling reports whether the slot rests at now after fruitless releases. A
// clock set back does not make it rest longer than ReleaseCoolMax.
func (s *slotState) cooling(now time.Time) bool {
	if limit := now.Add(ReleaseCoolMax); s.coolUntil.After(limit) {
		s.coolUntil = limit
	}
	return now.Before(s.coolUntil)
}

// seatedReturn is a key seated in a slot released for its return. The slot
// is relocked already; key_returned waits until the sensor has seen the key
// seated for ReturnSettle, or says for how long it did.
type seatedReturn struct {
	ev    Event     // key_returned, without SeatedMS
	at    time.Time // when the sensor saw the key seated
	timer Timer
}

// SlotView is a snapshot of one slot, for consoles and status.
type SlotView struct {
	Slot     int     `json:"slot"`
	KeyID    string  `json:"key_id,omitempty"` // the key in its sequence, if any
	Occupied bool    `json:"occupied"`
	Released bool    `json:"released"`
	Purpose  Purpose `json:"purpose,omitempty"`
}

// New checks the configuration and makes a controller. Nothing is touched
// until Run.
func New(cfg Config, st Store, hw Hardware, clock Clock, log *slog.Logger) (*Controller, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("box config: %w", err)
	}
	if st == nil || hw.Locks == nil || hw.Sensors == nil {
		return nil, errors.New("box: a store, locks and key sensors are required")
	}
	if clock == nil {
		clock = SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		cfg: cfg, st: st, hw: hw, clock: clock, log: log,
		// Inputs arrive in bursts (a typed PIN, a sensor flapping); the buffer
		// absorbs them while a commit fsyncs.
		in:       make(chan func(), 256),
		done:     make(chan struct{}),
		slots:    make([]slotState, cfg.Slots),
		refusals: map[refusalKind]*refusalRun{},
	}
	c.view = make([]SlotView, cfg.Slots)
	for i := range c.view {
		c.view[i].Slot = i + 1
	}
	return c, nil
}

// Config returns the effective configuration (defaults filled in).
func (c *Controller) Config() Config { return c.cfg }

// Press queues a keypad key: '0'..'9', '*' (clear) or '#' (submit).
func (c *Controller) Press(key rune) { c.post(func() { c.press(key) }) }

// FobScanned queues a fob read at the RFID reader.
func (c *Controller) FobScanned(uid string) { c.post(func() { c.fobScanned(uid) }) }

// KeySensed queues a change of a slot's key-present sensor.
func (c *Controller) KeySensed(slot int, present bool) {
	c.post(func() { c.keySensed(slot, present) })
}

// Flush waits until every input queued before it has been handled, or the
// controller has stopped.
func (c *Controller) Flush() {
	ch := make(chan struct{})
	c.post(func() { close(ch) })
	select {
	case <-ch:
	case <-c.done:
	}
}

// Typed returns how many keys are in the keypad entry now: digits since the
// last submit, clear or timeout (never the digits themselves). Safe from any
// goroutine, like Slots.
func (c *Controller) Typed() int {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	return c.typed
}

// Changed returns a channel closed at the next change of what Typed or
// Slots return, for a watcher that shows them (smartboxd's socket): take it
// before reading them, and a change while reading is not missed.
func (c *Controller) Changed() <-chan struct{} {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

// viewChangedLocked wakes Changed's waiters; viewMu is held.
func (c *Controller) viewChangedLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// noteTyped publishes len(entry) to Typed.
func (c *Controller) noteTyped() {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	if n := len(c.entry); n != c.typed {
		c.typed = n
		c.viewChangedLocked()
	}
}

// Slots returns a snapshot of every slot.
func (c *Controller) Slots() []SlotView {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	return append([]SlotView(nil), c.view...)
}

func (c *Controller) post(f func()) {
	select {
	case c.in <- f:
	case <-c.done:
	}
}

// Run is the event loop. It de-energises every lock at start and at stop
// (fail secure) and returns when ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	defer close(c.done)
	if err := c.hw.Locks.LockAll(); err != nil {
		// A lock we cannot drive is a box we cannot trust to stay shut.
		return fmt.Errorf("box start: locking all slots: %w", err)
	}
	lo, err := c.st.Lockout()
	if err != nil {
		return fmt.Errorf("box start: reading lockout: %w", err)
	}
	c.lockout = lo
	c.markDecay(c.clock.Now())
	c.lockoutNow(c.clock.Now())
	for i := range c.slots {
		p, err := c.hw.Sensors.Present(i + 1)
		if err != nil {
			return fmt.Errorf("box start: reading key sensor of slot %d: %w", i+1, err)
		}
		c.slots[i].occupied = p
		c.setLED(i+1, false)
	}
	now := c.clock.Now()
	evs := []Event{c.event(now, Event{Type: EventBoxStarted, Detail: fmt.Sprintf("%d slots", c.cfg.Slots)})}
	if !c.trusted(now) {
		c.untrusted = true
		evs = append(evs, c.event(now, Event{Type: EventClockUntrusted,
			Detail: fmt.Sprintf("box clock %s is before build time %s; windowed grants: %s",
				now.UTC().Format(time.RFC3339), c.cfg.BuildTime.UTC().Format(time.RFC3339), c.cfg.UntrustedClock)}))
	}
	ch := c.withLockout(Change{Events: evs})
	_, err = c.st.Commit(ch)
	c.committed(ch, err)
	if err != nil {
		return fmt.Errorf("box start: recording start: %w", err)
	}
	c.updateView()
	c.log.Info("box started", "slots", c.cfg.Slots, "clock_trusted", !c.untrusted)

	for {
		select {
		case f := <-c.in:
			f()
			c.updateView()
		case <-ctx.Done():
			return c.stop()
		}
	}
}

func (c *Controller) stop() error {
	now := c.clock.Now()
	var evs []Event
	for i := range c.slots {
		s := &c.slots[i]
		if s.ret != nil {
			// Stopped while settling: say how long it was seen seated.
			evs = append(evs, c.settled(i+1, now))
		}
		if s.phase != idle {
			evs = append(evs, c.event(now, Event{Type: EventSlotRelocked, Slot: i + 1, KeyID: s.keyID,
				GrantID: s.grantID, Reason: ReasonStop}))
		}
		c.endSequence(i + 1)
	}
	if c.entryTimer != nil {
		c.entryTimer.Stop()
	}
	if c.lockoutTimer != nil {
		c.lockoutTimer.Stop()
	}
	lockErr := c.hw.Locks.LockAll()
	evs = append(evs, c.closeAllRefusals(now)...)
	evs = append(evs, c.event(now, Event{Type: EventBoxStopped}))
	_, err := c.st.Commit(c.withLockout(Change{Events: evs}))
	c.updateView()
	c.log.Info("box stopped")
	return errors.Join(lockErr, err)
}

// trusted reports whether the box clock can be believed at now.
func (c *Controller) trusted(now time.Time) bool {
	return c.cfg.BuildTime.IsZero() || !now.Before(c.cfg.BuildTime)
}

// event stamps e with the time and the clock's trust.
func (c *Controller) event(now time.Time, e Event) Event {
	e.Time = now
	e.ClockUntrusted = !c.trusted(now)
	return e
}

// commit records a change, with the lockout if the store is behind memory;
// a failure is logged, and the caller must not move anything it was meant to
// record (fail secure). A change with nothing in it is not written.
func (c *Controller) commit(ch Change) error {
	ch = c.withLockout(ch)
	if len(ch.UseGrants) == 0 && ch.Lockout == nil && len(ch.Events) == 0 {
		return nil
	}
	_, err := c.st.Commit(ch)
	c.committed(ch, err)
	if err != nil {
		c.log.Error("recording events", "err", err, "events", len(ch.Events))
	}
	return err
}

// ---- keypad ----

func (c *Controller) press(key rune) {
	switch {
	case key >= '0' && key <= '9':
		if len(c.entry) >= c.cfg.MaxEntryLength {
			c.overflow = true
		} else {
			c.entry = append(c.entry, byte(key))
			c.noteTyped()
		}
		c.armEntryTimer()
	case key == '*':
		c.clearEntry()
	case key == '#':
		if len(c.entry) == 0 && !c.overflow {
			return
		}
		code, overflow := string(c.entry), c.overflow
		c.clearEntry()
		c.submit(code, overflow)
	default:
		c.log.Warn("keypad: unknown key ignored", "key", string(key))
	}
}

func (c *Controller) armEntryTimer() {
	if c.entryTimer != nil {
		c.entryTimer.Stop()
	}
	c.entryGen++
	gen := c.entryGen
	c.entryTimer = c.clock.AfterFunc(c.cfg.EntryTimeout, func() {
		c.post(func() {
			if gen == c.entryGen {
				c.log.Debug("keypad: entry timed out")
				c.clearEntry()
			}
		})
	})
}

func (c *Controller) clearEntry() {
	// Overwrite the digits: the entry is a code in clear.
	for i := range c.entry {
		c.entry[i] = 0
	}
	c.entry = c.entry[:0]
	c.noteTyped()
	c.overflow = false
	c.entryGen++
	if c.entryTimer != nil {
		c.entryTimer.Stop()
		c.entryTimer = nil
	}
}

// submit checks a typed code and opens what it grants.
func (c *Controller) submit(code string, overflow bool) {
	now := c.clock.Now()
	lo := c.lockoutNow(now)
	if lo.Spent >= c.cfg.LockoutBudget {
		// The guess budget is spent: no code is checked, a good one
		// neither, until a refill (or a restore_keypad from the cloud).
		// Nothing is spent either: the closure ends when stated.
		evs := c.refused(now, Event{Type: EventCodeRefused, Reason: ReasonKeypadClosed, Until: c.closedUntil(now),
			Failures: lo.Failures})
		c.commit(Change{Events: append(evs, c.attempted(now, false)...)})
		return
	}
	if now.Before(lo.Until) {
		// Codes typed during a wait are not even looked up, so a guesser
		// learns nothing; they do not extend the wait either, so a driver
		// trying again early loses nothing. They do count as an attack.
		evs := c.refused(now, Event{Type: EventCodeRefused, Reason: ReasonLockedOut, Until: lo.Until, Failures: lo.Failures})
		c.commit(Change{Events: append(evs, c.attempted(now, false)...)})
		return
	}
	if overflow {
		c.fail(now, ReasonTooLong)
		return
	}
	grants, err := c.st.GrantsByCode(code)
	if err != nil {
		c.log.Error("looking up a code", "err", err)
		c.commit(Change{Events: []Event{c.event(now, Event{Type: EventHardwareFault, Detail: "store: code lookup failed"})}})
		return
	}
	if len(grants) == 0 {
		c.fail(now, ReasonUnknownCode)
		return
	}
	// A code may belong to several grants over time (an old booking's PIN
	// reused after it ended); only the usable ones count.
	var usable []Grant
	var why Reason
	for _, g := range grants {
		if ok, r := c.usable(g, now); ok {
			usable = append(usable, g)
		} else if why == "" || rank(r) > rank(why) {
			why = r
		}
	}
	if len(usable) == 0 {
		// A real code out of its window is not a guess: it does not count
		// towards the lockout, but it is refused and recorded.
		c.refuse(now, Event{Type: EventCodeRefused, Reason: why, GrantID: grants[0].ID})
		return
	}
	c.open(now, usable)
}

// rank orders refusal reasons by how useful they are to the person at the
// keypad when several grants share a code.
func rank(r Reason) int {
	switch r {
	case ReasonNotYetValid:
		return 5
	case ReasonClockUntrusted:
		return 4
	case ReasonUsedUp:
		return 3
	case ReasonExpired:
		return 2
	case ReasonRevoked:
		return 1
	}
	return 0
}

func (c *Controller) usable(g Grant, now time.Time) (bool, Reason) {
	if g.Windowed() && !c.trusted(now) && c.cfg.UntrustedClock == ClockRefuse {
		if g.Revoked {
			return false, ReasonRevoked
		}
		return false, ReasonClockUntrusted
	}
	return g.Usable(now)
}

// open releases the slots of the keys that the usable grants give.
func (c *Controller) open(now time.Time, grants []Grant) {
	type target struct {
		slot  int
		key   Key
		grant string
	}
	var (
		targets []target
		events  []Event
		used    []string // grants that open something, in order: their uses go up
		seen    = map[string]bool{}
	)
	markUsed := func(id string) {
		for _, u := range used {
			if u == id {
				return
			}
		}
		used = append(used, id)
	}
	addKeys := func(g Grant) {
		for _, id := range g.KeyIDs {
			if seen[id] {
				continue
			}
			seen[id] = true
			k, ok, err := c.st.KeyByID(id)
			if err != nil || !ok {
				c.log.Warn("grant names a key the box does not have", "grant", g.ID, "key", id, "err", err)
				continue
			}
			if k.Slot < 1 || k.Slot > c.cfg.Slots {
				c.log.Warn("key's slot is not on this box", "key", id, "slot", k.Slot)
				continue
			}
			s := &c.slots[k.Slot-1]
			switch {
			case s.phase != idle:
				events = append(events, c.event(now, Event{Type: EventKeyAbsent, Slot: k.Slot, KeyID: k.ID, GrantID: g.ID, Reason: ReasonSlotBusy}))
			case !s.occupied:
				events = append(events, c.event(now, Event{Type: EventKeyAbsent, Slot: k.Slot, KeyID: k.ID, GrantID: g.ID}))
			case s.cooling(now):
				events = append(events, c.event(now, Event{Type: EventKeyAbsent, Slot: k.Slot, KeyID: k.ID, GrantID: g.ID,
					Reason: ReasonCoolDown, Until: s.coolUntil}))
			default:
				targets = append(targets, target{slot: k.Slot, key: k, grant: g.ID})
				markUsed(g.ID)
			}
		}
	}
	for _, g := range grants {
		before := len(targets)
		addKeys(g)
		if g.Kind != KindDriverCode {
			continue
		}
		// A driver code also opens the keys of the driver's active bookings.
		others, err := c.st.GrantsByDriver(g.DriverRef)
		if err != nil {
			c.log.Error("looking up a driver's grants", "err", err)
			continue
		}
		for _, o := range others {
			if o.ID == g.ID {
				continue
			}
			if ok, _ := c.usable(o, now); ok {
				addKeys(o)
			}
		}
		if len(targets) > before {
			markUsed(g.ID)
		}
	}

	var ch Change
	for _, g := range grants {
		ch.Events = append(ch.Events, c.event(now, Event{Type: EventCodeAccepted, GrantID: g.ID, Detail: string(g.Kind)}))
	}
	if len(targets) == 0 && len(events) == 0 {
		// The code is good but none of its keys is on this box (records
		// not synced yet, or a key removed): say so rather than pretend.
		c.refuse(now, Event{Type: EventCodeRefused, Reason: ReasonNoKeys, GrantID: grants[0].ID})
		return
	}
	ch.Events = append(ch.Events, events...)
	if len(targets) == 0 {
		// A good code that opens nothing (its keys are out, or their
		// slots busy or resting) moves nothing, and can be typed as
		// often as anyone likes: it is a refusal, merged like one.
		var evs []Event
		for _, e := range ch.Events {
			evs = append(evs, c.refused(now, e)...)
		}
		c.commit(Change{Events: evs})
		return
	}
	ch.UseGrants = used
	// A good code forgives no wrong ones, even when it opens a slot: a
	// driver could otherwise take and return a key between guesses and
	// guess forever (see doc.go, "Wrong codes").
	for _, t := range targets {
		if c.slots[t.slot-1].ret != nil {
			// Released again while its return settles: the return is
			// recorded first, with the time it was seen seated.
			ch.Events = append(ch.Events, c.settled(t.slot, now))
		}
		ch.Events = append(ch.Events, c.event(now, Event{Type: EventSlotReleased, Slot: t.slot, KeyID: t.key.ID,
			GrantID: t.grant, Purpose: PurposeTake}))
	}
	if err := c.commit(ch); err != nil {
		if errors.Is(err, ErrUsedUp) {
			c.refuse(now, Event{Type: EventCodeRefused, Reason: ReasonUsedUp, GrantID: grants[0].ID})
		}
		return // not recorded, not opened
	}
	for _, t := range targets {
		c.startSequence(now, t.slot, releasedTake, t.key.ID, t.grant, "")
	}
}

// ---- slots ----

// startSequence energises a slot's lock and waits for its key to move. The
// slot_released event is already committed: the intent is on record before
// the coil moves.
func (c *Controller) startSequence(now time.Time, slot int, p phase, keyID, grantID, fob string) {
	s := &c.slots[slot-1]
	if err := c.hw.Locks.Release(slot, c.cfg.ReleaseTime); err != nil {
		c.log.Error("releasing a slot", "slot", slot, "err", err)
		_ = c.hw.Locks.Lock(slot)
		c.commit(Change{Events: []Event{c.event(now, Event{Type: EventHardwareFault, Slot: slot, KeyID: keyID,
			GrantID: grantID, Detail: "lock release failed: " + err.Error()})}})
		return
	}
	s.phase, s.keyID, s.grantID, s.fobUID = p, keyID, grantID, fob
	s.gen++
	gen := s.gen
	s.timer = c.clock.AfterFunc(c.cfg.ReleaseTime, func() {
		c.post(func() { c.slotTimeout(slot, gen) })
	})
	c.setLED(slot, true)
}

// endSequence relocks a slot and forgets its sequence.
func (c *Controller) endSequence(slot int) {
	s := &c.slots[slot-1]
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.phase != idle {
		if err := c.hw.Locks.Lock(slot); err != nil {
			c.log.Error("relocking a slot", "slot", slot, "err", err)
		}
		c.setLED(slot, false)
	}
	s.phase, s.keyID, s.grantID, s.fobUID = idle, "", "", ""
	s.gen++
}

func (c *Controller) slotTimeout(slot int, gen uint64) {
	s := &c.slots[slot-1]
	if s.gen != gen || s.phase == idle {
		return // the sequence ended another way
	}
	now := c.clock.Now()
	ev := c.event(now, Event{Type: EventSlotRelocked, Slot: slot, KeyID: s.keyID, GrantID: s.grantID,
		FobUID: s.fobUID, Reason: ReasonTimeout, Purpose: purposeOf(s.phase)})
	evs := []Event{ev}
	if s.phase != releasedRemote && s.phase != releasedLocal {
		// Released for a code or a fob and nothing moved: the slot rests
		// (its coil cools) before it is released again, longer each time
		// in a row, and the relock is merged like a refusal. A signed
		// command from the cloud (or a technician at the box) is not held
		// back.
		s.fruitless++
		s.coolUntil = now.Add(coolDownFor(s.fruitless))
		evs = c.refused(now, ev)
	}
	c.endSequence(slot) // lock first: the safe move does not wait for the disk
	c.commit(Change{Events: evs})
}

func purposeOf(p phase) Purpose {
	switch p {
	case releasedTake:
		return PurposeTake
	case releasedReturn:
		return PurposeReturn
	case releasedRemote:
		return PurposeRemote
	case releasedLocal:
		return PurposeLocal
	}
	return ""
}

func (c *Controller) keySensed(slot int, present bool) {
	if slot < 1 || slot > c.cfg.Slots {
		c.log.Warn("key sensor of an unknown slot", "slot", slot)
		return
	}
	s := &c.slots[slot-1]
	if s.occupied == present {
		return
	}
	s.occupied = present
	s.fruitless, s.coolUntil = 0, time.Time{} // a key moved: the slot is in use, not played with
	now := c.clock.Now()
	var evs []Event
	if s.ret != nil && !present {
		// Gone before it settled: the return is recorded with the time it
		// was seen seated, short of the settle, so it is not trusted.
		evs = append(evs, c.settled(slot, now))
	}
	switch {
	case s.phase == releasedTake && !present:
		evs = append(evs,
			c.event(now, Event{Type: EventKeyTaken, Slot: slot, KeyID: s.keyID, GrantID: s.grantID}),
			c.event(now, Event{Type: EventSlotRelocked, Slot: slot, KeyID: s.keyID, GrantID: s.grantID,
				Reason: ReasonKeyTaken, Purpose: PurposeTake}))
		c.endSequence(slot)
	case (s.phase == releasedReturn || s.phase == releasedRemote || s.phase == releasedLocal) && present:
		// Relock at once (the safe move never waits); key_returned waits
		// for the sensor to settle.
		ret := Event{Type: EventKeyReturned, Slot: slot, KeyID: s.keyID, FobUID: s.fobUID, ReturnBy: ReturnByFob}
		switch s.phase {
		case releasedRemote:
			ret.ReturnBy, ret.Purpose = ReturnByRemote, PurposeRemote
		case releasedLocal:
			ret.ReturnBy, ret.Purpose = ReturnByLocal, PurposeLocal
		}
		evs = append(evs, c.event(now, Event{Type: EventSlotRelocked, Slot: slot, KeyID: s.keyID, FobUID: s.fobUID,
			Reason: ReasonKeyReturned, Purpose: purposeOf(s.phase)}))
		c.endSequence(slot)
		c.settle(slot, now, ret)
	case s.phase == releasedRemote || s.phase == releasedLocal:
		p := purposeOf(s.phase)
		evs = append(evs,
			c.event(now, Event{Type: EventKeyTaken, Slot: slot, KeyID: s.keyID, Purpose: p}),
			c.event(now, Event{Type: EventSlotRelocked, Slot: slot, KeyID: s.keyID, Reason: ReasonKeyTaken, Purpose: p}))
		c.endSequence(slot)
	case s.phase == idle:
		what := "key removed from a locked slot"
		if present {
			what = "key appeared in a locked slot"
		}
		c.log.Warn("slot sensor changed while locked", "slot", slot, "present", present)
		evs = append(evs, c.event(now, Event{Type: EventSlotUnexpected, Slot: slot, Detail: what}))
	}
	// Otherwise: a key put back while released for taking, or pulled
	// again while returning; nothing to record.
	c.commit(Change{Events: evs})
}

// settle waits ReturnSettle for a returned key to stay seated before
// recording its key_returned.
func (c *Controller) settle(slot int, now time.Time, ev Event) {
	s := &c.slots[slot-1]
	r := &seatedReturn{ev: ev, at: now}
	r.timer = c.clock.AfterFunc(c.cfg.ReturnSettle, func() {
		c.post(func() {
			if s.ret == r {
				c.commit(Change{Events: []Event{c.settled(slot, c.clock.Now())}})
			}
		})
	})
	s.ret = r
}

// settled ends a slot's settle at now: its key_returned, stamped with the
// time the key was seated and how long the sensor saw it seated since.
func (c *Controller) settled(slot int, now time.Time) Event {
	s := &c.slots[slot-1]
	r := s.ret
	s.ret = nil
	r.timer.Stop()
	ev := r.ev
	ev.SeatedMS = max(now.Sub(r.at).Milliseconds(), 0)
	return c.event(r.at, ev)
}

// ---- remote ----

// ErrSlotBusy is returned by RemoteRelease for a slot already released.
var ErrSlotBusy = errors.New("slot is already released")

// RemoteRelease opens a slot on a signed command from the cloud (a technician
// or an administrator; by and reason are recorded with the command id). The
// slot relocks when its key leaves or is seated, or after the release time.
func (c *Controller) RemoteRelease(slot int, by, reason, commandID string) error {
	res := make(chan error, 1)
	c.post(func() { res <- c.remoteRelease(slot, by, reason, commandID) })
	select {
	case err := <-res:
		return err
	case <-c.done:
		return errors.New("box is stopping")
	}
}

func (c *Controller) remoteRelease(slot int, by, reason, commandID string) error {
	return c.releaseFor(slot, releasedRemote, Event{Type: EventSlotReleased, Purpose: PurposeRemote,
		Detail: fmt.Sprintf("command %s by %s: %s", commandID, by, reason)})
}

// releaseFor releases slot for a person (phase releasedRemote or
// releasedLocal), recording ev (its slot and time filled in here) before
// the coil moves, as a code's release does. It runs on the loop.
func (c *Controller) releaseFor(slot int, p phase, ev Event) error {
	if slot < 1 || slot > c.cfg.Slots {
		return fmt.Errorf("slot %d is not in 1..%d", slot, c.cfg.Slots)
	}
	if c.slots[slot-1].phase != idle {
		return fmt.Errorf("slot %d: %w", slot, ErrSlotBusy)
	}
	now := c.clock.Now()
	var evs []Event
	if c.slots[slot-1].ret != nil {
		evs = append(evs, c.settled(slot, now)) // its return first, as in open
	}
	ev.Slot = slot
	evs = append(evs, c.event(now, ev))
	if err := c.commit(Change{Events: evs}); err != nil {
		return fmt.Errorf("recording the release: %w", err)
	}
	c.startSequence(now, slot, p, "", "", "")
	if c.slots[slot-1].phase != p {
		return fmt.Errorf("slot %d: the lock did not release (hardware fault recorded)", slot)
	}
	return nil
}

// ---- reader ----

func (c *Controller) fobScanned(raw string) {
	now := c.clock.Now()
	uid, ok := NormalizeFobUID(raw)
	if !ok {
		c.refuse(now, Event{Type: EventFobUnknown, Detail: "malformed fob UID"})
		return
	}
	k, ok, err := c.st.KeyByFob(uid)
	if err != nil {
		c.log.Error("looking up a fob", "err", err)
		return
	}
	if !ok {
		c.refuse(now, Event{Type: EventFobUnknown, FobUID: uid})
		return
	}
	refuse := func(r Reason) {
		c.refuse(now, Event{Type: EventReturnRefused, Slot: k.Slot, KeyID: k.ID, FobUID: uid, Reason: r})
	}
	if k.Slot < 1 || k.Slot > c.cfg.Slots {
		refuse(ReasonNoKeys)
		return
	}
	s := &c.slots[k.Slot-1]
	switch {
	case s.phase == releasedReturn && s.keyID == k.ID:
		return // the same fob again while its slot is already open for it
	case s.phase != idle:
		refuse(ReasonSlotBusy)
		return
	case s.occupied:
		refuse(ReasonSlotOccupied)
		return
	case s.cooling(now):
		refuse(ReasonCoolDown)
		return
	}
	ev := c.event(now, Event{Type: EventSlotReleased, Slot: k.Slot, KeyID: k.ID, FobUID: uid, Purpose: PurposeReturn})
	if c.commit(Change{Events: []Event{ev}}) != nil {
		return
	}
	c.startSequence(now, k.Slot, releasedReturn, k.ID, "", uid)
}

func (c *Controller) setLED(slot int, on bool) {
	if c.hw.LEDs == nil {
		return
	}
	if err := c.hw.LEDs.SetSlot(slot, on); err != nil {
		c.log.Warn("slot LED", "slot", slot, "err", err)
	}
}

func (c *Controller) updateView() {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	changed := false
	for i, s := range c.slots {
		v := SlotView{Slot: i + 1, KeyID: s.keyID, Occupied: s.occupied, Released: s.phase != idle,
			Purpose: purposeOf(s.phase)}
		changed = changed || v != c.view[i]
		c.view[i] = v
	}
	if changed {
		c.viewChangedLocked()
	}
}
