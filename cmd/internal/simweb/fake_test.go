package simweb

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/selftest"
	"github.com/smartbox-oss/smartbox/sim/netcut"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// fakeDepot is a Depot of two boxes that records every action as a line
// ("press b1 123#") and fails the ones named in fail.
type fakeDepot struct {
	fleet *fleetiotest.Server

	mu         sync.Mutex
	changed    chan struct{}
	boxes      []depot.BoxView
	events     map[string][]box.Event
	inbox      []depot.Message
	calls      []string
	fail       map[string]error // by the call's first word
	vehicles   []bridge.VehicleLink
	res        []bridge.Reservation
	rows       []bridge.BookingRow
	booked     []bridge.BookRequest
	presses    chan string // Presses, for the browser test (while it has room)
	brokerDown bool
	brokerErr  string
}

var _ Depot = (*fakeDepot)(nil)

// seed ids of the fake Fleetio account
type seedIDs struct{ van, car, ada, bob int64 }

func newFakeDepot(t testing.TB) (*fakeDepot, seedIDs) {
	t.Helper()
	// The fake's clock is the page's (fixedNow): "current" and "future"
	// of an assignment are then the same on the page's day as at any date
	// the test runs on.
	f := fleetiotest.New(fleetiotest.Options{Clock: fixedClock{}})
	t.Cleanup(func() { _ = f.Close() })
	for _, k := range []string{fleetio.FieldAccessCode, fleetio.FieldAccessLink, fleetio.FieldAccessInstructions} {
		f.DefineCustomField(k, false)
	}
	van, err := f.AddVehicle(fleetio.Vehicle{Name: "Van 7", LicensePlate: "SB-007"})
	require.NoError(t, err)
	car, err := f.AddVehicle(fleetio.Vehicle{Name: "Car 2"})
	require.NoError(t, err)
	ada, err := f.AddContact(fleetio.Contact{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
	require.NoError(t, err)
	bob, err := f.AddContact(fleetio.Contact{FirstName: "Bob", LastName: "<script>alert(1)</script>", Email: "bob@example.com"})
	require.NoError(t, err)

	slots := make([]boxsocket.Slot, 12)
	keys := []box.Key{}
	for i := range slots {
		n := i + 1
		slots[i] = boxsocket.Slot{Slot: n, KeyID: fmt.Sprintf("k%d", n), KeyName: fmt.Sprintf("Key %d", n), KeyPresent: true, KeyInSlot: true}
		keys = append(keys, box.Key{ID: fmt.Sprintf("k%d", n), Name: fmt.Sprintf("Key %d", n), FobUID: fmt.Sprintf("01000734%02X", n), Slot: n})
	}
	slots[2].Released, slots[2].LED, slots[2].WaitingFor = true, true, box.PurposeTake
	slots[4].Jammed = true
	now := time.Now()
	st := &boxsocket.Watch{Status: boxsocket.Status{BoxID: "b1", Cloud: "connected", Revision: 7, Outbox: 2, Clock: now, ClockTrusted: true}, Slots: slots, Typed: 3}
	d := &fakeDepot{
		fleet:   f,
		changed: make(chan struct{}),
		boxes: []depot.BoxView{
			{ID: "b1", Name: "Depot North", Slots: 12, Power: depot.PowerOn, Process: depot.ProcessRunning, PID: 42, Keys: keys, State: st},
			{ID: "b2", Name: "Depot South", Slots: 12, Power: depot.PowerOn, Process: depot.ProcessExited, Exit: "exit status 1: boom"},
		},
		events: map[string][]box.Event{
			"b1": {
				{Seq: 1, Time: now, Type: box.EventBoxStarted},
				{Seq: 2, Time: now, Type: box.EventSyncRefused, Detail: "bad signature"},
				{Seq: 3, Time: now, Type: box.EventSlotReleased, Slot: 3, KeyID: "k3", GrantID: "g1", Purpose: box.PurposeTake},
			},
		},
		inbox: []depot.Message{{At: now, Channel: "email", To: "ada@example.com", Subject: "Your key",
			Body: "Your PIN is 482913. Open https://bridge.example/a/tok <b>not bold</b>"}},
		vehicles: []bridge.VehicleLink{{Vehicle: fleetio.Vehicle{ID: van.ID}, Link: &bridge.Link{VehicleID: van.ID, BoxID: "b1", KeyID: "k3", Method: bookings.LinkMode("automatic")}}},
		res:      []bridge.Reservation{{Assignment: bridge.Assignment{AssignmentID: 99, VehicleID: car.ID, ContactID: ada.ID, ContactName: "Ada Lovelace", BoxID: "b1", KeyID: "k4", From: now}}},
		rows: []bridge.BookingRow{{BoxID: "b1", GrantID: "g1", Kind: box.KindBooking, From: now, Until: now.Add(time.Hour), Fleetio: true,
			Events: []bridge.BookingEvent{{Type: box.EventKeyTaken, Time: now}}}},
		fail:    map[string]error{},
		presses: make(chan string, 100),
	}
	return d, seedIDs{van: van.ID, car: car.ID, ada: ada.ID, bob: bob.ID}
}

// change wakes the streams, as the depot does at any change.
func (d *fakeDepot) change(edit func(d *fakeDepot)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if edit != nil {
		edit(d)
	}
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *fakeDepot) record(call string, args ...any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	line := strings.TrimSpace(call + " " + strings.TrimSpace(fmt.Sprintln(args...)))
	d.calls = append(d.calls, line)
	if err := d.fail[call]; err != nil {
		return err
	}
	return nil
}

// failing is the error set for a read (reads are not recorded).
func (d *fakeDepot) failing(call string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fail[call]
}

func (d *fakeDepot) boxErr(id string) error {
	for _, b := range d.Boxes() {
		if b.ID == id {
			return nil
		}
	}
	return fmt.Errorf("box %q: %w", id, depot.ErrUnknownBox)
}

func (d *fakeDepot) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

func (d *fakeDepot) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

func (d *fakeDepot) Boxes() []depot.BoxView {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]depot.BoxView(nil), d.boxes...)
}

func (d *fakeDepot) Events(id string) []box.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]box.Event(nil), d.events[id]...)
}

func (d *fakeDepot) act(call, id string, args ...any) error {
	if err := d.boxErr(id); err != nil {
		return err
	}
	return d.record(call, append([]any{id}, args...)...)
}

func (d *fakeDepot) Press(_ context.Context, id, keys string) error {
	err := d.act("press", id, keys)
	if err == nil {
		select {
		case d.presses <- keys:
		default: // nobody reads them (the handler tests, the fuzz target)
		}
	}
	return err
}
func (d *fakeDepot) Take(_ context.Context, id string, slot int) error {
	return d.act("take", id, slot)
}
func (d *fakeDepot) PutBack(_ context.Context, id string, slot int) error {
	return d.act("put-back", id, slot)
}
func (d *fakeDepot) Fob(_ context.Context, id, uid string) error { return d.act("fob", id, uid) }
func (d *fakeDepot) ReaderRaw(_ context.Context, id string, raw []byte) error {
	return d.act("raw", id, fmt.Sprintf("%q", raw))
}
func (d *fakeDepot) SetSlotFault(_ context.Context, id string, slot int, f boxsocket.SlotFault) error {
	s := func(b *bool) string {
		if b == nil {
			return "-"
		}
		return fmt.Sprint(*b)
	}
	return d.act("fault", id, slot, "jammed="+s(f.Jammed), "sensor_dead="+s(f.SensorDead))
}
func (d *fakeDepot) SetClock(_ context.Context, id string, r boxsocket.ClockRequest) error {
	return d.act("clock", id, r.At.UTC().Format(time.RFC3339), r.Reset)
}
func (d *fakeDepot) SetNetwork(id string, cut netcut.Mode) error {
	if cut == 0 {
		return d.act("network", id, false)
	}
	return d.act("network", id, true, cut.String())
}
func (d *fakeDepot) SetPower(_ context.Context, id string, on bool) error {
	return d.act("power", id, on)
}
func (d *fakeDepot) ForgeGrant(_ context.Context, id string) error { return d.act("forge", id) }
func (d *fakeDepot) Selftest(_ context.Context, id string) (*depot.SelftestRun, error) {
	if err := d.act("selftest", id); err != nil {
		return nil, err
	}
	return &depot.SelftestRun{ExitCode: 1, Said: []string{"Press key 1 on the keypad."}, Report: selftest.Report{Via: "socket",
		Rows: []selftest.Row{{Group: selftest.GroupLocks, Name: "slot 3 lock", Slot: 3, Result: selftest.Fail, Detail: "jammed latch"}}}}, nil
}
func (d *fakeDepot) RestartBroker(context.Context) error { return d.record("broker") }
func (d *fakeDepot) BrokerUp() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.brokerDown
}
func (d *fakeDepot) BrokerError() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.brokerErr
}
func (d *fakeDepot) Inbox() []depot.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]depot.Message(nil), d.inbox...)
}
func (d *fakeDepot) Fleetio() *fleetiotest.Server { return d.fleet }
func (d *fakeDepot) Vehicles(context.Context) ([]bridge.VehicleLink, error) {
	if err := d.failing("vehicles"); err != nil {
		return nil, err
	}
	return d.vehicles, nil
}
func (d *fakeDepot) Reservations(context.Context) ([]bridge.Reservation, error) {
	if err := d.failing("reservations"); err != nil {
		return nil, err
	}
	return d.res, nil
}
func (d *fakeDepot) Book(_ context.Context, id int64, r bridge.BookRequest) error {
	if err := d.record("book", id, r.ContactMethod); err != nil {
		return err
	}
	d.mu.Lock()
	d.booked = append(d.booked, r)
	d.mu.Unlock()
	return nil
}
func (d *fakeDepot) Bookings(context.Context) ([]bridge.BookingRow, error) {
	if err := d.failing("bookings"); err != nil {
		return nil, err
	}
	return d.rows, nil
}

// fixedClock is fixedNow, as a fleetiotest.Clock.
type fixedClock struct{}

func (fixedClock) Now() time.Time { return fixedNow }
