package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// Bounds of the workload, stated once.
const (
	// actionsPerBoxSecond scales the workload to the boxes: one action a
	// box every 4 s keeps 50 daemons and the bridge busy on 2 cores
	// without the run measuring only its own queueing.
	actionsPerBoxSecond = 0.25
	// actionTimeout bounds one action (a keypad press, an assignment
	// change): a box being killed or cut answers late or not at all.
	actionTimeout = 5 * time.Second
	// wrongCodesFree is how many wrong codes a box gets for free in a run:
	// under the keypad's LockoutThreshold (5, box/doc.go), so right codes
	// typed after them are still checked at once.
	wrongCodesFree = 4
	// wrongCodeDecay is the keypad's LockoutDecay (15 min): one more wrong
	// code per box per that much of the run.
	wrongCodeDecay = 15 * time.Minute
	// bookingLength is how long a new assignment runs: longer than any
	// run's heal, so a booking's PIN stays right while it is tried.
	bookingLength = 2 * time.Hour
	// maxMove is how far a change moves an assignment's times.
	maxMove = 30 * time.Minute
	// releaseWait bounds the wait for a slot to open after a right code or
	// a fob (the box's grant may not have arrived yet: then no take).
	releaseWait = 3 * time.Second
)

// assignment is one the workload made, still running.
type assignment struct {
	id      int64
	vehicle int64
	box     string
	slot    int
	pin     string // from Fleetio's custom field once the bridge wrote it
}

// slotRef is a vehicle's key's home.
type slotRef struct {
	box  string
	slot int
}

// workload drives the installation: assignments, PINs, keys.
type workload struct {
	d   *depot.Depot
	j   *Journal
	log *slog.Logger
	dur time.Duration

	vehicles []int64            // the automatic-mode vehicles, in a fixed order
	homes    map[int64]slotRef  // vehicle -> its key's slot
	contacts []int64            // drivers
	fobs     map[slotRef]string // key fobs

	mu       sync.Mutex
	active   map[int64]*assignment // by vehicle
	oldPINs  map[string][]string   // box -> PINs of ended assignments
	wrong    map[string]int        // box -> wrong codes typed
	out      map[slotRef]bool      // keys taken, not yet returned
	failures int                   // actions that failed (box down, bridge down...)

	// keypads: one person at a box's keypad at a time, as at a real box.
	// Concurrent presses would interleave their keys, and the oracle
	// could not tell which typing a release followed.
	keypads sync.Map // box id -> *sync.Mutex
}

// newWorkload reads the seeded fleet: the links say which vehicle's key is
// in which slot.
func newWorkload(ctx context.Context, d *depot.Depot, j *Journal, dur time.Duration, log *slog.Logger) (*workload, error) {
	w := &workload{d: d, j: j, log: log, dur: dur, homes: map[int64]slotRef{}, fobs: map[slotRef]string{},
		active: map[int64]*assignment{}, oldPINs: map[string][]string{}, wrong: map[string]int{}, out: map[slotRef]bool{}}
	links, err := d.Vehicles(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the vehicles' links: %w", err)
	}
	for _, v := range d.Boxes() {
		for _, k := range v.Keys {
			w.fobs[slotRef{v.ID, k.Slot}] = k.FobUID
		}
	}
	for _, l := range links {
		if l.Link == nil || l.Link.Method != bookings.ModeAutomatic {
			continue // Prompt vehicles wait for a person's booking
		}
		slot := 0
		for _, v := range d.Boxes() {
			if v.ID != l.Link.BoxID {
				continue
			}
			for _, k := range v.Keys {
				if k.ID == l.Link.KeyID {
					slot = k.Slot
				}
			}
		}
		if slot == 0 {
			continue
		}
		w.vehicles = append(w.vehicles, l.Vehicle.ID)
		w.homes[l.Vehicle.ID] = slotRef{l.Link.BoxID, slot}
	}
	// The order of the links' list is the bridge's: sort for a replay.
	sortInt64(w.vehicles)
	for _, c := range d.Fleetio().Contacts() {
		w.contacts = append(w.contacts, c.ID)
	}
	if len(w.vehicles) == 0 || len(w.contacts) == 0 {
		return nil, fmt.Errorf("the seeded fleet has %d automatic vehicles and %d drivers: want some of each", len(w.vehicles), len(w.contacts))
	}
	// The depot's own first assignment (box 1's first vehicle) runs too.
	for _, a := range d.Fleetio().Assignments() {
		if h, ok := w.homes[a.VehicleID]; ok && a.EndedAt != nil && a.EndedAt.After(time.Now()) {
			w.active[a.VehicleID] = &assignment{id: a.ID, vehicle: a.VehicleID, box: h.box, slot: h.slot}
			j.AddAssignment(a.ID)
		}
	}
	return w, nil
}

// run does actions from r until ctx ends, at the workload's rate.
func (w *workload) run(ctx context.Context, r *rand.Rand, boxes int) {
	every := time.Duration(float64(time.Second) / (actionsPerBoxSecond * float64(boxes)))
	tick := time.NewTicker(every)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Draw the action here, in order: the choices replay with the
		// seed (their outcomes depend on timing, the choices do not).
		n, v := r.IntN(100), r.Uint64()
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, actionTimeout)
			defer cancel()
			if err := w.act(actx, n, rand.New(rand.NewPCG(v, v))); err != nil {
				w.mu.Lock()
				w.failures++
				w.mu.Unlock()
				w.log.Debug("chaos action failed", "err", err)
			}
		})
	}
}

// act does one action, chosen by n (0..99): the mix of a depot's day.
func (w *workload) act(ctx context.Context, n int, r *rand.Rand) error {
	switch {
	case n < 25:
		return w.create(r)
	case n < 35:
		return w.change(r)
	case n < 45:
		return w.end(r)
	case n < 80:
		return w.typeRight(ctx, r)
	case n < 90:
		return w.returnKey(ctx, r)
	default:
		return w.typeWrong(ctx, r)
	}
}

// create assigns a free vehicle to a driver from now for bookingLength.
func (w *workload) create(r *rand.Rand) error {
	w.mu.Lock()
	var free []int64
	for _, v := range w.vehicles {
		if w.active[v] == nil {
			free = append(free, v)
		}
	}
	if len(free) == 0 {
		w.mu.Unlock()
		return nil
	}
	v := free[r.IntN(len(free))]
	h := w.homes[v]
	a := &assignment{vehicle: v, box: h.box, slot: h.slot}
	w.active[v] = a // held while Fleetio answers: no second one on it
	w.mu.Unlock()
	now := time.Now()
	end := now.Add(bookingLength)
	got, err := w.d.Fleetio().CreateAssignment(fleetio.VehicleAssignment{VehicleID: v,
		ContactID: w.contacts[r.IntN(len(w.contacts))], StartedAt: now.Add(-time.Minute), EndedAt: &end})
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		delete(w.active, v)
		return err
	}
	a.id = got.ID
	w.j.AddAssignment(got.ID)
	return nil
}

// pick is a random running assignment with an id (nil if none).
func (w *workload) pick(r *rand.Rand) *assignment {
	var all []*assignment
	for _, v := range w.vehicles {
		if a := w.active[v]; a != nil && a.id != 0 {
			all = append(all, a)
		}
	}
	if len(all) == 0 {
		return nil
	}
	return all[r.IntN(len(all))]
}

// change moves a running assignment's times (start earlier or later,
// end later), keeping it running now.
func (w *workload) change(r *rand.Rand) error {
	w.mu.Lock()
	a := w.pick(r)
	w.mu.Unlock()
	if a == nil {
		return nil
	}
	move := time.Duration(r.Int64N(int64(maxMove)))
	_, err := w.d.Fleetio().UpdateAssignment(a.id, func(fa *fleetio.VehicleAssignment) {
		fa.StartedAt = time.Now().Add(-move)
		end := time.Now().Add(bookingLength + move)
		fa.EndedAt = &end
	})
	if err != nil {
		return err
	}
	w.j.AddChange()
	return nil
}

// end ends a running assignment: deleted, or its end set to now.
func (w *workload) end(r *rand.Rand) error {
	w.mu.Lock()
	a := w.pick(r)
	if a != nil {
		delete(w.active, a.vehicle)
		if a.pin != "" {
			w.oldPINs[a.box] = append(w.oldPINs[a.box], a.pin)
		}
	}
	w.mu.Unlock()
	if a == nil {
		return nil
	}
	var err error
	if r.IntN(2) == 0 {
		_, err = w.d.Fleetio().DeleteAssignment(a.id)
	} else {
		_, err = w.d.Fleetio().UpdateAssignment(a.id, func(fa *fleetio.VehicleAssignment) {
			now := time.Now()
			fa.EndedAt = &now
		})
	}
	if err != nil {
		return err
	}
	w.j.AddEnd()
	return nil
}

// pinOf reads a's PIN from its Fleetio custom field (the bridge writes it
// back once the booking is made); "" until then.
func (w *workload) pinOf(a *assignment) string {
	fa, ok := w.d.Fleetio().Assignment(a.id)
	if !ok {
		return ""
	}
	pin, _ := fa.CustomFields[fleetio.FieldAccessCode].(string)
	if pin != "" {
		w.j.AddCode(CodeOf{Box: a.box, Code: pin, Assignment: a.id})
	}
	return pin
}

// typeRight types a running booking's PIN at its box and, if its slot
// opens, takes the key.
func (w *workload) typeRight(ctx context.Context, r *rand.Rand) error {
	w.mu.Lock()
	a := w.pick(r)
	w.mu.Unlock()
	if a == nil {
		return nil
	}
	pin := w.pinOf(a)
	if pin == "" {
		return nil
	}
	w.mu.Lock()
	a.pin = pin
	ref := slotRef{a.box, a.slot}
	out := w.out[ref]
	w.mu.Unlock()
	if out {
		return nil // its key is out: the driver has it
	}
	if err := w.press(ctx, a.box, pin, a.id); err != nil {
		return err
	}
	if !w.waitReleased(ctx, a.box, a.slot) {
		return nil
	}
	if err := w.d.Take(ctx, a.box, a.slot); err != nil {
		return err
	}
	w.mu.Lock()
	w.out[ref] = true
	w.mu.Unlock()
	w.j.AddTake()
	return nil
}

// returnKey brings a taken key back: its fob at the reader, then the key
// seated when the slot opens.
func (w *workload) returnKey(ctx context.Context, r *rand.Rand) error {
	w.mu.Lock()
	var outs []slotRef
	for ref := range w.out {
		outs = append(outs, ref)
	}
	w.mu.Unlock()
	if len(outs) == 0 {
		return nil
	}
	sortRefs(outs)
	ref := outs[r.IntN(len(outs))]
	if err := w.d.Fob(ctx, ref.box, w.fobs[ref]); err != nil {
		return err
	}
	if !w.waitReleased(ctx, ref.box, ref.slot) {
		return nil
	}
	if err := w.d.PutBack(ctx, ref.box, ref.slot); err != nil {
		return err
	}
	w.mu.Lock()
	delete(w.out, ref)
	w.mu.Unlock()
	w.j.AddReturn()
	return nil
}

// typeWrong types a wrong code at a random box, within the box's budget
// (wrongCodesFree, one more per wrongCodeDecay of the run): a random one
// or the PIN of an ended booking.
func (w *workload) typeWrong(ctx context.Context, r *rand.Rand) error {
	views := w.d.Boxes()
	id := views[r.IntN(len(views))].ID
	budget := wrongCodesFree + int(w.dur/wrongCodeDecay)
	w.mu.Lock()
	if w.wrong[id] >= budget {
		w.mu.Unlock()
		return nil
	}
	w.wrong[id]++
	code := fmt.Sprintf("%06d", r.IntN(1_000_000))
	if old := w.oldPINs[id]; len(old) > 0 && r.IntN(2) == 0 {
		code = old[r.IntN(len(old))]
	}
	w.mu.Unlock()
	return w.press(ctx, id, code, 0)
}

// press types code and '#' at box id and records it with the time of '#'.
func (w *workload) press(ctx context.Context, id, code string, meant int64) error {
	m, _ := w.keypads.LoadOrStore(id, new(sync.Mutex))
	m.(*sync.Mutex).Lock()
	defer m.(*sync.Mutex).Unlock()
	began := time.Now()
	err := w.d.Press(ctx, id, code+"#")
	// Recorded even when the call failed: the keys may have reached the
	// keypad before the box died, and the oracle must judge what follows.
	w.j.AddTyped(Typed{Box: id, Code: code, Began: began, At: time.Now(), Meant: meant})
	return err
}

// waitReleased waits (releaseWait at most) for slot of box id to be
// released, watching the depot's view.
func (w *workload) waitReleased(ctx context.Context, id string, slot int) bool {
	ctx, cancel := context.WithTimeout(ctx, releaseWait)
	defer cancel()
	for {
		ch := w.d.Changed()
		for _, v := range w.d.Boxes() {
			if v.ID != id || v.State == nil {
				continue
			}
			for _, s := range v.State.Slots {
				if s.Slot == slot && s.Released {
					return true
				}
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// anyPIN is a running booking's PIN on box index i ("" if none known), for
// a kill right after a code is typed.
func (w *workload) anyPIN(id string) (string, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.vehicles {
		if a := w.active[v]; a != nil && a.box == id && a.pin != "" {
			return a.pin, a.id
		}
	}
	return "", 0
}

func sortInt64(s []int64) { slices.Sort(s) }

func sortRefs(s []slotRef) {
	slices.SortFunc(s, func(a, b slotRef) int {
		if c := strings.Compare(a.box, b.box); c != 0 {
			return c
		}
		return a.slot - b.slot
	})
}
