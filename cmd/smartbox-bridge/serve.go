package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"

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
// broker connection failed), then closes it. Under systemd (Type=notify,
// dist/smartbox-bridge.service) it says READY=1 once the cloud is
// subscribed at the broker, when a box's message is heard from the first,
// and STOPPING=1 when it begins to stop; outside systemd (no
// NOTIFY_SOCKET) both are no-ops.
func (s *service) run(ctx context.Context, log *slog.Logger) error {
	notify := func(state string) {
		if _, err := sdnotify.SdNotify(false, state); err != nil {
			log.Warn("telling systemd", "state", state, "err", err)
		}
	}
	select {
	case <-ctx.Done():
	case <-s.Done():
	case <-s.Ready():
		notify(sdnotify.SdNotifyReady)
		select {
		case <-ctx.Done():
		case <-s.Done():
		}
	}
	notify(sdnotify.SdNotifyStopping)
	return s.Close()
}

var errNoService = errors.New("smartbox-bridge serve is not running")
