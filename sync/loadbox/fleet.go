package loadbox

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// ConnectParallel bounds the boxes registered or connecting at once: each
// registration is a few fsyncing bbolt commits at the bridge and each
// connect a TLS handshake; eight keep two cores busy without a thousand
// handshakes timing out together.
const ConnectParallel = 8

// readyTimeout bounds the wait for a (re)started bridge's cloud to
// subscribe, as cmd/internal/depot's bridgeReadyTimeout.
const readyTimeout = 30 * time.Second

// FleetOptions configure StartFleet.
type FleetOptions struct {
	Boxes   int    // how many boxes
	Grants  int    // grants per box (each on its own key)
	DataDir string // the bridge's data directory (a test's TempDir)
	// StoreURL puts the bridge's stores on that PostgreSQL database
	// (bridge.StoreOptions.URL); "" keeps them in DataDir's bbolt files.
	StoreURL string
	Box      Config // AckTimeout, DrainBatch for every box (the rest is filled in)
	// BoxesPerAddress spreads the boxes over loopback addresses from
	// 127.0.1.1 up, this many on each, as depots behind their own NATs;
	// 0 connects every box from 127.0.0.1 (one NAT for the whole fleet).
	BoxesPerAddress int
	// Logger gets the bridge's logs, and the boxes' unless Box.Logger is
	// set; nil discards them.
	Logger *slog.Logger
}

// Fleet is a bridge and N lightweight boxes connected to it.
type Fleet struct {
	o     FleetOptions
	bopts bridge.Options
	mu    sync.Mutex
	svc   *bridge.Service
	Boxes []*Box
	ctx   context.Context
	stop  context.CancelFunc
}

// StartFleet starts the bridge and registers the boxes with their keys and
// grants; Connect connects them.
func StartFleet(ctx context.Context, o FleetOptions) (*Fleet, error) {
	f := &Fleet{o: o, bopts: bridge.Options{DataDir: o.DataDir, Store: bridge.StoreOptions{URL: o.StoreURL},
		Broker: bridge.BrokerOptions{ListenTLS: "127.0.0.1:0"}, Logger: o.Logger}}
	if f.o.Box.Logger == nil {
		f.o.Box.Logger = o.Logger
	}
	f.ctx, f.stop = context.WithCancel(ctx)
	svc, err := f.startService()
	if err != nil {
		return nil, err
	}
	f.svc = svc
	// From now on the same addresses, so a restarted bridge is where the
	// boxes look.
	f.bopts.AdminListen = svc.AdminAddr()
	f.bopts.Broker.Listen = strings.TrimPrefix(svc.BrokerURL(), "tcp://")
	f.bopts.Broker.ListenTLS = svc.BrokerTLSAddr()
	f.bopts.Fleetio.PublicListen = strings.TrimPrefix(svc.PublicURL(), "http://")

	admin := svc.AdminClient()
	prov, err := admin.Provisioning(ctx)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("loadbox: provisioning from the bridge: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(prov.CACert)) {
		f.Close()
		return nil, fmt.Errorf("loadbox: the bridge's CA certificate does not parse")
	}
	pub, err := base64.StdEncoding.DecodeString(prov.SigningKey.PublicKey)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("loadbox: the bridge's signing key: %w", err)
	}
	keys := map[string]ed25519.PublicKey{prov.SigningKey.KeyID: pub}
	brokerURL := "ssl://" + svc.BrokerTLSAddr()

	f.Boxes = make([]*Box, o.Boxes)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ConnectParallel)
	for i := range o.Boxes {
		g.Go(func() error {
			b, err := f.register(gctx, admin, i, fmt.Sprintf("load-%04d", i+1), roots, keys, brokerURL)
			f.Boxes[i] = b
			return err
		})
	}
	if err := g.Wait(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (f *Fleet) startService() (*bridge.Service, error) {
	svc, err := bridge.Start(f.ctx, f.bopts)
	if err != nil {
		return nil, fmt.Errorf("loadbox: starting the bridge: %w", err)
	}
	if err := svc.WaitReady(context.Background(), readyTimeout); err != nil {
		_ = svc.Close()
		return nil, fmt.Errorf("loadbox: %w", err)
	}
	return svc, nil
}

// register makes one box's identity, registers it, gets its certificate
// and puts its keys and grants (one revision).
func (f *Fleet) register(ctx context.Context, admin *adminapi.AdminClient, n int, id string, roots *x509.CertPool,
	keys map[string]ed25519.PublicKey, brokerURL string) (*Box, error) {
	syncKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	const slots = 12
	req := adminapi.RegisterBoxRequest{ID: id, PublicKey: base64.StdEncoding.EncodeToString(syncKey.PublicKey().Bytes()), Slots: slots}
	if err := admin.Do(ctx, http.MethodPost, "/v1/boxes", req, nil); err != nil {
		return nil, fmt.Errorf("loadbox: registering box %s: %w", id, err)
	}
	tlsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, tlsKey)
	if err != nil {
		return nil, err
	}
	cert, err := admin.Certificate(ctx, id, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), false)
	if err != nil {
		return nil, fmt.Errorf("loadbox: certificate of box %s: %w", id, err)
	}
	blk, _ := pem.Decode([]byte(cert.Certificate))
	if blk == nil {
		return nil, fmt.Errorf("loadbox: certificate of box %s does not parse", id)
	}
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(brokerURL, "ssl://"))
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: host,
		Certificates: []tls.Certificate{{Certificate: [][]byte{blk.Bytes}, PrivateKey: tlsKey}}}
	var ks []box.Key
	var gs []box.GrantPut
	for j := range f.o.Grants {
		k := box.Key{ID: fmt.Sprintf("key-%d", j+1), FobUID: fmt.Sprintf("%010X", j+1), Slot: j%slots + 1}
		ks = append(ks, k)
		gs = append(gs, box.GrantPut{Grant: box.Grant{ID: fmt.Sprintf("grant-%d", j+1), Kind: box.KindBooking,
			KeyIDs: []string{k.ID}}, Code: fmt.Sprintf("%06d", 100000+j)})
	}
	if len(ks) > 0 {
		if _, err := f.Service().Cloud().PutBatch(id, ks, gs); err != nil {
			return nil, fmt.Errorf("loadbox: records of box %s: %w", id, err)
		}
	}
	cfg := f.o.Box
	cfg.LocalIP = f.localIP(n)
	cfg.ID, cfg.BrokerURL, cfg.TLS, cfg.CloudKeys, cfg.SyncKey, cfg.Slots = id, brokerURL, tc, keys, syncKey, slots
	return New(cfg)
}

// localIP is box n's address by FleetOptions.BoxesPerAddress: 127.0.1.1
// for the first group, then 127.0.1.2, and on (65,000 groups at most).
func (f *Fleet) localIP(n int) net.IP {
	if f.o.BoxesPerAddress <= 0 {
		return nil
	}
	g := n/f.o.BoxesPerAddress + 1 + 256 // from 127.0.1.1
	return net.IPv4(127, byte(g>>16), byte(g>>8), byte(g))
}

// Connect connects every box, at most ConnectParallel at once, and waits
// until each is current (its revision the cloud's).
func (f *Fleet) Connect(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ConnectParallel)
	for _, b := range f.Boxes {
		g.Go(func() error { return b.Start(f.ctx) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("loadbox: connecting: %w", err)
	}
	_ = gctx
	return f.WaitCurrent(ctx)
}

// WaitCurrent waits until every box holds the cloud's revision for it.
func (f *Fleet) WaitCurrent(ctx context.Context) error {
	c := f.Service().Cloud()
	for _, b := range f.Boxes {
		want, err := c.Revision(b.ID())
		if err != nil {
			return err
		}
		if err := b.Wait(ctx, func(s Snapshot) bool { return s.Revision >= want }); err != nil {
			return err
		}
	}
	return nil
}

// RestartBridge closes the bridge (and its embedded broker: every box
// loses its connection), changes one grant of every box in the cloud store
// while it is down (so that each box comes back one revision behind and
// must fetch a delta), and starts the bridge again on the same ports and
// data. It returns once the bridge's cloud listens again.
func (f *Fleet) RestartBridge(change bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.svc.Close(); err != nil {
		return fmt.Errorf("loadbox: closing the bridge: %w", err)
	}
	if change {
		if err := f.changeOffline(); err != nil {
			return err
		}
	}
	svc, err := f.startService()
	if err != nil {
		return err
	}
	f.svc = svc
	return nil
}

// changeOffline extends grant-1 of every box in the closed bridge's cloud
// store (its bbolt file, or its database). It signs nothing (the key given is a throwaway): boxes get the
// change signed by the restarted bridge.
func (f *Fleet) changeOffline() error {
	_, throwaway, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	co := cloud.Options{Path: filepath.Join(f.o.DataDir, bridge.FileCloudDB), Signer: wire.Signer{KeyID: "offline", Key: throwaway}}
	if f.o.StoreURL != "" {
		pool, err := pgdb.Open(f.ctx, f.o.StoreURL, pgdb.Options{})
		if err != nil {
			return fmt.Errorf("loadbox: the store during the outage: %w", err)
		}
		defer pool.Close()
		co.Postgres = pool
	}
	c, err := cloud.Open(co)
	if err != nil {
		return fmt.Errorf("loadbox: opening the cloud store during the outage: %w", err)
	}
	defer c.Close()
	until := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	for _, b := range f.Boxes {
		g := box.Grant{ID: "grant-1", Kind: box.KindBooking, KeyIDs: []string{"key-1"}, Until: until}
		if _, err := c.PutGrant(b.ID(), g, ""); err != nil {
			return fmt.Errorf("loadbox: changing box %s's grant during the outage: %w", b.ID(), err)
		}
	}
	return nil
}

// Service is the bridge running now.
func (f *Fleet) Service() *bridge.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.svc
}

// Close disconnects the boxes and closes the bridge.
func (f *Fleet) Close() {
	for _, b := range f.Boxes {
		if b != nil {
			b.Stop()
		}
	}
	f.stop()
	if s := f.Service(); s != nil {
		_ = s.Close()
	}
}
