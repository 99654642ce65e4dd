package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/smartbox-oss/smartbox/sync/bridge"
)

// service is a started bridge (sync/bridge) as serve runs it.
type service struct {
	*bridge.Service
}

// startService maps the config to the bridge's options, starts it, and
// prints the signing key line to stdout (public: a technician copies it to
// `smartboxctl provision`).
func startService(cfg *Config, log *slog.Logger, stdout io.Writer) (*service, error) {
	o, err := cfg.bridgeOptions(log)
	if err != nil {
		return nil, err
	}
	// Not ctx: run's ctx stops it, after the start has been reported.
	s, err := bridge.Start(context.Background(), o)
	if err != nil {
		return nil, err
	}
	if s.SigningKeyCreated() {
		fmt.Fprintf(stdout, "created signing key %s; provision boxes with:\n", filepath.Join(cfg.DataDir, bridge.FileSigningKey))
	} else {
		fmt.Fprintf(stdout, "signing key (provision boxes with):\n")
	}
	fmt.Fprintf(stdout, "  %s\n", s.SigningKeyLine())
	return &service{s}, nil
}

// run serves until ctx is done or the bridge stops by itself (its first
// broker connection failed), then closes it.
func (s *service) run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.Done():
	}
	return s.Close()
}

var errNoService = errors.New("smartbox-bridge serve is not running")
