package depot

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/sim/netcut"
	"github.com/smartbox-oss/smartbox/sync/bridge"
)

// What a person does at a box's front, and what the simulator does to it.
// Every call names the box by id; an unknown one is ErrUnknownBox.

// Boxes is every box's view, box 1 first.
func (d *Depot) Boxes() []BoxView {
	out := make([]BoxView, 0, len(d.boxes))
	for _, b := range d.boxes {
		out = append(out, b.view())
	}
	return out
}

// Box is one box by id.
func (d *Depot) Box(id string) (*Box, error) {
	b, ok := d.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownBox, id)
	}
	return b, nil
}

// Events are the box's last events (at most MaxEventsKept), oldest first;
// nil for an unknown box.
func (d *Depot) Events(id string) []box.Event {
	b, ok := d.byID[id]
	if !ok {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

// live is the box by id, if its process runs.
func (d *Depot) live(id string) (*Box, error) {
	b, err := d.Box(id)
	if err != nil {
		return nil, err
	}
	return b, b.running()
}

// Press types keys on the box's keypad ('*' clears, '#' submits).
func (d *Depot) Press(ctx context.Context, id, keys string) error {
	b, err := d.live(id)
	if err != nil {
		return err
	}
	return b.client.Press(ctx, keys, 0)
}

// Take takes the key out of a released slot.
func (d *Depot) Take(ctx context.Context, id string, slot int) error {
	b, err := d.live(id)
	if err != nil {
		return err
	}
	return b.client.Take(ctx, slot)
}

// PutBack seats a key in a released slot.
func (d *Depot) PutBack(ctx context.Context, id string, slot int) error {
	b, err := d.live(id)
	if err != nil {
		return err
	}
	return b.client.PutBack(ctx, slot)
}

// Fob holds a fob (its UID) at the box's reader for a moment: a key's own
// fob, a cloned one (the same UID while the key is in its slot) or one the
// box does not know.
func (d *Depot) Fob(ctx context.Context, id, uid string) error {
	b, err := d.live(id)
	if err != nil {
		return err
	}
	return b.client.Reader(ctx, boxsocket.ReaderRequest{Fob: uid})
}

// ReaderRaw writes bytes on the reader's serial line as they are.
func (d *Depot) ReaderRaw(ctx context.Context, id string, raw []byte) error {
	b, err := d.live(id)
	if err != nil {
		return err
	}
	return b.client.Reader(ctx, boxsocket.ReaderRequest{Raw: raw})
}

// SetSlotFault jams or frees a slot's latch, cuts or mends its key
// sensor. The fault is physical: it stays across a power cut.
func (d *Depot) SetSlotFault(ctx context.Context, id string, slot int, f boxsocket.SlotFault) error {
	b, err := d.live(id)
	if err != nil {
		return err
	}
	if err := b.client.SetFault(ctx, slot, f); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.faults[slot]
	if f.Jammed != nil {
		cur.Jammed = f.Jammed
	}
	if f.SensorDead != nil {
		cur.SensorDead = f.SensorDead
	}
	b.faults[slot] = cur
	return nil
}

// SetClock sets the board's clock (At) or puts it right (Reset). The
// offset from real time stays across a power cut, as a board without an
// RTC battery keeps a wrong time. A jump back below the box's clock floor
// stops the daemon (it cannot trust its clock any more): the box then
// shows as exited, and powers on with the skewed clock, untrusted.
func (d *Depot) SetClock(ctx context.Context, id string, r boxsocket.ClockRequest) error {
	b, err := d.live(id)
	if err != nil {
		return err
	}
	if r.Reset == !r.At.IsZero() {
		return fmt.Errorf("%w: the clock wants exactly one of at and reset", ErrInvalid)
	}
	if err := b.client.SetClock(ctx, r); err != nil {
		return err
	}
	b.mu.Lock()
	if r.Reset {
		b.clockOffset = 0
	} else {
		b.clockOffset = time.Until(r.At)
	}
	b.mu.Unlock()
	d.changed.Notify()
	return nil
}

// SetNetwork cuts the box's network or restores it (cut 0). netcut.Reset
// resets every connection to the broker and refuses new ones; Blackhole is
// a pulled cable: nothing gets through, and neither end is told until its
// keepalive gives up.
func (d *Depot) SetNetwork(id string, cut netcut.Mode) error {
	b, err := d.Box(id)
	if err != nil {
		return err
	}
	if cut != 0 && cut != netcut.Reset && cut != netcut.Blackhole {
		return fmt.Errorf("%w: network cut mode %d: want reset or blackhole", ErrInvalid, cut)
	}
	if cut != 0 {
		if err := b.proxy.Cut(cut); err != nil {
			return fmt.Errorf("cutting box %s's network: %w", id, err)
		}
	} else {
		b.proxy.Restore()
	}
	d.changed.Notify()
	return nil
}

// SetPower pulls the box's power (SIGKILL: no relock by the daemon, no
// goodbye) or restores it (the process starts again on the same store, and
// relocks every slot first).
func (d *Depot) SetPower(ctx context.Context, id string, on bool) error {
	b, err := d.Box(id)
	if err != nil {
		return err
	}
	if !on {
		return b.powerOff()
	}
	return b.powerOn(ctx)
}

// RestartBroker stops the bridge (with its embedded broker) and starts it
// again on the same ports and data (with Options.BridgeProcess, its process:
// SIGTERM, an orderly stop): every box loses its connection and
// comes back, and Fleetio's deliveries during the gap are retried. The
// depot's lock is not held meanwhile: the page goes on answering (the
// bridge's parts of it fail, and say so) while BrokerUp is false. The start
// is not the caller's to cancel (a page reloaded mid-restart must not leave
// the bridge down; bridgeReadyTimeout bounds it). If it fails, the bridge
// stays down, BrokerError says why, and RestartBroker may be tried again.
func (d *Depot) RestartBroker(ctx context.Context) error {
	d.restartMu.Lock()
	defer d.restartMu.Unlock()
	if d.ctx.Err() != nil {
		return errors.New("the simulator is stopping")
	}
	if d.bproc != nil {
		return d.restartBridgeProc(ctx, false)
	}
	d.bmu.RLock()
	old := d.svc
	d.bmu.RUnlock()
	d.bridgeDown()
	if err := old.Close(); err != nil {
		d.log.Warn("closing the bridge for a restart", "err", err)
	}
	svc, err := d.startService(context.WithoutCancel(ctx))
	if err != nil {
		return d.bridgeStaysDown(fmt.Errorf("the bridge did not come back after the restart (it stays down; restart the broker again): %w", err))
	}
	d.bridgeBack(func() { d.svc, d.admin = svc, svc.AdminClient() })
	return nil
}

// bridgeDown, bridgeStaysDown and bridgeBack are a restart's three states
// as the page sees them (BrokerUp, BrokerError), whichever way the bridge
// runs: going down, failed to come back (err is kept and returned), and up
// again (set, if not nil, swaps the bridge's fields under the same lock).
func (d *Depot) bridgeDown() {
	d.bmu.Lock()
	d.brokerUp, d.brokerErr = false, ""
	d.bmu.Unlock()
	d.changed.Notify()
}

func (d *Depot) bridgeStaysDown(err error) error {
	d.bmu.Lock()
	d.brokerErr = err.Error()
	d.bmu.Unlock()
	d.changed.Notify()
	return err
}

func (d *Depot) bridgeBack(set func()) {
	d.bmu.Lock()
	if set != nil {
		set()
	}
	d.brokerUp = true
	d.bmu.Unlock()
	d.changed.Notify()
}

// BrokerError is why the last broker restart failed ("" if it did not):
// the bridge is down until the next RestartBroker.
func (d *Depot) BrokerError() string {
	d.bmu.RLock()
	defer d.bmu.RUnlock()
	return d.brokerErr
}

// BrokerUp reports whether the bridge and its broker are running.
func (d *Depot) BrokerUp() bool {
	d.bmu.RLock()
	defer d.bmu.RUnlock()
	return d.brokerUp
}

// Inbox is every email and SMS the bridge sent, oldest first.
func (d *Depot) Inbox() []Message {
	var out []Message
	dec := new(mime.WordDecoder)
	for _, m := range d.mail.Mails() {
		subj, err := dec.DecodeHeader(m.Subject)
		if err != nil {
			subj = m.Subject
		}
		out = append(out, Message{At: m.At, Channel: "email", To: strings.Join(m.To, ", "), Subject: subj, Body: m.Body})
	}
	for _, m := range d.sms.Messages() {
		out = append(out, Message{At: m.DateCreated, Channel: "sms", To: m.To, Body: m.Body})
	}
	slices.SortStableFunc(out, func(a, b Message) int { return a.At.Compare(b.At) })
	return out
}

// Vehicles are Fleetio's vehicles with their links, as the bridge sees them.
func (d *Depot) Vehicles(ctx context.Context) ([]bridge.VehicleLink, error) {
	var out []bridge.VehicleLink
	return out, d.Admin().Do(ctx, http.MethodGet, "/v1/fleetio/vehicles", nil, &out)
}

// Reservations are the pending Prompt reservations.
func (d *Depot) Reservations(ctx context.Context) ([]bridge.Reservation, error) {
	var out []bridge.Reservation
	return out, d.Admin().Do(ctx, http.MethodGet, "/v1/fleetio/reservations", nil, &out)
}

// Book is the fleet manager's "create booking" for a Prompt reservation.
func (d *Depot) Book(ctx context.Context, assignmentID int64, r bridge.BookRequest) error {
	return d.Admin().Do(ctx, http.MethodPost, "/v1/fleetio/reservations/"+strconv.FormatInt(assignmentID, 10)+"/book", r, nil)
}

// Bookings are the bridge's bookings and grants with their box events.
func (d *Depot) Bookings(ctx context.Context) ([]bridge.BookingRow, error) {
	var out []bridge.BookingRow
	return out, d.Admin().Do(ctx, http.MethodGet, "/v1/bookings", nil, &out)
}
