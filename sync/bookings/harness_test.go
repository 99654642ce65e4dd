package bookings_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
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

// The package's test rig: an Integration on a real cloud store and the fake
// Fleetio, its webhook and access page on a loopback HTTP server, its worker
// running, its clock one the test moves forward, box events ingested by the
// cloud as a box's batch would be and handed to HandleEvents (registered
// with cloud.OnEvents, as the service does).

const (
	apiKey   = "key-123"
	account  = "acct-456"
	secret   = "whsec-789"
	boxID    = "box-a"
	keyID    = "van-7-key"   // the van's key, slot 3, linked (Automatic)
	truckKey = "truck-2-key" // the truck's key, slot 4: in the box with envOpts.truck
)

// clock is real time plus an offset the test advances: the fake Fleetio and
// the HTTP servers run on real time, the integration on this, so a test
// jumps to a booking's end without waiting for it.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// note is one message as the integration handed it to the notifier, its
// data as text, and the Fleetio contact its recipient is (0: the admin).
type note struct {
	to        notify.Recipient
	method    notify.Method
	kind      notify.Kind
	data      map[string]string
	contactID int64
	msg       notify.Message // as handed over
}

// notes records messages, as a notifier would send them.
type notes struct {
	mu       gosync.Mutex
	got      []note
	fail     int              // fail this many calls
	contacts map[string]int64 // email -> Fleetio contact id
}

var _ notify.Notifier = (*notes)(nil)

func (n *notes) Notify(_ context.Context, m notify.Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail > 0 {
		n.fail--
		return io.ErrUnexpectedEOF // a mail relay hanging up
	}
	data := make(map[string]string, len(m.Data))
	for k, v := range m.Data {
		data[k] = fmt.Sprint(v)
	}
	n.got = append(n.got, note{to: m.To, method: m.Method, kind: m.Kind, data: data, contactID: n.contacts[m.To.Email], msg: m})
	return nil
}

// failNext makes the next k messages fail.
func (n *notes) failNext(k int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fail = k
}

func (n *notes) all() []note {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]note(nil), n.got...)
}

func (n *notes) of(kind notify.Kind) []note {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []note
	for _, x := range n.got {
		if x.kind == kind {
			out = append(out, x)
		}
	}
	return out
}

// env is the rig: see the comment at the top of this file.
type env struct {
	f      *fleetiotest.Server
	cloud  *cloud.Cloud
	store  *bookings.Store
	b      *bookings.Integration
	srv    *httptest.Server
	url    string // the integration's webhook URL
	clock  *clock
	notes  *notes
	van    fleetio.Vehicle
	truck  fleetio.Vehicle
	ada    fleetio.Contact
	bob    fleetio.Contact
	seq    uint64 // the box's last event seq
	rt     countingTransport
	cancel context.CancelFunc
	done   chan struct{}
}

// envOpts vary the rig.
type envOpts struct {
	noHook bool          // do not register HandleEvents with the cloud
	grace  time.Duration // Options.OverdueGrace
	truck  bool          // the truck's key in the box (truckKey, slot 4), the truck linked to it
	// zone and adminLink are Options.Zone and Options.AdminLink.
	zone      *time.Location
	adminLink func(assignmentID string) string
	latency   time.Duration // fleetiotest.Options.Latency
}

// countingTransport counts the integration's requests to Fleetio, so that a
// test can make the fake fail exactly the k-th one from now (FailNext counts
// from the moment it is called).
type countingTransport struct {
	mu     gosync.Mutex
	n      int
	failAt int
	before func()
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n++
	if c.failAt > 0 && c.n == c.failAt && c.before != nil {
		c.before()
	}
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// failRequest makes the k-th request the integration sends from now on get
// status.
func (e *env) failRequest(k, status int) {
	e.rt.mu.Lock()
	defer e.rt.mu.Unlock()
	e.rt.n, e.rt.failAt = 0, k
	e.rt.before = func() { e.f.FailNext(1, status) }
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{clock: &clock{}, notes: &notes{}}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	e.cloud = bookings.OpenTestCloud(t, cloud.Options{Path: filepath.Join(dir, "cloud.db"), Signer: wire.Signer{KeyID: "k1", Key: priv},
		EventRate: cloud.Rate{PerSecond: 1e6, Burst: 1 << 20}}) // the fuzz target sends batches fast
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, e.cloud.RegisterBox(boxID, boxKey.PublicKey().Bytes()))
	_, err = e.cloud.PutKey(boxID, box.Key{ID: keyID, Name: "Van 7", FobUID: "01000734E0", Slot: 3})
	require.NoError(t, err)
	if o.truck {
		_, err = e.cloud.PutKey(boxID, box.Key{ID: truckKey, Name: "Truck 2", FobUID: "0100073500", Slot: 4})
		require.NoError(t, err)
	}

	e.f = fleetiotest.New(fleetiotest.Options{APIKey: apiKey, AccountToken: account, WebhookSecret: secret, Latency: o.latency,
		RetryIntervals: []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}})
	t.Cleanup(func() { e.f.Close() })
	_, err = e.f.Start()
	require.NoError(t, err)
	for _, k := range []string{fleetio.FieldAccessInstructions, fleetio.FieldAccessLink, fleetio.FieldAccessCode} {
		e.f.DefineCustomField(k, false)
	}
	e.van, err = e.f.AddVehicle(fleetio.Vehicle{Name: "Van 7", LicensePlate: "SB-007"})
	require.NoError(t, err)
	e.truck, err = e.f.AddVehicle(fleetio.Vehicle{Name: "Truck 2"})
	require.NoError(t, err)
	e.ada, err = e.f.AddContact(fleetio.Contact{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", MobilePhoneNumber: "+15550100"})
	require.NoError(t, err)
	e.bob, err = e.f.AddContact(fleetio.Contact{FirstName: "Bob", LastName: "Smith", Email: "bob@example.com"})
	require.NoError(t, err)
	e.notes.contacts = map[string]int64{e.ada.Email: e.ada.ID, e.bob.Email: e.bob.ID}

	// The test run's engine (pgtest.Engine), as the cloud's above.
	e.store, _ = bookings.OpenTestStore(t)
	require.NoError(t, e.store.SetSettings(bookings.Settings{APIKey: apiKey, AccountToken: account, WebhookSecret: secret, BaseURL: e.f.APIURL()}))
	require.NoError(t, e.store.PutBox(bookings.BoxInfo{ID: boxID, Name: "Depot North", Location: "12 Dock Road, bay 4"}))
	require.NoError(t, e.store.PutLink(bookings.Link{VehicleID: e.van.ID, BoxID: boxID, KeyID: keyID, Mode: bookings.ModeAutomatic}))
	if o.truck {
		require.NoError(t, e.store.PutLink(bookings.Link{VehicleID: e.truck.ID, BoxID: boxID, KeyID: truckKey, Mode: bookings.ModeAutomatic}))
	}

	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.b, err = bookings.New(bookings.Options{
		Store: e.store, Cloud: e.cloud, Notifier: e.notes,
		Admin:         notify.Recipient{Name: "Fleet admin", Email: "admin@example.com"},
		AccessBaseURL: e.srv.URL,
		NewClient: func(s bookings.Settings) (*fleetio.Client, error) {
			// No retries inside the client: the queue retries, which is
			// what these tests check, and a 429 or 500 reaches the caller
			// at once, which is what the error tests look at.
			return fleetio.New(fleetio.Options{BaseURL: s.BaseURL, APIKey: s.APIKey, AccountToken: s.AccountToken,
				MaxRetries: -1, Timeout: 5 * time.Second, HTTPClient: &http.Client{Transport: &e.rt}})
		},
		MinRetry: 20 * time.Millisecond, MaxRetry: 200 * time.Millisecond,
		OverdueGrace: o.grace,
		Zone:         o.zone,
		AdminLink:    o.adminLink,
		Now:          e.clock.Now,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	if !o.noHook {
		e.cloud.OnEvents(e.b.HandleEvents)
	}
	mux.Handle(bookings.WebhookPath, e.b.Webhook())
	mux.Handle(bookings.AccessPath, e.b.Access())
	e.url = e.srv.URL + bookings.WebhookPath
	e.f.SetWebhookURL(e.url)

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() { defer close(e.done); e.b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-e.done
	})
	return e
}

// webhooks turns Fleetio's deliveries on or off (off: recorded, never sent,
// as when Fleetio gave up on or disabled the webhook).
func (e *env) webhooks(on bool) {
	if on {
		e.f.SetWebhookURL(e.url)
	} else {
		e.f.SetWebhookURL("")
	}
}

// settle waits until Fleetio has delivered everything and the queue is
// empty (the integration's own PATCHes make more deliveries, hence the
// loop).
func (e *env) settle(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; ; i++ {
		require.NoError(t, e.f.Flush(ctx))
		require.Eventually(t, func() bool { return e.store.QueueDepth() == 0 }, 10*time.Second, 5*time.Millisecond)
		n := len(e.f.Deliveries())
		require.NoError(t, e.f.Flush(ctx))
		if len(e.f.Deliveries()) == n && e.store.QueueDepth() == 0 {
			return
		}
		require.Less(t, i, 50, "deliveries never settle: a webhook loop?")
	}
}

func (e *env) assign(t testing.TB, v fleetio.Vehicle, c fleetio.Contact, from, until time.Time) fleetio.VehicleAssignment {
	t.Helper()
	a := fleetio.VehicleAssignment{VehicleID: v.ID, ContactID: c.ID, StartedAt: from}
	if !until.IsZero() {
		a.EndedAt = &until
	}
	a, err := e.f.CreateAssignment(a)
	require.NoError(t, err)
	return a
}

// booked creates an assignment and waits for its booking.
func (e *env) booked(t testing.TB, v fleetio.Vehicle, c fleetio.Contact, from, until time.Time) fleetio.VehicleAssignment {
	t.Helper()
	a := e.assign(t, v, c, from, until)
	e.settle(t)
	bk, ok, err := e.store.Booking(a.ID)
	require.NoError(t, err)
	require.True(t, ok, "no booking for assignment %d", a.ID)
	require.Equal(t, bookings.BookingActive, bk.State)
	return a
}

func (e *env) grant(t testing.TB, id string) (box.Grant, bool) {
	t.Helper()
	_, grants, err := e.cloud.Records(boxID)
	require.NoError(t, err)
	for _, g := range grants {
		if g.ID == id {
			return g, true
		}
	}
	return box.Grant{}, false
}

func (e *env) patches() int {
	n := 0
	for _, r := range e.f.Requests() {
		if r.Method == http.MethodPatch {
			n++
		}
	}
	return n
}

// ev makes the box's next event.
func (e *env) ev(at time.Time, typ box.EventType, mod func(*box.Event)) box.Event {
	e.seq++
	ev := box.Event{Seq: e.seq, Time: at, Type: typ}
	if mod != nil {
		mod(&ev)
	}
	return ev
}

// send ingests events as the box's batch would arrive at the cloud.
func (e *env) send(t testing.TB, evs ...box.Event) {
	t.Helper()
	_, stored, err := e.cloud.IngestEvents(boxID, wire.EventBatch{V: wire.Version, Box: boxID, Events: evs})
	require.NoError(t, err)
	require.Equal(t, len(evs), stored)
}

// take is what a box sends when a booking's code opens its key's slot and
// the key is taken.
func (e *env) take(at time.Time, a fleetio.VehicleAssignment, keyID string, slot int) []box.Event {
	g := bookings.GrantID(a.ID)
	return []box.Event{
		e.ev(at, box.EventCodeAccepted, func(ev *box.Event) { ev.GrantID, ev.Detail = g, string(box.KindBooking) }),
		e.ev(at, box.EventSlotReleased, func(ev *box.Event) {
			ev.Slot, ev.KeyID, ev.GrantID, ev.Purpose = slot, keyID, g, box.PurposeTake
		}),
		e.ev(at.Add(5*time.Second), box.EventKeyTaken, func(ev *box.Event) { ev.Slot, ev.KeyID, ev.GrantID = slot, keyID, g }),
		e.ev(at.Add(5*time.Second), box.EventSlotRelocked, func(ev *box.Event) {
			ev.Slot, ev.KeyID, ev.GrantID, ev.Reason, ev.Purpose = slot, keyID, g, box.ReasonKeyTaken, box.PurposeTake
		}),
	}
}

// giveBack is what a box sends when a key's fob is scanned and the key put
// back: only the key and fob, no grant; the slot's sensor saw the key
// seated for 5 s (past the settle time).
func (e *env) giveBack(at time.Time, keyID, fob string, slot int) []box.Event {
	return e.giveBackBy(at, keyID, fob, slot, box.ReturnByFob, 5000)
}

// giveBackBy is giveBack with what let the key in and how long its sensor
// saw it seated.
func (e *env) giveBackBy(at time.Time, keyID, fob string, slot int, by box.ReturnBy, seatedMS int64) []box.Event {
	return []box.Event{
		e.ev(at, box.EventSlotReleased, func(ev *box.Event) {
			ev.Slot, ev.KeyID, ev.FobUID, ev.Purpose = slot, keyID, fob, box.PurposeReturn
		}),
		e.ev(at.Add(5*time.Second), box.EventKeyReturned, func(ev *box.Event) {
			ev.Slot, ev.KeyID, ev.FobUID, ev.ReturnBy, ev.SeatedMS = slot, keyID, fob, by, seatedMS
		}),
		e.ev(at.Add(5*time.Second), box.EventSlotRelocked, func(ev *box.Event) {
			ev.Slot, ev.KeyID, ev.FobUID, ev.Reason, ev.Purpose = slot, keyID, fob, box.ReasonKeyReturned, box.PurposeReturn
		}),
	}
}

func types(evs []bookings.BookingEvent) []box.EventType {
	out := make([]box.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func field(a fleetio.VehicleAssignment, k string) string {
	s, _ := a.CustomFields[k].(string)
	return s
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func post(t testing.TB, url string, body []byte, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func stringsReader(b []byte) *strings.Reader { return strings.NewReader(string(b)) }
