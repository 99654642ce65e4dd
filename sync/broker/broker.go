package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// DefaultMessageExpiry is how long retained and queued messages are kept when
// Config.MessageExpiry is zero: long enough for a box that is off for a
// holiday, short enough that the broker forgets boxes taken out of service.
const DefaultMessageExpiry = 30 * 24 * time.Hour

// maxPacketSize bounds what a client may send: the largest message of the
// protocol plus room for the topic and the MQTT header.
const maxPacketSize = wire.MaxMessageSize + 64<<10

// sysInterval is how often mochi refreshes its $SYS statistics. Each refresh
// is written to the store (a bbolt commit, two fsyncs) when DataDir is set;
// mochi's default of one second would wear an SD card for nothing.
const sysInterval = 60 // seconds

// StoreFile is the bbolt file in Config.DataDir.
const StoreFile = "broker.bolt"

// storeLockTimeout bounds the wait for the store's file lock, so a second
// broker on the same DataDir fails with an error instead of hanging.
const storeLockTimeout = 2 * time.Second

// User is a broker account: a box (Name = box id) or the cloud.
type User struct {
	Name         string
	PasswordHash string // from HashPassword; never a plain password
}

// Config says how to run the broker. The zero value of each field is usable
// except that at least one listener and a user source must be set.
type Config struct {
	// Listen is a TCP listener address, e.g. "127.0.0.1:1883"; "" = none.
	Listen string
	// ListenTLS is the TLS listener address; "" = none. It needs TLS.
	ListenTLS string
	// TLS holds the server certificate. For boxes with client certificates
	// set ClientCAs and ClientAuth = tls.VerifyClientCertIfGiven (boxes with
	// passwords may then use the same listener).
	TLS *tls.Config

	// CloudUser is the cloud/bridge user: it reads what every box publishes
	// and publishes what every box reads (CloudAllowed).
	CloudUser string
	// Users looks up a user's password hash (the bridge's store). Users
	// that are also listed in StaticUsers are looked up there first.
	Users func(name string) (passwordHash string, ok bool)
	// StaticUsers is a fixed list of accounts, for a demo or a config file.
	StaticUsers []User

	// BoxCA is the bridge's own CA (nil: none). A client certificate it
	// issued is let in only if its serial is BoxCertSerial's answer for
	// the certificate's box, so that re-provisioning a box shuts out its
	// old certificate. Certificates of other ClientCAs are not checked.
	BoxCA *x509.Certificate
	// BoxCertSerial looks up a box's current certificate serial (the
	// bridge's store); ok false refuses every BoxCA certificate of the box.
	BoxCertSerial func(box string) (serial *big.Int, ok bool)

	// DataDir keeps sessions, retained and queued messages across restarts
	// in DataDir/broker.bolt; "" keeps them in memory only.
	DataDir string
	// MessageExpiry is how long retained and queued messages are kept
	// (0 = DefaultMessageExpiry). It must be at least a second.
	MessageExpiry time.Duration

	Logger *slog.Logger // nil = slog.Default()

	connectTimeout time.Duration // tests: 0 = connectTimeout
}

// Broker is a running embedded broker.
type Broker struct {
	srv    *mqtt.Server
	auth   *authHook
	gate   *connGate
	addr   string
	tlsAdr string
	log    *slog.Logger
	closed atomic.Bool
}

// Start validates cfg, opens the store and starts listening. The broker runs
// until Close.
func Start(cfg Config) (*Broker, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "broker")
	if cfg.Listen == "" && cfg.ListenTLS == "" {
		return nil, errors.New("broker: no listener: set Listen or ListenTLS")
	}
	if cfg.ListenTLS != "" && (cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil)) {
		return nil, fmt.Errorf("broker: TLS listener %s needs a server certificate in TLS", cfg.ListenTLS)
	}
	if cfg.CloudUser == "" {
		return nil, errors.New("broker: CloudUser is empty")
	}
	if cfg.Users == nil && len(cfg.StaticUsers) == 0 {
		return nil, errors.New("broker: no users: set Users or StaticUsers")
	}
	static := make(map[string]string, len(cfg.StaticUsers))
	for i, u := range cfg.StaticUsers {
		if u.Name == "" || !isHash(u.PasswordHash) {
			return nil, fmt.Errorf("broker: static user %d (%q): need a name and a bcrypt password hash", i, u.Name)
		}
		static[u.Name] = u.PasswordHash
	}
	expiry := cfg.MessageExpiry
	if expiry == 0 {
		expiry = DefaultMessageExpiry
	}
	if expiry < time.Second {
		return nil, fmt.Errorf("broker: MessageExpiry %v: must be at least 1s", cfg.MessageExpiry)
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = int64(expiry / time.Second)
	caps.MaximumSessionExpiryInterval = math.MaxUint32 // keep CleanSession=false sessions
	caps.MaximumPacketSize = maxPacketSize
	srv := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 log,
		SysTopicResendInterval: sysInterval,
	})

	b := &Broker{srv: srv, log: log}
	b.auth = &authHook{
		cloud: cfg.CloudUser,
		lookup: func(name string) (string, bool) {
			if h, ok := static[name]; ok {
				return h, true
			}
			if cfg.Users != nil {
				return cfg.Users(name)
			}
			return "", false
		},
		sessions:    srv.Clients,
		logins:      newLoginGuard(time.Now),
		certs:       certCheck{ca: cfg.BoxCA, serial: cfg.BoxCertSerial},
		queues:      newQueueBound(cfg.CloudUser, log),
		log:         log,
		subscribing: map[*mqtt.Client]map[string]bool{},
	}
	if box.ValidID(cfg.CloudUser) {
		log.Info("cloud user name is also a valid box id; no box can use it", "cloud_user", cfg.CloudUser)
	}
	b.gate = newConnGate(log)
	if cfg.connectTimeout > 0 {
		b.gate.timeout = cfg.connectTimeout
	}
	if err := srv.AddHook(b.auth, nil); err != nil {
		return nil, fmt.Errorf("broker: adding auth hook: %w", err)
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("broker: data dir: %w", err)
		}
		path := filepath.Join(cfg.DataDir, StoreFile)
		err := srv.AddHook(boltStore{Hook: new(bolt.Hook), queues: b.auth.queues}, &bolt.Options{
			Path:    path,
			Options: &bbolt.Options{Timeout: storeLockTimeout},
		})
		if err != nil {
			return nil, fmt.Errorf("broker: opening store %s: %w", path, err)
		}
	}

	fail := func(err error) (*Broker, error) {
		_ = srv.Close() // closes listeners added so far and the store
		return nil, err
	}
	if cfg.Listen != "" {
		l := &closeSafeListener{Listener: listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Listen}),
			clients: &srv.Listeners.ClientsWg, gate: b.gate}
		if err := srv.AddListener(l); err != nil {
			return fail(fmt.Errorf("broker: listening on %s: %w", cfg.Listen, err))
		}
		b.addr = l.Address()
	}
	if cfg.ListenTLS != "" {
		tc := cfg.TLS.Clone()
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
		l := &closeSafeListener{Listener: listeners.NewTCP(listeners.Config{ID: "tls", Address: cfg.ListenTLS, TLSConfig: tc}),
			clients: &srv.Listeners.ClientsWg, gate: b.gate}
		if err := srv.AddListener(l); err != nil {
			return fail(fmt.Errorf("broker: listening (TLS) on %s: %w", cfg.ListenTLS, err))
		}
		b.tlsAdr = l.Address()
	}
	// Serve loads the store, then starts accepting on the listeners in
	// goroutines of its own; it does not block.
	if err := srv.Serve(); err != nil {
		return fail(fmt.Errorf("broker: starting: %w", err))
	}
	log.Info("broker started", "listen", b.addr, "listen_tls", b.tlsAdr, "data_dir", cfg.DataDir,
		"message_expiry", expiry.String())
	return b, nil
}

// Addr is the plain TCP listener's address (host:port), "" if none.
func (b *Broker) Addr() string { return b.addr }

// TLSAddr is the TLS listener's address (host:port), "" if none.
func (b *Broker) TLSAddr() string { return b.tlsAdr }

// Denied counts refused connects, publishes and subscriptions: security
// events, each also logged.
func (b *Broker) Denied() uint64 { return b.auth.denied.Load() }

// RefusedConnections counts connections closed before login by the bounds
// on them (listener.go): over the pending bounds, or a first packet that is
// not a CONNECT of at most 8 KiB. Each is a security event; they are logged
// at most once per 10 s, with the count since.
func (b *Broker) RefusedConnections() uint64 { return b.gate.refused.Load() }

// QueueDropped counts deliveries dropped because the receiving session's
// queue was over its bounds (queue.go): security events, logged once per
// episode.
func (b *Broker) QueueDropped() uint64 { return b.auth.queues.dropped.Load() }

// MessageExpiry is the expiry the broker applies to retained and queued
// messages.
func (b *Broker) MessageExpiry() time.Duration {
	return time.Duration(b.srv.Options.Capabilities.MaximumMessageExpiryInterval) * time.Second
}

// Close disconnects every client, stops the listeners and closes the store.
// Queued messages of persistent sessions stay in the store. It returns
// within about a second whatever clients do: a login in its password check
// is the longest it waits for (closeSafeListener.Close).
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if err := b.srv.Close(); err != nil {
		return fmt.Errorf("broker: closing: %w", err)
	}
	return nil
}
