package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// fileFleetioDB is the Fleetio integration's store (sync/bookings): settings
// (0600), links, the webhook queue, bookings, reservations.
const fileFleetioDB = "fleetio.db"

// startFleetio opens the integration's store, listens on the public address
// and makes the bridge. The public listener is opened first so that a
// public_url left out can be derived from the port the system picked.
func (s *service) startFleetio() error {
	fc := &s.cfg.Fleetio
	var err error
	if s.fleetStore, err = bookings.OpenStore(filepath.Join(s.cfg.DataDir, fileFleetioDB)); err != nil {
		return fmt.Errorf("fleetio store: %w", err)
	}
	if s.publicLn, err = net.Listen("tcp", fc.PublicListen); err != nil {
		return fmt.Errorf("fleetio.public_listen: listen on %s: %w", fc.PublicListen, err)
	}
	s.publicURL = strings.TrimRight(fc.PublicURL, "/")
	if s.publicURL == "" {
		s.publicURL = "http://" + s.publicLn.Addr().String()
	}
	proxies, err := fc.trustedProxies() // checked by Validate
	if err != nil {
		return fmt.Errorf("fleetio.trusted_proxies: %w", err)
	}
	n, zone, err := newNotifier(s.cfg.Notify, s.log)
	if err != nil {
		return err
	}
	admin, adminMethod := s.adminRecipient()
	s.fleet, err = bookings.New(bookings.Options{
		Store:         s.fleetStore,
		Cloud:         s.cloud,
		Notifier:      n,
		Zone:          zone,
		Admin:         admin,
		AdminMethod:   adminMethod,
		AccessBaseURL: s.publicURL,
		MaxBody:       fc.MaxBody,
		// At most a few slow bodies per client; a body has
		// bookings.DefaultBodyTimeout to arrive.
		MaxBodiesPerAddress: fc.MaxBodiesPerAddress,
		TrustedProxies:      proxies,
		OverdueGrace:        fc.OverdueGrace.Duration,
		ReturnSettle:        fc.ReturnSettle.Duration,
		Logger:              s.log,
		// There is no admin web page yet: the admin link of a Prompt
		// reservation is the command that makes the booking.
		AdminLink: func(id string) string { return "smartbox-bridge fleetio book " + id },
	})
	if err != nil {
		return fmt.Errorf("fleetio bridge: %w", err)
	}
	// Box events (key taken, returned, codes refused) are tied to bookings
	// as the cloud stores them; the maintenance loop catches up on any
	// stored while the bridge was down.
	s.cloud.OnEvents(s.fleet.HandleEvents)
	s.publicSrv = publicLimits.server(s.publicHandler(), s.log)
	s.log.Info("public endpoint listening", "addr", s.publicLn.Addr().String(), "webhook_url", s.publicURL+bookings.WebhookPath)
	return nil
}

// publicHandler is what the internet reaches: Fleetio's webhooks, the
// drivers' access pages and a health check. Nothing here needs the admin
// token, and nothing here changes a grant by itself.
func (s *service) publicHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(bookings.WebhookPath, s.fleet.Webhook())
	mux.Handle(bookings.AccessPath, s.fleet.Access())
	mux.HandleFunc("GET /healthz", s.healthz)
	return mux
}

// healthz answers 200 "ok" while the service runs; the body says whether
// Fleetio is connected and how deep the queue is, for a person looking.
func (s *service) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "ok\nfleetio_connected %t\nqueue_depth %d\n", s.fleetioConnected(), s.fleetStore.QueueDepth())
}

// fleetioConnected says whether the integration has its settings.
func (s *service) fleetioConnected() bool { return s.fleet != nil && s.fleet.Connected() }

// adminRecipient is who hears of Prompt reservations and overdue keys, and
// the channel configured for them (email first).
func (s *service) adminRecipient() (notify.Recipient, notify.Method) {
	fc, n := &s.cfg.Fleetio, &s.cfg.Notify
	r := notify.Recipient{Name: fc.AdminName, Email: fc.AdminEmail, Phone: fc.AdminPhone}
	switch {
	case r.Email != "" && n.Email != nil:
		return r, notify.MethodEmail
	case r.Phone != "" && n.SMS != nil:
		return r, notify.MethodSMS
	}
	return r, ""
}

// runFleetio runs the queue worker and the maintenance loop (reconcile and
// overdue keys every fleetio.reconcile_every) until ctx ends. The channel
// closes once both have stopped: the store must not close under them.
func (s *service) runFleetio(ctx context.Context) <-chan struct{} {
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.fleet.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("fleetio queue worker stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := s.fleet.RunMaintenance(ctx, s.cfg.Fleetio.ReconcileEvery.Duration); err != nil && ctx.Err() == nil {
			s.log.Error("fleetio maintenance stopped", "err", err)
		}
	})
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}
