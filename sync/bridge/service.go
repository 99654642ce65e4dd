package bridge

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/broker"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/secretfile"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Options are what a bridge needs, as plain values: the caller reads config
// files and secret files; the service reads and writes only its data
// directory. A listen address left "" is "127.0.0.1:0" (a free loopback
// port), which is what tests and the simulator want.
type Options struct {
	// DataDir holds the stores, the signing key and the admin token (see
	// the package doc for its files). Made 0700.
	DataDir string
	// AdminListen is the admin endpoint's address; keep it on loopback.
	AdminListen string
	Broker      BrokerOptions
	Cloud       CloudOptions
	Store       StoreOptions
	Fleetio     FleetioOptions
	// Notifier tells drivers and the admin; nil tells nobody.
	Notifier notify.Notifier
	// Zone shows booking times in messages in that zone; nil keeps the
	// offset Fleetio sent (the account's).
	Zone *time.Location
	// Logger gets the service's logs; nil discards them.
	Logger *slog.Logger
}

// BrokerOptions are the embedded broker (URL "") or an external one.
type BrokerOptions struct {
	// URL names an external broker ("tcp://host:1883", "ssl://..."); ""
	// runs the embedded one.
	URL string
	// ClientTLS is the cloud's TLS to an external broker (nil: system
	// roots for ssl://, none for tcp://).
	ClientTLS *tls.Config

	// Listen and ListenTLS are the embedded broker's listeners (ListenTLS
	// "" has none); TLS is its server certificate and client CAs. TLS nil,
	// or without a certificate, gets one issued by the bridge's CA for
	// TLSNames (nil: DefaultTLSNames) at each start. The bridge's CA is
	// always among the client CAs (boxes' certificates from
	// POST /v1/boxes/{box}/certificate), certificates optional.
	Listen        string
	ListenTLS     string
	TLS           *tls.Config
	TLSNames      []string
	MessageExpiry time.Duration
	// BoxURL is the broker URL boxes are told to use (GET
	// /v1/provisioning); "" is ssl:// and the TLS listener's address.
	BoxURL string

	// Username and Password are the cloud's own account (Username "":
	// DefaultCloudUser). With the embedded broker a Password "" is a
	// random one kept in DATA/cloud.passwd.
	Username string
	Password string
	// ClientID is the cloud's MQTT client id ("": cloud.DefaultClientID,
	// or with ShareGroup cloud.DefaultClientID-<replica>: each replica
	// needs a broker session of its own).
	ClientID string
	// ShareGroup, when set, subscribes the cloud to the boxes' topics as
	// MQTT shared subscriptions ($share/<group>/...), so that each box
	// message is handled by one of the replicas in the group.
	ShareGroup string
}

// StoreOptions say where the bridge keeps its data.
type StoreOptions struct {
	// URL "" keeps the stores in bbolt files in DataDir, for one process.
	// A postgres:// URL keeps them, and the secrets (signing key, CA,
	// admin token), in that database, which any number of replicas share.
	URL string
	// MaxConns bounds this replica's pool (0: pgdb.DefaultMaxConns).
	MaxConns int32
	// Replica names this process among the replicas, in the logs and the
	// rounds of periodic work ("": host name and process id).
	Replica string
}

// CloudOptions tune the cloud store (sync/cloud).
type CloudOptions struct {
	// CodeKey is the 32-byte key that encrypts codes at rest; nil keeps a
	// random one in the cloud store (see sync/cloud Caveats).
	CodeKey  []byte
	LogLimit int
}

// FleetioOptions are the Fleetio integration's public side.
type FleetioOptions struct {
	// PublicListen serves webhooks, access pages and /healthz.
	PublicListen string
	// PublicURL is the base of drivers' links and of the webhook URL; ""
	// is http:// and the listener's address.
	PublicURL string
	// ReconcileEvery is how often Fleetio's assignments are compared with
	// the bookings and overdue keys looked for, starting at Start (0:
	// DefaultReconcileEvery; negative: never, for a test that calls
	// Reconcile and CheckOverdue itself and counts what they find).
	ReconcileEvery      time.Duration
	OverdueGrace        time.Duration
	ReturnSettle        time.Duration
	MaxBody             int64
	MaxBodiesPerAddress int
	TrustedProxies      []netip.Prefix
	// RequestsPerMinute and RequestBurst size the budget of Fleetio
	// requests (bookings.Options.FleetioPerMinute, FleetioBurst; 0: the
	// defaults), shared by the replicas on PostgreSQL.
	RequestsPerMinute, RequestBurst int
	// Admin hears of Prompt reservations and overdue keys, by AdminMethod
	// ("": email when there is an address, else SMS).
	Admin       notify.Recipient
	AdminMethod notify.Method
	// AdminLink says where the admin makes the booking of a Prompt
	// reservation, given its assignment id; nil leaves the template's
	// fallback.
	AdminLink func(assignmentID string) string

	// For tests and the simulator: Tune adjusts the integration's options
	// before it is made (shorter back-offs, another Fleetio client), and
	// WrapWebhook wraps the webhook's handler (to watch deliveries arrive).
	Tune        func(*bookings.Options)
	WrapWebhook func(http.Handler) http.Handler
}

// Defaults for options left zero.
const (
	DefaultCloudUser      = "cloud"
	DefaultReconcileEvery = 15 * time.Minute
	freeLoopbackPort      = "127.0.0.1:0"
)

// shutdownBound is how long a stopping service waits for webhooks being
// stored and deliveries in progress (a delivery is a few Fleetio calls);
// one still running then is stopped, and its claim handed back.
const shutdownBound = 5 * time.Second

// Service is a running bridge: the cloud store, the box accounts, the
// embedded broker (unless an external one is used), the Fleetio
// integration, the admin endpoint and the public listener.
type Service struct {
	o      Options
	log    *slog.Logger
	signer wire.Signer
	// keyCreated, caCreated: the signing key, the CA were made by this start.
	keyCreated, caCreated bool
	token                 string
	ca                    *certAuthority

	pool     *pgxpool.Pool // nil on bbolt
	cloud    *cloud.Cloud
	accounts *boxAccounts
	broker   *broker.Broker // nil with an external broker
	mqttURL  string

	adminLn  net.Listener
	adminSrv *http.Server

	bookingsStore *bookings.Store
	fleet         *bookings.Integration
	publicLn      net.Listener
	publicSrv     *http.Server
	publicURL     string

	stop chan struct{} // closed by Close
	// stopping is closed when the service begins to stop, for whatever
	// reason (ctx, Close, a part failed): /readyz says so from then on.
	stopping chan struct{}
	stopOnce sync.Once
	stopped  chan struct{} // closed once everything started has stopped
	err      error         // why it stopped, when not asked to; set before stopped closes

	closeOnce sync.Once
}

// Start opens everything the bridge needs, starts listening and serving,
// or closes what it opened and says what failed. The service runs until
// ctx is done, Close is called, or a part of it fails (Done closes).
func Start(ctx context.Context, o Options) (_ *Service, err error) {
	o.fillDefaults()
	s := &Service{o: o, log: o.Logger, stop: make(chan struct{}), stopping: make(chan struct{})}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	dir := o.DataDir
	// It holds the signing key, the admin token and the stores: 0700, even
	// if it was made looser before.
	if was, err := secretfile.PrivateDir(dir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	} else if was != 0 {
		s.log.Warn("data dir was readable by others: made it 0700", "dir", dir, "was", fmt.Sprintf("%04o", was))
	}
	if err := migrateDataDir(dir, s.log); err != nil {
		return nil, err
	}

	if err := s.openStores(ctx); err != nil {
		return nil, err
	}
	s.log.Info("signing key", "kid", s.signer.KeyID, "created", s.keyCreated) // the public id only
	s.log.Info("bridge CA", "subject", s.ca.cert.Subject.CommonName, "created", s.caCreated)
	if err := s.startBroker(); err != nil {
		return nil, err
	}
	if err := s.startBookings(); err != nil {
		return nil, err
	}

	s.adminLn, err = net.Listen("tcp", o.AdminListen)
	if err != nil {
		return nil, fmt.Errorf("admin endpoint: listen on %s: %w", o.AdminListen, err)
	}
	// The CLI finds the running service here (the port may have been
	// picked by the system).
	if err := writeSecret(filepath.Join(dir, FileAdminAddr), []byte(s.adminLn.Addr().String()+"\n")); err != nil {
		return nil, fmt.Errorf("write admin address: %w", err)
	}
	s.adminSrv = adminLimits.server(s.adminHandler(), s.log)
	s.log.Info("admin endpoint listening", "addr", s.adminLn.Addr().String())
	s.serve(ctx)
	return s, nil
}

func (o *Options) fillDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AdminListen == "" {
		o.AdminListen = freeLoopbackPort
	}
	b := &o.Broker
	if b.URL == "" && b.Listen == "" {
		b.Listen = freeLoopbackPort
	}
	if b.Username == "" {
		b.Username = DefaultCloudUser
	}
	if o.Store.Replica == "" {
		host, _ := os.Hostname()
		o.Store.Replica = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if b.ClientID == "" {
		b.ClientID = cloud.DefaultClientID
		if b.ShareGroup != "" {
			b.ClientID = cloud.DefaultClientID + "-" + o.Store.Replica
		}
	}
	f := &o.Fleetio
	if f.PublicListen == "" {
		f.PublicListen = freeLoopbackPort
	}
	if f.ReconcileEvery == 0 {
		f.ReconcileEvery = DefaultReconcileEvery
	}
}

// serve starts the listeners' servers, the integration's workers and the
// cloud's broker connection, and the goroutine that stops them all.
func (s *Service) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	s.stopped = make(chan struct{})

	adminErr := make(chan error, 1)
	go func() { adminErr <- s.adminSrv.Serve(s.adminLn) }()
	publicErr := make(chan error, 1)
	go func() { publicErr <- s.publicSrv.Serve(s.publicLn) }()
	fleetDone := s.runBookings(ctx)

	serveErr := make(chan error, 1)
	go func() {
		serveErr <- s.cloud.Serve(ctx, s.mqttURL, func(o *mqtt.ClientOptions) {
			b := &s.o.Broker
			o.SetUsername(b.Username).SetPassword(b.Password).SetClientID(b.ClientID)
			if b.URL != "" && b.ClientTLS != nil {
				o.SetTLSConfig(b.ClientTLS)
			}
		})
	}()
	s.log.Info("bridge serving", "broker", s.mqttURL)

	go func() {
		defer close(s.stopped)
		defer cancel()
		var err error
		served := false
		select {
		case <-ctx.Done():
		case <-s.stop:
		case err = <-serveErr:
			served = true
			if err != nil {
				err = fmt.Errorf("cloud: %w", err)
			}
		case err = <-adminErr:
			err = fmt.Errorf("admin endpoint: %w", err)
		case err = <-publicErr:
			err = fmt.Errorf("public endpoint: %w", err)
		}
		close(s.stopping)
		// Graceful: a webhook being stored finishes (Fleetio would
		// otherwise retry it, which is harmless but noisy); the
		// deliveries in progress finish and this replica's claims are
		// handed back (Drain), so another replica takes them at once;
		// then everything stops, and the stores close in Close.
		shut, done := context.WithTimeout(context.Background(), shutdownBound)
		defer done()
		_ = s.publicSrv.Shutdown(shut)
		if err := s.fleet.Drain(shut); err != nil {
			s.log.Warn("draining the webhook queue", "err", err)
		}
		cancel()
		_ = s.adminSrv.Shutdown(shut)
		<-fleetDone
		if !served {
			// Serve returns once ctx is done, after its workers stopped:
			// the store must not close under them.
			if e := <-serveErr; e != nil && err == nil {
				err = fmt.Errorf("cloud: %w", e)
			}
		}
		s.err = err
	}()
}

// Done is closed once the service has stopped serving: its ctx ended,
// Close was called, or a part failed (Close then says which).
func (s *Service) Done() <-chan struct{} { return s.stopped }

// Close stops the service if it runs, closes the stores and the broker, and
// returns the error that stopped it, if one did (nil after ctx or Close).
func (s *Service) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	if s.stopped != nil {
		<-s.stopped
	}
	s.release()
	return s.err
}

// release closes everything Start opened, in reverse order.
func (s *Service) release() {
	s.closeOnce.Do(func() {
		if s.adminLn != nil {
			_ = os.Remove(filepath.Join(s.o.DataDir, FileAdminAddr))
			_ = s.adminLn.Close()
		}
		if s.publicLn != nil {
			_ = s.publicLn.Close()
		}
		if s.broker != nil {
			if err := s.broker.Close(); err != nil {
				s.log.Warn("closing broker", "err", err)
			}
		}
		if s.bookingsStore != nil {
			if err := s.bookingsStore.Close(); err != nil {
				s.log.Warn("closing bookings store", "err", err)
			}
		}
		if s.cloud != nil {
			if err := s.cloud.Close(); err != nil {
				s.log.Warn("closing cloud store", "err", err)
			}
		}
		if s.accounts != nil {
			if err := s.accounts.Close(); err != nil {
				s.log.Warn("closing box accounts", "err", err)
			}
		}
		if s.pool != nil {
			s.pool.Close() // last: the stores above use it
		}
	})
}

// AdminAddr is the admin endpoint's host:port.
func (s *Service) AdminAddr() string { return s.adminLn.Addr().String() }

// AdminURL is the admin endpoint's base URL ("http://host:port").
func (s *Service) AdminURL() string { return "http://" + s.AdminAddr() }

// AdminToken is the admin API's bearer token (DATA/admin.token).
func (s *Service) AdminToken() string { return s.token }

// PublicURL is the base of the webhook URL and drivers' links.
func (s *Service) PublicURL() string { return s.publicURL }

// WebhookURL is where Fleetio's webhooks go.
func (s *Service) WebhookURL() string { return s.publicURL + bookings.WebhookPath }

// BrokerURL is the broker the cloud connects to: the embedded one's plain
// listener ("tcp://host:port") or the external URL.
func (s *Service) BrokerURL() string { return s.mqttURL }

// BrokerTLSAddr is the embedded broker's TLS listener, "" without one.
func (s *Service) BrokerTLSAddr() string {
	if s.broker == nil {
		return ""
	}
	return s.broker.TLSAddr()
}

// SigningKeyPath is the signing key's file.
func (s *Service) SigningKeyPath() string { return filepath.Join(s.o.DataDir, FileSigningKey) }

// SigningKeyCreated says whether this start made the signing key.
func (s *Service) SigningKeyCreated() bool { return s.keyCreated }

// SigningKeyLine is the signing key's public half as kid=base64, what
// `smartboxctl provision` takes.
func (s *Service) SigningKeyLine() string { return PublicKeyLine(s.signer) }

// Ready is closed once the cloud is subscribed to the boxes' topics at the
// broker: a box that connects from then on is heard from its first message
// (before it, on a fresh data directory, its first messages wait for its
// resend).
func (s *Service) Ready() <-chan struct{} { return s.cloud.Subscribed() }

// WaitReady waits for Ready, and says why not if the service stopped first
// (with the error that stopped it), timeout passed, or ctx ended. The
// caller closes the service on an error.
func (s *Service) WaitReady(ctx context.Context, timeout time.Duration) error {
	select {
	case <-s.Ready():
		return nil
	case <-s.Done():
		return fmt.Errorf("the bridge stopped before its cloud subscribed to the box topics: %v", s.Close())
	case <-time.After(timeout):
		return fmt.Errorf("the bridge's cloud did not subscribe to the box topics within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cloud is the cloud store: records, events, commands of every box.
func (s *Service) Cloud() *cloud.Cloud { return s.cloud }

// Bookings is the Fleetio integration.
func (s *Service) Bookings() *bookings.Integration { return s.fleet }

// BookingsStore is the integration's store (DATA/bookings.db).
func (s *Service) BookingsStore() *bookings.Store { return s.bookingsStore }
