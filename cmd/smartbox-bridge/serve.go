package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/smartbox-oss/smartbox/cmd/internal/secretfile"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/broker"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// service is a running bridge: the cloud store, the box accounts, the
// embedded broker (unless an external one is configured) and the admin
// endpoint. Make it with startService, run it with run, which closes it.
type service struct {
	cfg    *Config
	log    *slog.Logger
	signer wire.Signer
	token  string

	cloud  *cloud.Cloud
	auth   *authStore
	broker *broker.Broker // nil with an external broker

	mqttURL   string
	cloudUser string
	cloudPass string
	cloudTLS  *tls.Config

	adminLn  net.Listener
	adminSrv *http.Server

	// The Fleetio integration: its store, the bridge, and the public
	// listener (webhooks, access pages).
	fleetStore *bookings.Store
	fleet      *bookings.Integration
	publicLn   net.Listener
	publicSrv  *http.Server
	publicURL  string

	closeOnce sync.Once
}

// startService opens everything the bridge needs and starts listening,
// or closes what it opened and says what failed. stdout gets the signing
// key line (public: a technician copies it to `smartboxctl provision`).
func startService(cfg *Config, log *slog.Logger, stdout io.Writer) (_ *service, err error) {
	s := &service{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	dir := cfg.DataDir
	// It holds the signing key, the admin token and the stores: 0700, even
	// if it was made looser before.
	if was, err := secretfile.PrivateDir(dir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	} else if was != 0 {
		log.Warn("data dir was readable by others: made it 0700", "dir", dir, "was", fmt.Sprintf("%04o", was))
	}

	var created bool
	s.signer, created, err = loadOrCreateSigningKey(filepath.Join(dir, fileSigningKey))
	if err != nil {
		return nil, err
	}
	if created {
		fmt.Fprintf(stdout, "created signing key %s; provision boxes with:\n", filepath.Join(dir, fileSigningKey))
	} else {
		fmt.Fprintf(stdout, "signing key (provision boxes with):\n")
	}
	fmt.Fprintf(stdout, "  %s\n", publicKeyLine(s.signer))
	log.Info("signing key", "kid", s.signer.KeyID, "created", created) // the public id only

	if s.token, err = loadOrCreateToken(filepath.Join(dir, fileAdminToken)); err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}

	opts := cloud.Options{
		Path:     filepath.Join(dir, fileCloudDB),
		Signer:   s.signer,
		LogLimit: cfg.Cloud.LogLimit,
		Logger:   log.With("component", "cloud"),
	}
	if f := cfg.Cloud.CodeKeyFile; f != "" {
		if opts.CodeKey, err = readCodeKey(f); err != nil {
			return nil, err
		}
	}
	if s.cloud, err = cloud.Open(opts); err != nil {
		return nil, fmt.Errorf("cloud store: %w", err)
	}
	if s.auth, err = openAuthStore(filepath.Join(dir, fileAuthDB)); err != nil {
		return nil, err
	}

	if err := s.startBroker(); err != nil {
		return nil, err
	}
	if err := s.startFleetio(); err != nil {
		return nil, err
	}

	s.adminLn, err = net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin endpoint: listen on %s: %w", cfg.Admin.Listen, err)
	}
	// The CLI finds the running service here (the port may have been
	// picked by the system).
	if err := writeSecret(filepath.Join(dir, fileAdminAddr), []byte(s.adminLn.Addr().String()+"\n")); err != nil {
		return nil, fmt.Errorf("write admin address: %w", err)
	}
	s.adminSrv = adminLimits.server(s.adminHandler(), log)
	log.Info("admin endpoint listening", "addr", s.adminLn.Addr().String())
	return s, nil
}

// startBroker starts the embedded broker, or sets up the connection to the
// external one, and the cloud's own login either way.
func (s *service) startBroker() error {
	b := &s.cfg.Broker
	s.cloudUser = b.Username
	var err error
	if b.URL != "" {
		s.mqttURL = b.URL
		if b.PasswordFile != "" {
			if s.cloudPass, err = readSecretFile("broker.password_file", b.PasswordFile); err != nil {
				return err
			}
		}
		if s.cloudTLS, err = externalTLS(b); err != nil {
			return err
		}
		s.log.Info("using external broker", "url", b.URL, "user", s.cloudUser)
		return nil
	}

	// Embedded: the cloud's password comes from password_file, or is a
	// random one kept in the data dir (nobody but the bridge needs it).
	if b.PasswordFile != "" {
		s.cloudPass, err = readSecretFile("broker.password_file", b.PasswordFile)
	} else {
		s.cloudPass, err = loadOrCreateToken(filepath.Join(s.cfg.DataDir, fileCloudPass))
	}
	if err != nil {
		return err
	}
	hash, err := broker.HashPassword(s.cloudPass)
	if err != nil {
		return fmt.Errorf("hash cloud password: %w", err)
	}
	bc := broker.Config{
		Listen:        b.Listen,
		ListenTLS:     b.ListenTLS,
		CloudUser:     s.cloudUser,
		Users:         s.boxPasswordHash,
		StaticUsers:   []broker.User{{Name: s.cloudUser, PasswordHash: hash}},
		DataDir:       filepath.Join(s.cfg.DataDir, fileBrokerDir),
		MessageExpiry: b.MessageExpiry.Duration,
		Logger:        s.log,
	}
	if b.ListenTLS != "" {
		if bc.TLS, err = embeddedTLS(b); err != nil {
			return err
		}
	}
	if s.broker, err = broker.Start(bc); err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	s.mqttURL = "tcp://" + s.broker.Addr()
	return nil
}

// boxPasswordHash is the embedded broker's user lookup: box accounts only.
// The cloud's account is a static user, looked up first, so a box named
// like the cloud user could never log in as it (register refuses it too).
func (s *service) boxPasswordHash(name string) (string, bool) {
	if name == s.cloudUser {
		return "", false
	}
	return s.auth.PasswordHash(name)
}

func embeddedTLS(b *BrokerConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker.cert_file/key_file: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if b.ClientCAFile != "" {
		pool, err := loadPool("broker.client_ca_file", b.ClientCAFile)
		if err != nil {
			return nil, err
		}
		// IfGiven: boxes with a certificate and boxes with a password
		// share the listener; the auth hook then requires one or the other.
		tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

func externalTLS(b *BrokerConfig) (*tls.Config, error) {
	if b.CAFile == "" && b.ClientCertFile == "" {
		return nil, nil // system roots for ssl://, none for tcp://
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.CAFile != "" {
		pool, err := loadPool("broker.ca_file", b.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if b.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.ClientCertFile, b.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker.client_cert_file/client_key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func loadPool(field, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", field, path)
	}
	return pool, nil
}

// readCodeKey reads the 32-byte code key written as 64 hex digits, from a
// file only its owner may read (it decrypts every box's codes).
func readCodeKey(path string) ([]byte, error) {
	b, err := secretfile.Read(path, maxSecretFile)
	if err != nil {
		return nil, fmt.Errorf("cloud.code_key_file: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("cloud.code_key_file %s: want 64 hex digits (32 bytes)", path)
	}
	return k, nil
}

// run serves until ctx is done, then stops everything and closes the
// stores. It returns an error if the first broker connection fails.
func (s *service) run(ctx context.Context) error {
	defer s.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	adminErr := make(chan error, 1)
	go func() { adminErr <- s.adminSrv.Serve(s.adminLn) }()
	publicErr := make(chan error, 1)
	go func() { publicErr <- s.publicSrv.Serve(s.publicLn) }()
	fleetDone := s.runFleetio(ctx)

	serveErr := make(chan error, 1)
	go func() {
		serveErr <- s.cloud.Serve(ctx, s.mqttURL, func(o *mqtt.ClientOptions) {
			o.SetUsername(s.cloudUser).SetPassword(s.cloudPass).SetClientID(s.cfg.Broker.ClientID)
			if s.cloudTLS != nil {
				o.SetTLSConfig(s.cloudTLS)
			}
		})
	}()
	s.log.Info("bridge serving", "broker", s.mqttURL)

	var err error
	served := false
	select {
	case <-ctx.Done():
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
	cancel()
	// Graceful: a webhook being stored finishes (Fleetio would otherwise
	// retry it, which is harmless but noisy), then the worker stops between
	// deliveries, then the stores close.
	shut, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = s.publicSrv.Shutdown(shut)
	_ = s.adminSrv.Shutdown(shut)
	<-fleetDone
	if !served {
		// Serve returns once ctx is done, after its workers stopped: the
		// store must not close under them.
		if e := <-serveErr; e != nil && err == nil {
			err = fmt.Errorf("cloud: %w", e)
		}
	}
	return err
}

// close releases everything startService opened, in reverse order.
func (s *service) close() {
	s.closeOnce.Do(func() {
		if s.adminLn != nil {
			_ = os.Remove(filepath.Join(s.cfg.DataDir, fileAdminAddr))
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
		if s.fleetStore != nil {
			if err := s.fleetStore.Close(); err != nil {
				s.log.Warn("closing fleetio store", "err", err)
			}
		}
		if s.cloud != nil {
			if err := s.cloud.Close(); err != nil {
				s.log.Warn("closing cloud store", "err", err)
			}
		}
		if s.auth != nil {
			if err := s.auth.Close(); err != nil {
				s.log.Warn("closing auth store", "err", err)
			}
		}
	})
}

var errNoService = errors.New("smartbox-bridge serve is not running")
