package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/notify/smtptest"
)

// The Fleetio account of the end-to-end rig.
const (
	fleetAPIKey  = "fleet-key-1"
	fleetAccount = "fleet-acct-1"
	fleetSecret  = "fleet-whsec-1"
	adminEmail   = "admin@example.com"
)

// rigKey is a key of the rig's box and the Fleetio vehicle it belongs to.
type rigKey struct {
	ID   string
	Fob  string
	Slot int
	Name string // also the vehicle's name
}

// The rig's box holds one key per scenario, so that scenarios sharing a rig
// never wait on each other's slots.
var rigKeys = []rigKey{
	{"key-van-1", "01000734E0", 1, "Van 1"},
	{"key-van-2", "0A00112233", 2, "Van 2"},
	{"key-van-3", "0B00445566", 3, "Van 3"},
	{"key-van-4", "0C00778899", 4, "Van 4"},
	{"key-van-5", "0D00AABBCC", 5, "Van 5"},
	{"key-van-6", "0E00DDEEFF", 6, "Van 6"},
	{"key-van-7", "0F00123456", 7, "Van 7"},
	{"key-van-8", "1000654321", 8, "Van 8"},
	{"key-van-9", "1100ABCDEF", 9, "Van 9"},
}

// fleetRig is the whole Fleetio flow with every part real but Fleetio (the
// fake, on loopback) and the pins (sim): a broker, a whole bridge service
// (sync/bridge: the cloud, sync/bookings, the webhook and access pages on
// its public listener) on it, email through a go-smtp server, and a
// smartboxd daemon on sim hardware syncing from that bridge.
type fleetRig struct {
	sync   *syncRig
	f      *fleetiotest.Server
	svc    *bridge.Service // the bridge: its webhook and access pages on its public listener
	store  *bookings.Store
	b      *bookings.Integration
	mail   *mailServer
	d      *daemon
	arrive *arrivals

	vehicles map[string]fleetio.Vehicle // by key id
	ada, bob fleetio.Contact
}

type rigOptions struct {
	broker brokertest.Kind
	// method links every vehicle with (default Automatic).
	method bookings.LinkMode
	// quiet: no logs from the bridge and the box (the benchmark).
	quiet bool
	// latency delays every request to the fake Fleetio (a real one answers
	// in about 100-300 ms).
	latency time.Duration
}

// fleetHTTP is the rig's HTTP client to the fake Fleetio, with an idle
// connection kept for each of the bridge's workers.
var fleetHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: bookings.DefaultWorkers + 2}}

// startFleetRig builds the rig and waits until the box has its keys.
func startFleetRig(t testing.TB, o rigOptions) *fleetRig {
	t.Helper()
	if o.broker == "" {
		o.broker = brokertest.Mochi
	}
	if o.method == "" {
		o.method = bookings.ModeAutomatic
	}
	log := slog.New(slog.DiscardHandler)
	if !o.quiet {
		log = slog.New(slog.NewTextHandler(tbOutput(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rg := &fleetRig{sync: startBrokerRig(t, o.broker), vehicles: map[string]fleetio.Vehicle{}, arrive: newArrivals()}
	r := rg.sync

	// Email: a real SMTP server on loopback.
	rg.mail = startMailServer(t)
	tpl, err := notify.LoadTemplates("")
	require.NoError(t, err)
	mailer, err := notify.NewMailer(notify.EmailConfig{Addr: rg.mail.Addr, From: "SmartBox <bridge@example.com>",
		TLS: notify.TLSNone, Timeout: 10 * time.Second})
	require.NoError(t, err)
	disp := &notify.Dispatcher{Templates: tpl, Mail: mailer, Log: log}

	// Fleetio: the fake account, its webhooks to the bridge's server.
	rg.f = fleetiotest.New(fleetiotest.Options{APIKey: fleetAPIKey, AccountToken: fleetAccount, WebhookSecret: fleetSecret,
		RetryIntervals: []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond},
		Latency:        o.latency})
	t.Cleanup(func() { _ = rg.f.Close() })
	_, err = rg.f.Start()
	require.NoError(t, err)
	for _, k := range []string{fleetio.FieldAccessInstructions, fleetio.FieldAccessLink, fleetio.FieldAccessCode} {
		rg.f.DefineCustomField(k, false)
	}
	for _, k := range rigKeys {
		v, err := rg.f.AddVehicle(fleetio.Vehicle{Name: k.Name, LicensePlate: "SB-" + k.Fob[:4]})
		require.NoError(t, err)
		rg.vehicles[k.ID] = v
	}
	rg.ada, err = rg.f.AddContact(fleetio.Contact{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", MobilePhoneNumber: "+15550100"})
	require.NoError(t, err)
	rg.bob, err = rg.f.AddContact(fleetio.Contact{FirstName: "Bob", LastName: "Smith", Email: "bob@example.com"})
	require.NoError(t, err)

	// The bridge: the whole service in-process, its cloud on the rig's
	// broker, its data in t.TempDir(), its public listener on loopback.
	rg.svc, err = bridge.Start(context.Background(), bridge.Options{
		DataDir: t.TempDir(),
		Broker:  bridge.BrokerOptions{URL: r.url, Username: brokertest.CloudUser, Password: cloudPassword},
		Fleetio: bridge.FleetioOptions{
			Admin: notify.Recipient{Name: "Fleet admin", Email: adminEmail},
			// No maintenance loop: the scenarios call CheckOverdue
			// themselves and count what it finds.
			ReconcileEvery: -1,
			Tune: func(bo *bookings.Options) {
				bo.NewClient = func(s bookings.Settings) (*fleetio.Client, error) {
					// No retries inside the client: the bridge's queue
					// retries. Idle connections kept for every worker, as
					// the bridge's default client does (net/http keeps 2
					// per host).
					return fleetio.New(fleetio.Options{BaseURL: s.BaseURL, APIKey: s.APIKey, AccountToken: s.AccountToken,
						MaxRetries: -1, Timeout: 10 * time.Second, HTTPClient: fleetHTTP})
				}
				// Short back-off: a test's transient failure retries in ms.
				bo.MinRetry, bo.MaxRetry = 20*time.Millisecond, 200*time.Millisecond
			},
			WrapWebhook: rg.arrive.wrap,
		},
		Notifier: disp,
		Logger:   log,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, rg.svc.Close()) })
	rg.store, rg.b, r.cloud = rg.svc.BookingsStore(), rg.svc.Bookings(), rg.svc.Cloud()
	kid, pub64, _ := strings.Cut(rg.svc.SigningKeyLine(), "=")
	pub, err := base64.StdEncoding.DecodeString(pub64)
	require.NoError(t, err)
	r.cloudKeys = map[string]ed25519.PublicKey{kid: pub}
	select {
	case <-rg.svc.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the cloud did not subscribe")
	}

	// The cloud knows the box's keys before the box starts: it gets them
	// in its first sync.
	dir := r.provisionBox(t)
	for _, k := range rigKeys {
		_, err := r.cloud.PutKey(syncBoxID, box.Key{ID: k.ID, FobUID: k.Fob, Slot: k.Slot, Name: k.Name})
		require.NoError(t, err)
	}
	require.NoError(t, rg.store.PutBox(bookings.BoxInfo{ID: syncBoxID, Name: "Depot North", Location: "12 Dock Road, bay 4"}))
	// Connected and linked as an admin would: Connect checks users/me with
	// the credentials; SetLink checks the key is one of the box's.
	_, err = rg.b.Connect(context.Background(), bookings.Settings{APIKey: fleetAPIKey, AccountToken: fleetAccount,
		WebhookSecret: fleetSecret, BaseURL: rg.f.APIURL()})
	require.NoError(t, err)
	for _, k := range rigKeys {
		require.NoError(t, rg.b.SetLink(context.Background(), bookings.Link{VehicleID: rg.vehicles[k.ID].ID, BoxID: syncBoxID, KeyID: k.ID, Mode: o.method}))
	}
	rg.f.SetWebhookURL(rg.svc.WebhookURL())

	// The box: smartboxd's daemon on sim pins, syncing from the cloud.
	rg.d = startRigDaemon(t, r, dir, log)
	require.Eventually(t, func() bool {
		ks, err := rg.d.store.Keys()
		return err == nil && len(ks) == len(rigKeys)
	}, 15*time.Second, 10*time.Millisecond, "the box syncs its keys")
	return rg
}

// startRigDaemon runs smartboxd's daemon (as run would) on sim hardware
// with [cloud] pointing at the rig's broker.
func startRigDaemon(t testing.TB, r *syncRig, dir string, log *slog.Logger) *daemon {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "mqtt-password")
	require.NoError(t, os.WriteFile(pw, []byte(boxPassword+"\n"), 0o600))
	// release 2s: a slot opened by a test that does not take the key
	// relocks soon. Lockout threshold 50: scenarios type refused codes on
	// purpose and must not lock the keypad for the next one. Refusal
	// window 1ms: each refused code is its own code_refused event, the
	// verdict typeCode waits for.
	src := "box_id = \"" + syncBoxID + "\"\ndata_dir = \"" + dir + "\"\n\n[hardware]\nprofile = \"sim\"\n\n" +
		"[timing]\nrelease = \"2s\"\nrelease_max = \"10s\"\nrefusal_window = \"1ms\"\n\n[lockout]\nthreshold = 50\n\n" +
		"[cloud]\nbroker_url = \"" + r.url + "\"\npassword_file = \"" + pw + "\"\n"
	p := filepath.Join(t.TempDir(), "smartboxd.toml")
	require.NoError(t, os.WriteFile(p, []byte(src), 0o600))
	cfg, err := boxconfig.LoadConfig(p)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	d, err := newDaemon(cfg, daemonOptions{Log: log, Software: "e2e"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("the daemon did not stop")
		}
	})
	return d
}

func tbOutput(t testing.TB) io.Writer {
	if tt, ok := t.(*testing.T); ok {
		return tt.Output()
	}
	return io.Discard
}

// arrivals records when each webhook delivery first reached the bridge's
// server (the fake sends on loopback: that is when it sent it) and the
// assignment it was about.
type arrivals struct {
	mu    gosync.Mutex
	first map[int64]time.Time // delivery id -> first arrival
	about map[int64]int64     // delivery id -> assignment id
	event map[int64]string
}

func newArrivals() *arrivals {
	return &arrivals{first: map[int64]time.Time{}, about: map[int64]int64{}, event: map[int64]string{}}
}

func (a *arrivals) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, err := io.ReadAll(r.Body)
		if err == nil {
			if wh, err := fleetio.ParseWebhook(body); err == nil {
				if pa, err := fleetio.ParseAssignment(wh.Payload); err == nil {
					a.mu.Lock()
					if _, ok := a.first[wh.ID]; !ok {
						a.first[wh.ID], a.about[wh.ID], a.event[wh.ID] = at, pa.ID, wh.Event
					}
					a.mu.Unlock()
				}
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	})
}

// createdAt is when the vehicle_assignment_created delivery of assignment
// id first arrived.
func (a *arrivals) createdAt(id int64) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for d, aid := range a.about {
		if aid == id && a.event[d] == fleetio.EventAssignmentCreated {
			return a.first[d], true
		}
	}
	return time.Time{}, false
}

// settle waits until the fake has delivered everything and the bridge's
// queue is empty (its own PATCHes make more deliveries, hence the loop).
func (rg *fleetRig) settle(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; ; i++ {
		require.NoError(t, rg.f.Flush(ctx))
		require.Eventually(t, func() bool { return rg.store.QueueDepth() == 0 }, 20*time.Second, 5*time.Millisecond)
		n := len(rg.f.Deliveries())
		require.NoError(t, rg.f.Flush(ctx))
		if len(rg.f.Deliveries()) == n && rg.store.QueueDepth() == 0 {
			return
		}
		require.Less(t, i, 50, "deliveries never settle: a webhook loop?")
	}
}

func (rg *fleetRig) assign(t testing.TB, key string, c fleetio.Contact, from, until time.Time) fleetio.VehicleAssignment {
	t.Helper()
	a := fleetio.VehicleAssignment{VehicleID: rg.vehicles[key].ID, ContactID: c.ID, StartedAt: from}
	if !until.IsZero() {
		a.EndedAt = &until
	}
	a, err := rg.f.CreateAssignment(a)
	require.NoError(t, err)
	return a
}

// boxGrant is the grant as the box's own store has it.
func (rg *fleetRig) boxGrant(t testing.TB, id string) (box.Grant, bool) {
	t.Helper()
	gs, err := rg.d.store.Grants()
	require.NoError(t, err)
	for _, g := range gs {
		if g.ID == id {
			return g, true
		}
	}
	return box.Grant{}, false
}

// waitBoxGrant waits until the box's store has grant id and ok(grant).
func (rg *fleetRig) waitBoxGrant(t testing.TB, id string, what string, ok func(box.Grant) bool) box.Grant {
	t.Helper()
	var g box.Grant
	require.Eventually(t, func() bool {
		var have bool
		g, have = rg.boxGrant(t, id)
		return have && ok(g)
	}, 15*time.Second, 10*time.Millisecond, "box grant %s: %s; last seen %+v", id, what, g)
	return g
}

// code reads assignment id's keycafe_access_code in the fake.
func (rg *fleetRig) code(t testing.TB, id int64) string {
	t.Helper()
	a, ok := rg.f.Assignment(id)
	require.True(t, ok, "assignment %d", id)
	s, _ := a.CustomFields[fleetio.FieldAccessCode].(string)
	return s
}

func customField(a fleetio.VehicleAssignment, k string) string {
	s, _ := a.CustomFields[k].(string)
	return s
}

// typeCode types code and # on the sim keypad and returns the controller's
// verdict: the code_accepted or code_refused event it recorded.
func (rg *fleetRig) typeCode(t testing.TB, code string) box.Event {
	t.Helper()
	mark, err := rg.d.store.LastSeq()
	require.NoError(t, err)
	require.NoError(t, rg.d.sim.keypad.Type(code+"#", 60*time.Millisecond, 40*time.Millisecond))
	var verdict box.Event
	require.Eventually(t, func() bool {
		evs, err := rg.d.eventsAfter(mark, 1000)
		require.NoError(t, err)
		i := slices.IndexFunc(evs, func(e box.Event) bool {
			return e.Type == box.EventCodeAccepted || e.Type == box.EventCodeRefused
		})
		if i >= 0 {
			verdict = evs[i]
		}
		return i >= 0
	}, 10*time.Second, 10*time.Millisecond, "no verdict on a typed code")
	return verdict
}

// refused types code and checks that the box refuses it and opens nothing.
func (rg *fleetRig) refused(t testing.TB, code string, why string) {
	t.Helper()
	ev := rg.typeCode(t, code)
	require.Equal(t, box.EventCodeRefused, ev.Type, "%s: got %+v", why, ev)
	for _, k := range rigKeys {
		require.False(t, rg.d.sim.slots.Released(k.Slot), "%s: slot %d opened", why, k.Slot)
	}
}

// takeWith types code, waits for k's slot to release, takes the key (the
// box records key_taken) and waits for the slot to relock.
func (rg *fleetRig) takeWith(t testing.TB, code string, k rigKey) {
	t.Helper()
	ev := rg.typeCode(t, code)
	require.Equal(t, box.EventCodeAccepted, ev.Type, "code for %s: got %+v", k.ID, ev)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rg.d.sim.slots.WaitReleased(ctx, k.Slot), "slot %d releases (lock energised)", k.Slot)
	require.NoError(t, rg.d.sim.slots.Take(k.Slot))
	require.Eventually(t, func() bool { return rg.boxHas(t, box.EventKeyTaken, k.Slot) },
		10*time.Second, 10*time.Millisecond, "key_taken slot %d", k.Slot)
	require.NoError(t, rg.d.sim.slots.WaitLocked(ctx, k.Slot))
}

// returnKey scans k's fob; its slot releases, the key goes back, relock.
func (rg *fleetRig) returnKey(t testing.TB, k rigKey) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mark, err := rg.d.store.LastSeq()
	require.NoError(t, err)
	require.NoError(t, rg.d.sim.reader.Tap(k.Fob, 150*time.Millisecond))
	require.NoError(t, rg.d.sim.slots.WaitReleased(ctx, k.Slot))
	require.NoError(t, rg.d.sim.slots.PutBack(k.Slot))
	require.Eventually(t, func() bool {
		evs, err := rg.d.eventsAfter(mark, 1000)
		require.NoError(t, err)
		return slices.ContainsFunc(evs, func(e box.Event) bool { return e.Type == box.EventKeyReturned && e.Slot == k.Slot })
	}, 10*time.Second, 10*time.Millisecond, "key_returned slot %d", k.Slot)
	require.NoError(t, rg.d.sim.slots.WaitLocked(ctx, k.Slot))
}

// boxHas reports whether the box recorded an event of typ for slot in this
// run (in the outbox, or already acknowledged by the cloud and gone from it).
func (rg *fleetRig) boxHas(t testing.TB, typ box.EventType, slot int) bool {
	t.Helper()
	evs, err := rg.d.eventsAfter(0, 100000)
	require.NoError(t, err)
	return slices.ContainsFunc(evs, func(e box.Event) bool { return e.Type == typ && e.Slot == slot })
}

// --- email ---

// mailServer is the loopback SMTP server the bridge mails drivers through.
type mailServer struct{ *smtptest.Server }

// mail is one accepted message.
type mail struct{ smtptest.Mail }

func startMailServer(t testing.TB) *mailServer { return &mailServer{smtptest.Start(t)} }

// waitMail waits for the n-th (1-based) message to addr whose subject
// contains subj and returns it.
func (ms *mailServer) waitMail(t testing.TB, addr, subj string, n int) mail {
	t.Helper()
	var found []smtptest.Mail
	require.Eventually(t, func() bool {
		found = found[:0]
		for _, m := range ms.To(addr) {
			if strings.Contains(m.Subject, subj) {
				found = append(found, m)
			}
		}
		return len(found) >= n
	}, 15*time.Second, 10*time.Millisecond, "mail %d to %s about %q", n, addr, subj)
	return mail{found[n-1]}
}

var pinInMail = regexp.MustCompile(`PIN: ([0-9]{4,16})`)

// pin reads the booking PIN out of a mail.
func (m mail) pin(t testing.TB) string {
	t.Helper()
	sm := pinInMail.FindStringSubmatch(m.Body)
	require.NotNil(t, sm, "no PIN in mail %q:\n%s", m.Subject, m.Body)
	return sm[1]
}
