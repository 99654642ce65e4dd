package bookings_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// binaryRand gives bytes 0 and 1 only: PINs of digits 0 and 1, about 50
// non-trivial 6-digit values, so that concurrent workers drawing PINs and
// driver codes for one box clash often and the cloud's ErrCodeInUse and the
// redraws (driver codes drawn again and pushed to every box) are exercised.
// It is not safe for concurrent use: the bridge must lock it.
type binaryRand struct{ r *mrand.Rand }

func (b binaryRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b.r.IntN(2))
	}
	return len(p), nil
}

// fleet is a bridge on two boxes with many vehicles and drivers, its worker
// running with several workers against a fake Fleetio with latency.
type fleet struct {
	f        *fleetiotest.Server
	cloud    *cloud.Cloud
	store    *bookings.Store
	b        *bookings.Integration
	notes    *notes
	boxes    []string
	vehicles []fleetio.Vehicle
	links    map[int64]bookings.Link // by vehicle
	drivers  []fleetio.Contact
	own      map[int64]string // driver codes set by the admin (SetDriverCode)
}

const (
	fleetVehicles = 10 // 5 keys on each of 2 boxes
	fleetDrivers  = 10
)

func newFleet(t *testing.T, mode bookings.CodeMode, latency time.Duration) *fleet {
	t.Helper()
	dir := t.TempDir()
	fl := &fleet{notes: &notes{}, boxes: []string{"box-a", "box-b"}, links: map[int64]bookings.Link{}, own: map[int64]string{}}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	fl.cloud = bookings.OpenTestCloud(t, cloud.Options{Path: filepath.Join(dir, "cloud.db"), Signer: wire.Signer{KeyID: "k1", Key: priv},
		Logger: slog.New(slog.DiscardHandler)})

	fl.f = fleetiotest.New(fleetiotest.Options{APIKey: apiKey, AccountToken: account, WebhookSecret: secret, Latency: latency,
		RetryIntervals: []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}})
	t.Cleanup(func() { fl.f.Close() })
	_, err = fl.f.Start()
	require.NoError(t, err)
	for _, k := range []string{fleetio.FieldAccessInstructions, fleetio.FieldAccessLink, fleetio.FieldAccessCode} {
		fl.f.DefineCustomField(k, false)
	}

	fl.store, _ = bookings.OpenTestStore(t) // the test run's engine (pgtest.Engine)
	require.NoError(t, fl.store.SetSettings(bookings.Settings{APIKey: apiKey, AccountToken: account, WebhookSecret: secret,
		BaseURL: fl.f.APIURL(), CodeMode: mode}))

	for _, id := range fl.boxes {
		bk, err := ecdh.X25519().GenerateKey(rand.Reader)
		require.NoError(t, err)
		require.NoError(t, fl.cloud.RegisterBox(id, bk.PublicKey().Bytes()))
		require.NoError(t, fl.store.PutBox(bookings.BoxInfo{ID: id, Name: "Depot " + id}))
	}
	for i := range fleetVehicles {
		v, err := fl.f.AddVehicle(fleetio.Vehicle{Name: fmt.Sprintf("Van %d", i+1)})
		require.NoError(t, err)
		fl.vehicles = append(fl.vehicles, v)
		boxID, keyID := fl.boxes[i%2], fmt.Sprintf("key-%d", i+1)
		_, err = fl.cloud.PutKey(boxID, box.Key{ID: keyID, Name: v.Name, FobUID: fmt.Sprintf("%010X", i+1), Slot: i/2 + 1})
		require.NoError(t, err)
		l := bookings.Link{VehicleID: v.ID, BoxID: boxID, KeyID: keyID, Mode: bookings.ModeAutomatic}
		require.NoError(t, fl.store.PutLink(l))
		fl.links[v.ID] = l
	}
	for i := range fleetDrivers {
		c, err := fl.f.AddContact(fleetio.Contact{FirstName: "Driver", LastName: strconv.Itoa(i + 1),
			Email: fmt.Sprintf("driver%d@example.com", i+1)})
		require.NoError(t, err)
		fl.drivers = append(fl.drivers, c)
	}

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	fl.b, err = bookings.New(bookings.Options{
		Store: fl.store, Cloud: fl.cloud, Notifier: fl.notes, AccessBaseURL: srv.URL,
		NewClient: func(s bookings.Settings) (*fleetio.Client, error) {
			return fleetio.New(fleetio.Options{BaseURL: s.BaseURL, APIKey: s.APIKey, AccountToken: s.AccountToken,
				MaxRetries: -1, Timeout: 5 * time.Second})
		},
		MinRetry: 20 * time.Millisecond, MaxRetry: 200 * time.Millisecond,
		Workers: 8,
		Rand:    binaryRand{mrand.New(mrand.NewPCG(1, 2))},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	mux.Handle(bookings.WebhookPath, fl.b.Webhook())
	fl.f.SetWebhookURL(srv.URL + bookings.WebhookPath)
	return fl
}

// setOwn sets a driver's own code.
func (fl *fleet) setOwn(t *testing.T, contactID int64, code string) {
	t.Helper()
	require.NoError(t, fl.b.SetDriverCode(context.Background(), contactID, code))
	fl.own[contactID] = code
}

// run starts the bridge's worker; it is stopped at the test's end.
func (fl *fleet) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fl.b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// burst creates n assignments, round robin over the vehicles, five in a row
// for each driver (so that the workers take a driver's bookings at the same
// time, on both boxes), windows one after another per vehicle, with Fleetio's deliveries held back and then
// sent all at once.
func (fl *fleet) burst(t *testing.T, n int) []fleetio.VehicleAssignment {
	t.Helper()
	base := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	fl.f.PauseDeliveries()
	var out []fleetio.VehicleAssignment
	for i := range n {
		v, c := fl.vehicles[i%fleetVehicles], fl.drivers[(i/5)%fleetDrivers]
		from := base.Add(time.Duration(i/fleetVehicles) * 2 * time.Hour)
		until := from.Add(time.Hour)
		a, err := fl.f.CreateAssignment(fleetio.VehicleAssignment{VehicleID: v.ID, ContactID: c.ID, StartedAt: from, EndedAt: &until})
		require.NoError(t, err)
		out = append(out, a)
	}
	fl.f.ResumeDeliveries(fleetiotest.InOrder)
	return out
}

// settle waits until Fleetio has delivered everything (the bridge's own
// PATCHes make more) and the queue is empty.
func (fl *fleet) settle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; ; i++ {
		require.NoError(t, fl.f.Flush(ctx))
		require.Eventually(t, func() bool { return fl.store.QueueDepth() == 0 }, 30*time.Second, 5*time.Millisecond)
		n := len(fl.f.Deliveries())
		require.NoError(t, fl.f.Flush(ctx))
		if len(fl.f.Deliveries()) == n && fl.store.QueueDepth() == 0 {
			return
		}
		require.Less(t, i, 100, "deliveries never settle: a webhook loop?")
	}
}

// checkAll asserts every assignment's booking, grant, Fleetio field and
// notification, unique codes per box, one driver code per driver, and every
// delivery processed once and done.
func (fl *fleet) checkAll(t *testing.T, as []fleetio.VehicleAssignment) {
	t.Helper()
	grants := map[string]map[string]box.Grant{}
	for _, id := range fl.boxes {
		_, gs, err := fl.cloud.Records(id)
		require.NoError(t, err)
		grants[id] = map[string]box.Grant{}
		for _, g := range gs {
			grants[id][g.ID] = g
		}
	}
	// The code the driver was told, per assignment (the last created or
	// updated notification carrying one).
	told := map[int64]string{}
	for _, n := range fl.notes.all() {
		if pin := n.data["pin"]; pin != "" {
			id, err := strconv.ParseInt(n.data["assignment"], 10, 64)
			if err != nil {
				// Not every template carries the assignment: find it by the
				// link, which is the booking's.
				id = fl.byLink(t, n.data[notify.DataAccessLink])
			}
			told[id] = pin
		}
	}
	owner := map[string]map[string]string{} // box -> code -> who holds it
	driverCode := map[int64]string{}
	for _, a := range as {
		bk, ok, err := fl.store.Booking(a.ID)
		require.NoError(t, err)
		require.True(t, ok, "booking of %d", a.ID)
		l := fl.links[a.VehicleID]
		require.Equal(t, bookings.BookingActive, bk.State, "assignment %d", a.ID)
		require.False(t, bk.PendingGrant || bk.PendingWriteBack || bk.PendingNotify != "", "assignment %d left pending: %+v", a.ID, bk)
		require.Equal(t, l.BoxID, bk.BoxID)
		require.Equal(t, l.KeyID, bk.KeyID)
		require.Equal(t, a.ContactID, bk.ContactID)
		require.True(t, a.StartedAt.Equal(bk.From) && a.EndedAt.Equal(bk.Until), "window of %d", a.ID)

		g, ok := grants[bk.BoxID][bookings.GrantID(a.ID)]
		require.True(t, ok, "grant of %d on %s", a.ID, bk.BoxID)
		require.False(t, g.Revoked)
		require.Equal(t, []string{l.KeyID}, g.KeyIDs)
		require.Equal(t, bookings.DriverRef(a.ContactID), g.DriverRef)
		require.True(t, g.From.Equal(bk.From) && g.Until.Equal(bk.Until))

		fa, ok := fl.f.Assignment(a.ID)
		require.True(t, ok)
		code := field(fa, fleetio.FieldAccessCode)
		require.Len(t, code, bookings.PINLength, "assignment %d: Fleetio's code field", a.ID)
		require.Equal(t, bk.AccessLink, field(fa, fleetio.FieldAccessLink))
		if bk.DriverCode && fl.own[a.ContactID] != "" {
			// The driver chose it: they know it, Fleetio shows it.
			require.Equal(t, fl.own[a.ContactID], code, "assignment %d: the driver's own code", a.ID)
		} else {
			require.Equal(t, code, told[a.ID], "assignment %d: the driver was told the code Fleetio shows", a.ID)
		}

		who := "assignment " + strconv.FormatInt(a.ID, 10)
		if bk.DriverCode {
			who = "driver " + strconv.FormatInt(a.ContactID, 10)
			if c, seen := driverCode[a.ContactID]; seen {
				require.Equal(t, c, code, "driver %d has one code on every booking and box", a.ContactID)
			}
			driverCode[a.ContactID] = code
			dg, ok := grants[bk.BoxID][bookings.DriverGrantID(a.ContactID)]
			require.True(t, ok, "driver %d's code grant on %s", a.ContactID, bk.BoxID)
			require.False(t, dg.Revoked)
			require.Equal(t, box.KindDriverCode, dg.Kind)
		}
		if owner[bk.BoxID] == nil {
			owner[bk.BoxID] = map[string]string{}
		}
		if o, ok := owner[bk.BoxID][code]; ok {
			require.Equal(t, o, who, "code %s on %s held by two", code, bk.BoxID)
		}
		owner[bk.BoxID][code] = who
	}
	// The bridge's record of drivers' codes: each driver's grant on exactly
	// the boxes where they have bookings using it.
	dcs, err := fl.b.DriverCodes()
	require.NoError(t, err)
	for _, dc := range dcs {
		if _, uses := driverCode[dc.ContactID]; !uses {
			continue
		}
		want := map[string]bool{}
		for _, a := range as {
			if bk, _, _ := fl.store.Booking(a.ID); bk.ContactID == dc.ContactID && bk.DriverCode {
				want[bk.BoxID] = true
			}
		}
		got := map[string]bool{}
		for _, b := range dc.Boxes {
			got[b] = true
		}
		require.Equal(t, want, got, "boxes of driver %d's code", dc.ContactID)
	}
	// No delivery lost, none processed twice: every one Fleetio delivered
	// is done, and each created assignment's grant was put once unless its
	// PIN was drawn again.
	for _, d := range fl.f.Deliveries() {
		if !d.Delivered {
			continue
		}
		sd, err := fl.store.Delivery(d.ID)
		require.NoError(t, err)
		require.Equal(t, bookings.DeliveryDone, sd.State, "delivery %d (%s): %s", d.ID, d.Event, sd.LastError)
		require.Equal(t, 1, sd.Attempts, "delivery %d processed once", d.ID)
	}
	require.Zero(t, fl.store.QueueDepth())
}

func (fl *fleet) byLink(t *testing.T, link string) int64 {
	t.Helper()
	bks, err := fl.store.Bookings()
	require.NoError(t, err)
	for _, bk := range bks {
		if bk.AccessLink == link {
			return bk.AssignmentID
		}
	}
	t.Fatalf("no booking with link %q", link)
	return 0
}

// TestConcurrentBurst: 50 assignments across 10 drivers on 2 boxes arrive at
// once and are processed by 8 workers against a Fleetio with latency, with a
// random source that makes PINs clash: every booking is right, codes are
// unique per box, each driver has one code, no delivery is lost.
func TestConcurrentBurst(t *testing.T) {
	for _, mode := range []bookings.CodeMode{bookings.CodePerAssignment, bookings.CodePerDriver} {
		t.Run(string(mode), func(t *testing.T) {
			fl := newFleet(t, mode, 2*time.Millisecond)
			fl.run(t)
			as := fl.burst(t, 50)
			fl.settle(t)
			fl.checkAll(t, as)
			st := fl.b.Stats()
			require.Positive(t, st.EchoesSkipped, "the echoes of our PATCHes are not read back")
			require.Zero(t, st.FleetioErrors)
			if mode == bookings.CodePerAssignment {
				require.EqualValues(t, len(as), st.EchoesSkipped, "each assignment's one echo is done without a read-back")
			}
		})
	}
}

// TestConcurrentDriverOwn: driver_own with codes set for half the drivers:
// their bookings use their code, the others get PINs, all in one burst.
func TestConcurrentDriverOwn(t *testing.T) {
	fl := newFleet(t, bookings.CodeDriverOwn, 2*time.Millisecond)
	own := map[int64]string{}
	for i, c := range fl.drivers[:fleetDrivers/2] {
		code := fmt.Sprintf("48%d91%d", i, 7-i)
		fl.setOwn(t, c.ID, code)
		own[c.ID] = code
	}
	fl.run(t)
	as := fl.burst(t, 50)
	fl.settle(t)
	fl.checkAll(t, as)
	for _, a := range as {
		bk, _, err := fl.store.Booking(a.ID)
		require.NoError(t, err)
		code, has := own[a.ContactID]
		require.Equal(t, has, bk.DriverCode, "assignment %d", a.ID)
		if has {
			fa, _ := fl.f.Assignment(a.ID)
			require.Equal(t, code, field(fa, fleetio.FieldAccessCode))
		}
	}
}

// TestExclusiveDuringBurst: operations that act on many bookings wait for
// the workers in flight and keep new ones out while they run.
func TestExclusiveDuringBurst(t *testing.T) {
	t.Run("set driver code", func(t *testing.T) {
		fl := newFleet(t, bookings.CodeDriverOwn, 5*time.Millisecond)
		ada := fl.drivers[0]
		fl.setOwn(t, ada.ID, "480917")
		fl.run(t)
		as := fl.burst(t, 50)
		// While the workers are at it: a new code for the driver.
		require.Eventually(t, func() bool { return fl.b.Stats().GrantsPushed >= 5 }, 20*time.Second, time.Millisecond)
		fl.setOwn(t, ada.ID, "615284")
		fl.settle(t)
		fl.checkAll(t, as)
		n := 0
		for _, a := range as {
			if a.ContactID != ada.ID {
				continue
			}
			n++
			fa, _ := fl.f.Assignment(a.ID)
			require.Equal(t, "615284", field(fa, fleetio.FieldAccessCode), "assignment %d shows the driver's new code", a.ID)
		}
		require.Positive(t, n)
	})
	t.Run("disconnect", func(t *testing.T) {
		fl := newFleet(t, bookings.CodePerAssignment, 5*time.Millisecond)
		fl.run(t)
		fl.burst(t, 50)
		require.Eventually(t, func() bool { return fl.b.Stats().GrantsPushed >= 5 }, 20*time.Second, time.Millisecond)
		rep, err := fl.b.Disconnect(context.Background())
		require.NoError(t, err)
		pushed := fl.b.Stats().GrantsPushed
		require.Positive(t, len(rep.Revoked))
		require.Zero(t, fl.store.QueueDepth(), "the queue is dropped")
		// Deliveries still coming are refused (503) and Fleetio retries
		// them until it gives up; no worker acts after Disconnect returned.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, fl.f.Flush(ctx))
		require.Equal(t, pushed, fl.b.Stats().GrantsPushed, "a grant was put after Disconnect returned")
		bks, err := fl.store.Bookings()
		require.NoError(t, err)
		for _, bk := range bks {
			require.NotEqual(t, bookings.BookingActive, bk.State, "assignment %d: made by a worker Disconnect did not wait for", bk.AssignmentID)
		}
		for _, id := range fl.boxes {
			_, gs, err := fl.cloud.Records(id)
			require.NoError(t, err)
			for _, g := range gs {
				require.True(t, g.Revoked, "grant %s on %s", g.ID, id)
			}
		}
	})
}
