package bookings_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

const (
	apiKey  = "key-123"
	account = "acct-456"
	secret  = "whsec-789"
	boxID   = "box-a"
	keyID   = "van-7-key"
)

type note struct {
	to   bookings.Recipient
	kind string
	data map[string]string
}

// notes records notifications, as a notifier would send them.
type notes struct {
	mu  gosync.Mutex
	got []note
	err error // returned (once) when set
}

func (n *notes) Notify(_ context.Context, to bookings.Recipient, kind string, data map[string]string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		err := n.err
		n.err = nil
		return err
	}
	n.got = append(n.got, note{to, kind, data})
	return nil
}

func (n *notes) all() []note {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]note(nil), n.got...)
}

// env is a bridge wired to a fake Fleetio and a real cloud store, with its
// webhook and access page on a loopback HTTP server and its worker running.
type env struct {
	f      *fleetiotest.Server
	cloud  *cloud.Cloud
	store  *bookings.Store
	b      *bookings.Integration
	srv    *httptest.Server
	notes  *notes
	van    fleetio.Vehicle
	truck  fleetio.Vehicle
	ada    fleetio.Contact
	bob    fleetio.Contact
	cancel context.CancelFunc
	done   chan struct{}
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{notes: &notes{}}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	e.cloud, err = cloud.Open(cloud.Options{Path: filepath.Join(dir, "cloud.db"), Signer: wire.Signer{KeyID: "k1", Key: priv}})
	require.NoError(t, err)
	t.Cleanup(func() { e.cloud.Close() })
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, e.cloud.RegisterBox(boxID, boxKey.PublicKey().Bytes()))
	_, err = e.cloud.PutKey(boxID, box.Key{ID: keyID, Name: "Van 7", FobUID: "01000734E0", Slot: 3})
	require.NoError(t, err)

	e.f = fleetiotest.New(fleetiotest.Options{APIKey: apiKey, AccountToken: account, WebhookSecret: secret,
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

	e.store, err = bookings.OpenStore(filepath.Join(dir, "bookings.db"))
	require.NoError(t, err)
	t.Cleanup(func() { e.store.Close() })
	require.NoError(t, e.store.SetSettings(bookings.Settings{APIKey: apiKey, AccountToken: account, WebhookSecret: secret, BaseURL: e.f.APIURL()}))
	require.NoError(t, e.store.PutBox(bookings.BoxInfo{ID: boxID, Name: "Depot North", Location: "12 Dock Road, bay 4"}))
	require.NoError(t, e.store.PutLink(bookings.Link{VehicleID: e.van.ID, BoxID: boxID, KeyID: keyID, Method: bookings.MethodAutomatic}))

	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.b, err = bookings.New(bookings.Options{
		Store: e.store, Cloud: e.cloud, Notifier: e.notes,
		Admin:         bookings.Recipient{Name: "Fleet admin", Email: "admin@example.com"},
		AccessBaseURL: e.srv.URL,
		NewClient: func(s bookings.Settings) (*fleetio.Client, error) {
			// No retries inside the client: the queue retries, which is
			// what these tests check.
			return fleetio.New(fleetio.Options{BaseURL: s.BaseURL, APIKey: s.APIKey, AccountToken: s.AccountToken,
				MaxRetries: -1, Timeout: 5 * time.Second})
		},
		MinRetry: 20 * time.Millisecond, MaxRetry: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	mux.Handle(bookings.WebhookPath, e.b.Webhook())
	mux.Handle(bookings.AccessPath, e.b.Access())
	e.f.SetWebhookURL(e.srv.URL + bookings.WebhookPath)

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() { defer close(e.done); e.b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-e.done
	})
	return e
}

// settle waits until Fleetio has delivered everything and the bridge's
// queue is empty (its own PATCHes make more deliveries, hence the loop).
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
