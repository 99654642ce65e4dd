package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"time"

	"github.com/smartbox-oss/smartbox/sync/broker"
)

// startBroker starts the embedded broker, or takes the external one's URL,
// and sets the cloud's own login either way.
func (s *Service) startBroker() error {
	b := &s.o.Broker
	if b.URL != "" {
		s.mqttURL = b.URL
		s.log.Info("using external broker", "url", b.URL, "user", b.Username)
		return nil
	}
	// Embedded: the cloud's password is the caller's, or a random one kept
	// in the data dir (nobody but the bridge needs it).
	var err error
	if b.Password == "" {
		if b.Password, err = loadOrCreateToken(filepath.Join(s.o.DataDir, FileCloudPassword)); err != nil {
			return err
		}
	}
	hash, err := broker.HashPassword(b.Password)
	if err != nil {
		return fmt.Errorf("hash cloud password: %w", err)
	}
	tc, err := s.brokerTLS()
	if err != nil {
		return err
	}
	s.broker, err = broker.Start(broker.Config{
		Listen:        b.Listen,
		ListenTLS:     b.ListenTLS,
		TLS:           tc,
		BoxCA:         s.ca.cert,
		BoxCertSerial: s.accounts.CertSerial,
		CloudUser:     b.Username,
		Users:         s.boxPasswordHash,
		StaticUsers:   []broker.User{{Name: b.Username, PasswordHash: hash}},
		DataDir:       filepath.Join(s.o.DataDir, FileBrokerDir),
		MessageExpiry: b.MessageExpiry,
		Logger:        s.log,
	})
	if err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	s.mqttURL = "tcp://" + s.broker.Addr()
	return nil
}

// boxPasswordHash is the embedded broker's user lookup: box accounts only.
// The cloud's account is a static user, looked up first, so a box named
// like the cloud user could never log in as it (register refuses it too).
func (s *Service) boxPasswordHash(name string) (string, bool) {
	if name == s.o.Broker.Username {
		return "", false
	}
	return s.accounts.PasswordHash(name)
}

// brokerTLS is the embedded TLS listener's config: the caller's, or a
// server certificate issued now by the bridge's CA; the bridge's CA always
// among the client CAs, a client certificate optional (boxes with a
// password share the listener; the auth hook requires one or the other).
func (s *Service) brokerTLS() (*tls.Config, error) {
	b := &s.o.Broker
	if b.ListenTLS == "" {
		return b.TLS, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.TLS != nil {
		tc = b.TLS.Clone()
	}
	if len(tc.Certificates) == 0 && tc.GetCertificate == nil {
		names := b.TLSNames
		if len(names) == 0 {
			names = DefaultTLSNames(b.ListenTLS)
		}
		cert, err := s.ca.issueServer(names, time.Now())
		if err != nil {
			return nil, fmt.Errorf("embedded broker TLS: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
		s.log.Info("embedded broker TLS certificate issued by the bridge CA", "names", names, "not_after", cert.Leaf.NotAfter)
	}
	pool := x509.NewCertPool()
	if tc.ClientCAs != nil {
		pool = tc.ClientCAs.Clone()
	}
	pool.AddCert(s.ca.cert)
	tc.ClientCAs = pool
	if tc.ClientAuth == tls.NoClientCert {
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}
