package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
	"github.com/smartbox-oss/smartbox/sync/loadbox"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// The replica rig: the bridge as a cloud service, every part real but
// Fleetio (the fake, on loopback) and the boxes (sync/loadbox's
// lightweight ones, the real protocol over MQTT): N `smartbox-bridge serve`
// processes built from this package, one PostgreSQL (sync/pgtest), one
// mosquitto (sync/brokertest, the README's ACL), and in front of the
// replicas' public listeners a round-robin reverse proxy, as the Caddy
// example of docs/cloud-service.md, which Fleetio's webhooks reach.

// Bounds of the rig.
const (
	// rigReadyTimeout bounds a replica's start: migrations, secrets, the
	// broker's subscription (GET /readyz 200).
	rigReadyTimeout = 60 * time.Second
	// rigStopTimeout bounds an orderly stop (SIGTERM; the bridge's own
	// shutdown is bounded at 5 s) before SIGKILL.
	rigStopTimeout = 20 * time.Second
	// rigKeysPerBox keys in each box, one vehicle each.
	rigKeysPerBox = 5
	// rigSlots is each load box's slot count.
	rigSlots = 12
	// rigProxyBody bounds a webhook body the proxy forwards (the bridge's
	// own bound is 64 KiB).
	rigProxyBody = 1 << 20
	// rigSetupBudget is the replicas' Fleetio budget while the rig is set
	// up (the most the config allows): linking 1,000 vehicles reads each.
	rigSetupBudget = maxFleetioPerMinute
	// rigParallel bounds the rig's setup calls at once (admin API).
	rigParallel = 8
)

// Fleetio account of the rig.
const (
	rigFleetKey     = "rig-fleet-key"
	rigFleetAccount = "rig-fleet-acct"
	rigFleetSecret  = "rig-fleet-whsec"
)

var (
	bridgeBinOnce gosync.Once
	bridgeBin     string
	bridgeBinErr  error
)

// buildBridge builds this package's smartbox-bridge once per test binary,
// without -race: the replicas' code is raced in sync/bridge's own tests,
// and three instrumented replicas would make the rig's figures the race
// detector's.
func buildBridge(t testing.TB) string {
	t.Helper()
	bridgeBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "smartbox-bridge-rig-")
		if err != nil {
			bridgeBinErr = err
			return
		}
		bridgeBin = filepath.Join(dir, "smartbox-bridge")
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", bridgeBin, ".").CombinedOutput()
		if err != nil {
			bridgeBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, bridgeBinErr)
	return bridgeBin
}

// replicaRigOptions shape a rig.
type replicaRigOptions struct {
	Replicas int
	Boxes    int
	// Latency is the fake Fleetio's per request; RateLimit its requests a
	// minute (0: any), and the bridge's own budget is set to the same
	// (requests_per_minute), as an operator would.
	Latency   time.Duration
	RateLimit int
}

// replicaRig is a running rig.
type replicaRig struct {
	t     testing.TB
	o     replicaRigOptions
	dir   string
	mq    brokertest.Broker
	fake  *fleetiotest.Server
	proxy *rigProxy
	reps  []*replicaProc
	dbURL string

	signingKeys map[string]ed25519.PublicKey
	boxes       []*loadbox.Box
	// vehicles: vehicle id -> the box and key it is linked to.
	vehicles   map[int64]rigLink
	vehicleIDs []int64
	ada, bob   fleetio.Contact
}

type rigLink struct{ box, key string }

// startReplicaRig starts the database, the broker, the fake Fleetio, the
// replicas and the proxy, registers the boxes, their keys and the
// vehicles' links through the first replica's admin API, and connects the
// boxes. It returns once every box is current.
func startReplicaRig(t testing.TB, o replicaRigOptions) *replicaRig {
	t.Helper()
	brokertest.SkipWithoutMosquitto(t)
	bin := buildBridge(t)
	rg := &replicaRig{t: t, o: o, dir: t.TempDir(), vehicles: map[int64]rigLink{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	// The box ids are known up front: mosquitto's password file lists them.
	ids := make([]string, o.Boxes)
	users := map[string]string{brokertest.CloudUser: brokertest.Password(brokertest.CloudUser)}
	for i := range ids {
		ids[i] = fmt.Sprintf("rig-%04d", i+1)
		users[ids[i]] = brokertest.Password(ids[i])
	}
	rg.mq = brokertest.Start(t, brokertest.Mosquitto, brokertest.Options{Users: users})

	rg.fake = fleetiotest.New(fleetiotest.Options{APIKey: rigFleetKey, AccountToken: rigFleetAccount,
		WebhookSecret: rigFleetSecret, Latency: o.Latency,
		// Fleetio retries a failed delivery (a replica killed mid-request,
		// the proxy's 502): seconds here, not Fleetio's minutes.
		RetryIntervals: []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second}})
	t.Cleanup(func() { _ = rg.fake.Close() })
	_, err := rg.fake.Start()
	require.NoError(t, err)
	for _, k := range []string{fleetio.FieldAccessInstructions, fleetio.FieldAccessLink, fleetio.FieldAccessCode} {
		rg.fake.DefineCustomField(k, false)
	}
	rg.ada, err = rg.fake.AddContact(fleetio.Contact{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
	require.NoError(t, err)
	rg.bob, err = rg.fake.AddContact(fleetio.Contact{FirstName: "Bob", LastName: "Smith", Email: "bob@example.com"})
	require.NoError(t, err)

	// The replicas: one database URL file, one cloud password.
	secrets := filepath.Join(rg.dir, "secrets")
	require.NoError(t, os.Mkdir(secrets, 0o700))
	urlFile, pwFile := filepath.Join(secrets, "store.url"), filepath.Join(secrets, "cloud.passwd")
	rg.dbURL = pgtest.New(t)
	require.NoError(t, os.WriteFile(urlFile, []byte(rg.dbURL+"\n"), 0o600))
	require.NoError(t, os.WriteFile(pwFile, []byte(brokertest.Password(brokertest.CloudUser)+"\n"), 0o600))
	rg.proxy = startRigProxy(t)
	for i := range o.Replicas {
		rg.reps = append(rg.reps, rg.newReplica(t, bin, i+1, urlFile, pwFile))
	}
	// The first makes the schema and the secrets; the others find them.
	require.NoError(t, rg.reps[0].start(ctx))
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range rg.reps[1:] {
		g.Go(func() error { return r.start(gctx) })
	}
	require.NoError(t, g.Wait())
	ups := make([]string, len(rg.reps))
	for i, r := range rg.reps {
		ups[i] = r.public
	}
	rg.proxy.setUpstreams(ups)

	admin := rg.admin()
	var key adminapi.SigningKeyResponse
	require.NoError(t, admin.Do(ctx, http.MethodGet, "/v1/signing-key", nil, &key))
	pub, err := base64.StdEncoding.DecodeString(key.PublicKey)
	require.NoError(t, err)
	rg.signingKeys = map[string]ed25519.PublicKey{key.KeyID: pub}
	var conn bridge.ConnectResponse
	require.NoError(t, admin.Do(ctx, http.MethodPost, "/v1/fleetio/connect", bridge.ConnectRequest{APIKey: rigFleetKey,
		AccountToken: rigFleetAccount, WebhookSecret: rigFleetSecret, BaseURL: rg.fake.APIURL()}, &conn))
	require.True(t, strings.HasPrefix(conn.WebhookURL, rg.proxy.url), "the webhook URL %q is the proxy's", conn.WebhookURL)
	rg.fake.SetWebhookURL(conn.WebhookURL)

	rg.registerBoxes(ctx, t, ids)
	rg.connectBoxes(ctx, t)
	if o.RateLimit > 0 {
		// Set up under no limit (each link reads its vehicle from
		// Fleetio: 1,000 at 20 a minute would take 50 minutes), then the
		// limit: Fleetio's, and the replicas' budget lowered to it by a
		// rolling restart (each drained by SIGTERM, as systemctl restart).
		rg.fake.RateLimit(o.RateLimit)
		for _, r := range rg.reps {
			r.writeConfig(t, o.RateLimit, min(bookings.DefaultFleetioBurst, o.RateLimit))
			r.stop()
			require.NoError(t, r.start(ctx), "%s restarts with the budget of %d a minute", r.name, o.RateLimit)
		}
	}
	return rg
}

// registerBoxes registers each box, puts its keys and links a vehicle to
// each key, at most rigParallel calls at once.
func (rg *replicaRig) registerBoxes(ctx context.Context, t testing.TB, ids []string) {
	t.Helper()
	admin := rg.admin()
	rg.boxes = make([]*loadbox.Box, len(ids))
	type vk struct {
		v    fleetio.Vehicle
		link rigLink
	}
	vks := make([]vk, 0, len(ids)*rigKeysPerBox)
	for _, id := range ids {
		for k := range rigKeysPerBox {
			v, err := rg.fake.AddVehicle(fleetio.Vehicle{Name: fmt.Sprintf("Van %s/%d", id, k+1)})
			require.NoError(t, err)
			l := rigLink{box: id, key: fmt.Sprintf("key-%d", k+1)}
			rg.vehicles[v.ID] = l
			rg.vehicleIDs = append(rg.vehicleIDs, v.ID)
			vks = append(vks, vk{v, l})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(rigParallel)
	for i, id := range ids {
		g.Go(func() error {
			sk, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			if err := admin.Do(gctx, http.MethodPost, "/v1/boxes", adminapi.RegisterBoxRequest{ID: id,
				PublicKey: base64.StdEncoding.EncodeToString(sk.PublicKey().Bytes()), Slots: rigSlots,
				Name: "Box " + id, Location: "Rig depot"}, nil); err != nil {
				return fmt.Errorf("registering %s: %w", id, err)
			}
			for k := range rigKeysPerBox {
				if err := admin.Do(gctx, http.MethodPut, fmt.Sprintf("/v1/boxes/%s/keys/key-%d", id, k+1),
					bridge.PutKeyRequest{FobUID: fmt.Sprintf("%010X", i*rigKeysPerBox+k+1), Slot: k + 1}, nil); err != nil {
					return fmt.Errorf("key %d of %s: %w", k+1, id, err)
				}
			}
			b, err := loadbox.New(loadbox.Config{ID: id, BrokerURL: rg.mq.URL(), Username: id,
				Password: brokertest.Password(id), CloudKeys: rg.signingKeys, SyncKey: sk, Slots: rigSlots})
			rg.boxes[i] = b
			return err
		})
	}
	require.NoError(t, g.Wait())
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(rigParallel)
	for _, x := range vks {
		g.Go(func() error {
			return admin.Do(gctx, http.MethodPut, fmt.Sprintf("/v1/fleetio/links/%d", x.v.ID),
				bridge.LinkRequest{BoxID: x.link.box, KeyID: x.link.key, Method: bookings.ModeAutomatic}, nil)
		})
	}
	require.NoError(t, g.Wait())
}

// connectBoxes connects every box and waits until each holds its keys.
func (rg *replicaRig) connectBoxes(ctx context.Context, t testing.TB) {
	t.Helper()
	bctx, stop := context.WithCancel(context.Background())
	t.Cleanup(func() {
		for _, b := range rg.boxes {
			b.Stop()
		}
		stop()
	})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loadbox.ConnectParallel)
	for _, b := range rg.boxes {
		g.Go(func() error {
			if err := b.Start(bctx); err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(gctx, 2*time.Minute)
			defer cancel()
			return b.Wait(wctx, func(s loadbox.Snapshot) bool { return s.Keys == rigKeysPerBox })
		})
	}
	require.NoError(t, g.Wait(), "every box connects and gets its keys")
}

// admin is an admin client of the first replica that is running.
func (rg *replicaRig) admin() *adminapi.AdminClient {
	for _, r := range rg.reps {
		if r.running() {
			return r.admin
		}
	}
	rg.t.Fatal("replica rig: no replica is running")
	return nil
}

// boxOf is the box of a vehicle.
func (rg *replicaRig) boxOf(vehicle int64) *loadbox.Box {
	l := rg.vehicles[vehicle]
	for _, b := range rg.boxes {
		if b.ID() == l.box {
			return b
		}
	}
	return nil
}

// assignAll creates one assignment on each vehicle (from tomorrow, an hour
// each), Ada and Bob in turn, and calls between(i) before the i-th.
func (rg *replicaRig) assignAll(t testing.TB, between func(i int)) []fleetio.VehicleAssignment {
	t.Helper()
	base := time.Now().Add(24 * time.Hour).Truncate(time.Minute)
	out := make([]fleetio.VehicleAssignment, 0, len(rg.vehicleIDs))
	for i, v := range rg.vehicleIDs {
		if between != nil {
			between(i)
		}
		c := rg.ada
		if i%2 == 1 {
			c = rg.bob
		}
		from := base.Add(time.Duration(i%24) * time.Hour)
		until := from.Add(time.Hour)
		a, err := rg.fake.CreateAssignment(fleetio.VehicleAssignment{VehicleID: v, ContactID: c.ID, StartedAt: from, EndedAt: &until})
		require.NoError(t, err)
		out = append(out, a)
	}
	return out
}

// grantLatencies waits until every assignment's grant is at its box
// (within wait) and returns, sorted, the time from its created webhook's
// first arrival at the proxy to the grant's first application at the box.
func (rg *replicaRig) grantLatencies(t testing.TB, as []fleetio.VehicleAssignment, wait time.Duration) []time.Duration {
	t.Helper()
	missing := func() []int64 {
		var out []int64
		for _, a := range as {
			if _, ok := rg.boxOf(a.VehicleID).GrantSeen(bookings.GrantID(a.ID)); !ok {
				out = append(out, a.ID)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(missing()) == 0 }, wait, 100*time.Millisecond,
		"every assignment's grant reaches its box; missing %v", missing())
	lat := make([]time.Duration, 0, len(as))
	for _, a := range as {
		sent, ok := rg.proxy.createdAt(a.ID)
		require.True(t, ok, "the created webhook of assignment %d reached the proxy", a.ID)
		at, _ := rg.boxOf(a.VehicleID).GrantSeen(bookings.GrantID(a.ID))
		lat = append(lat, at.Sub(sent))
	}
	slices.Sort(lat)
	return lat
}

// grantsPushed reads from the database when the bridge pushed each
// booking's grant (Booking.GrantAt), by assignment id: the bridge's half of
// the webhook-to-box latency.
func (rg *replicaRig) grantsPushed(t testing.TB) map[int64]time.Time {
	t.Helper()
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, rg.dbURL, pgdb.Options{MaxConns: 1})
	require.NoError(t, err)
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT assignment_id, doc FROM bookings_bookings`)
	require.NoError(t, err)
	out := map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var doc []byte
		require.NoError(t, rows.Scan(&id, &doc))
		var bk bookings.Booking
		require.NoError(t, json.Unmarshal(doc, &bk))
		out[id] = bk.GrantAt
	}
	require.NoError(t, rows.Err())
	return out
}

// replicaProc is one `smartbox-bridge serve` process.
type replicaProc struct {
	name    string
	bin     string
	conf    string // the config but for the Fleetio budget
	config  string
	logPath string
	public  string // host:port of its public listener
	admin   *adminapi.AdminClient

	mu     gosync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (rg *replicaRig) newReplica(t testing.TB, bin string, n int, urlFile, pwFile string) *replicaProc {
	t.Helper()
	dir := filepath.Join(rg.dir, fmt.Sprintf("bridge-%d", n))
	require.NoError(t, os.Mkdir(dir, 0o700))
	admin, public := freeAddr(t), freeAddr(t)
	p := &replicaProc{name: fmt.Sprintf("bridge-%d", n), bin: bin, config: filepath.Join(dir, "smartbox-bridge.toml"),
		logPath: filepath.Join(rg.dir, fmt.Sprintf("bridge-%d.log", n)), public: public}
	// As docs/cloud-service.md's replica config, on loopback: the broker
	// in clear (a password in clear is allowed to 127.0.0.1 only).
	p.conf = fmt.Sprintf(`replica = "bridge-%d"
data_dir = %q

[store]
url_file = %q
max_conns = 8

[broker]
embedded = false
url = %q
username = "cloud"
password_file = %q
box_url = %q
share_group = "smartbox-bridge"

[admin]
listen = %q

[fleetio]
public_listen = %q
public_url = %q
trusted_proxies = ["127.0.0.1"]
admin_name = "Fleet Manager"
admin_email = "manager@rig.example"
`, n, dir, urlFile, rg.mq.URL(), pwFile, rg.mq.URL(), admin, public, rg.proxy.url)
	// Set-up budget: the fake has no limit yet (startReplicaRig).
	p.writeConfig(t, rigSetupBudget, bookings.DefaultFleetioBurst)
	p.admin = adminapi.NewAdminClient("http://"+admin, "")
	t.Cleanup(func() {
		p.stop()
		if d := os.Getenv("SMARTBOX_RIG_LOGS"); d != "" {
			if b, err := os.ReadFile(p.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(d, p.name+".log"), b, 0o600)
			}
		}
		if t.Failed() {
			if b, err := os.ReadFile(p.logPath); err == nil {
				t.Logf("%s log (last 8 KiB):\n%s", p.name, tail(b, 8<<10))
			}
		}
	})
	return p
}

// writeConfig writes the replica's config with a Fleetio request budget.
func (p *replicaProc) writeConfig(t testing.TB, perMinute, burst int) {
	t.Helper()
	conf := p.conf + fmt.Sprintf("requests_per_minute = %d\nrequest_burst = %d\n", perMinute, burst)
	require.NoError(t, os.WriteFile(p.config, []byte(conf), 0o600))
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// freeAddr is a free loopback host:port (brokertest.FreePort's: closed
// again, the replica binds it).
func freeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(brokertest.FreePort(t)))
}

// start runs the process and waits until its /readyz says ready.
func (p *replicaProc) start(ctx context.Context) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, "serve", "--config", p.config, "--log-level", rigLogLevel())
	cmd.Stdout, cmd.Stderr = logf, logf
	// A test binary that dies takes its replicas with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()

	deadline := time.Now().Add(rigReadyTimeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited while starting (see its log %s)", p.name, p.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := hc.Get("http://" + p.public + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", p.name, rigReadyTimeout)
		}
	}
	tok, err := os.ReadFile(filepath.Join(filepath.Dir(p.config), bridge.FileAdminToken))
	if err != nil {
		return fmt.Errorf("%s's admin token: %w", p.name, err)
	}
	p.mu.Lock()
	p.admin = adminapi.NewAdminClient(p.admin.Base(), strings.TrimSpace(string(tok)))
	p.mu.Unlock()
	return nil
}

func (p *replicaProc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill is a crash: SIGKILL, nothing handed back.
func (p *replicaProc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// stop is SIGTERM (a drain), then SIGKILL after rigStopTimeout.
func (p *replicaProc) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(rigStopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// rigProxy is the reverse proxy in front of the replicas' public
// listeners: round robin, and a replica that refuses the connection (down)
// is skipped for the next, as Caddy's lb_try_duration does. A request that
// reached a replica which then died gets a 502: Fleetio retries it.
type rigProxy struct {
	url string
	srv *http.Server
	hc  *http.Client

	mu    gosync.Mutex
	ups   []string
	next  int
	first map[int64]time.Time // assignment id -> first arrival of its created delivery

	forwarded, failed atomic.Int64
}

func startRigProxy(t testing.TB) *rigProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &rigProxy{url: "http://" + ln.Addr().String(), first: map[int64]time.Time{},
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

func (p *rigProxy) setUpstreams(ups []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ups = ups
}

func (p *rigProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, rigProxyBody+1))
	if err != nil || len(body) > rigProxyBody {
		http.Error(w, "body", http.StatusBadRequest)
		return
	}
	if wh, err := fleetio.ParseWebhook(body); err == nil && wh.Event == fleetio.EventAssignmentCreated {
		if a, err := fleetio.ParseAssignment(wh.Payload); err == nil {
			p.mu.Lock()
			if _, ok := p.first[a.ID]; !ok {
				p.first[a.ID] = at
			}
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	ups, start := p.ups, p.next
	p.next++
	p.mu.Unlock()
	for i := range ups {
		up := ups[(start+i)%len(ups)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+up+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			break
		}
		req.Header = r.Header.Clone()
		req.Header.Set("X-Forwarded-For", "127.0.0.1")
		resp, err := p.hc.Do(req)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				continue // down: the next replica
			}
			p.failed.Add(1)
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
			return
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			_ = resp.Body.Close()
			continue // not ready (stopping): the next replica
		}
		p.forwarded.Add(1)
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		_ = resp.Body.Close()
		return
	}
	p.failed.Add(1)
	http.Error(w, "no replica is up", http.StatusBadGateway)
}

// createdAt is when assignment id's created webhook first reached the proxy.
func (p *rigProxy) createdAt(id int64) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.first[id]
	return t, ok
}

// boxEvents records n events at every box.
func (rg *replicaRig) boxEvents(n int, what string) {
	for _, b := range rg.boxes {
		evs := make([]box.Event, n)
		for i := range evs {
			evs[i] = box.Event{Type: box.EventCodeRefused, Time: time.Now(), Detail: fmt.Sprintf("%s %d", what, i+1)}
		}
		b.Record(evs...)
	}
}

// rigLogLevel is the replicas' --log-level: warn, or SMARTBOX_RIG_LOG_LEVEL
// (info or debug, to see a run's deliveries in the logs it leaves in
// SMARTBOX_RIG_LOGS).
func rigLogLevel() string {
	if l := os.Getenv("SMARTBOX_RIG_LOG_LEVEL"); l != "" {
		return l
	}
	return "warn"
}
