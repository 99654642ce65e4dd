package bridge

import (
	"fmt"
	"path/filepath"

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
	s.broker, err = broker.Start(broker.Config{
		Listen:        b.Listen,
		ListenTLS:     b.ListenTLS,
		TLS:           b.TLS,
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
