package bridge

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/sync/bookings"
)

// startBookings listens on the public address and makes the integration
// on the store openStores opened. The public listener is opened
// first so that a PublicURL left out can be derived from the port the
// system picked.
func (s *Service) startBookings() error {
	fo := &s.o.Fleetio
	var err error
	if s.publicLn, err = net.Listen("tcp", fo.PublicListen); err != nil {
		return fmt.Errorf("fleetio.public_listen: listen on %s: %w", fo.PublicListen, err)
	}
	s.publicURL = strings.TrimRight(fo.PublicURL, "/")
	if s.publicURL == "" {
		s.publicURL = "http://" + s.publicLn.Addr().String()
	}
	bo := bookings.Options{
		Store:         s.bookingsStore,
		Cloud:         s.cloud,
		Notifier:      s.o.Notifier,
		Zone:          s.o.Zone,
		Admin:         fo.Admin,
		AdminMethod:   fo.AdminMethod,
		AdminLink:     fo.AdminLink,
		AccessBaseURL: s.publicURL,
		MaxBody:       fo.MaxBody,
		// At most a few slow bodies per client; a body has
		// bookings.DefaultBodyTimeout to arrive.
		MaxBodiesPerAddress: fo.MaxBodiesPerAddress,
		TrustedProxies:      fo.TrustedProxies,
		OverdueGrace:        fo.OverdueGrace,
		ReturnSettle:        fo.ReturnSettle,
		FleetioPerMinute:    fo.RequestsPerMinute,
		FleetioBurst:        fo.RequestBurst,
		Logger:              s.log,
	}
	bo.Replica = s.o.Store.Replica
	if fo.Tune != nil {
		fo.Tune(&bo)
	}
	if s.pool != nil && bo.FleetioBudget == nil && bo.FleetioPerMinute >= 0 {
		// One request budget for every replica: Fleetio's limit is the
		// account's, not a process's.
		perMinute, burst := bo.FleetioPerMinute, bo.FleetioBurst
		if perMinute == 0 {
			perMinute = bookings.DefaultFleetioPerMinute
		}
		if burst == 0 {
			burst = bookings.DefaultFleetioBurst
		}
		if bo.FleetioBudget, err = bookings.NewPostgresBudget(context.Background(), s.pool, "fleetio", perMinute, burst); err != nil {
			return fmt.Errorf("fleetio request budget: %w", err)
		}
	}
	if s.fleet, err = bookings.New(bo); err != nil {
		return fmt.Errorf("fleetio integration: %w", err)
	}
	// Box events (key taken, returned, codes refused) are tied to bookings
	// as the cloud stores them; the maintenance loop catches up on any
	// stored while the bridge was down.
	s.cloud.OnEvents(s.fleet.HandleEvents)
	s.cloud.OnStatus(s.fleet.HandleStatus) // the live receipt: a box holding a booking's grant
	s.publicSrv = publicLimits.server(s.publicHandler(), s.log)
	s.log.Info("public endpoint listening", "addr", s.publicLn.Addr().String(), "webhook_url", s.WebhookURL())
	return nil
}

// publicHandler is what the internet reaches: Fleetio's webhooks, the
// drivers' access pages and a health check. Nothing here needs the admin
// token, and nothing here changes a grant by itself.
func (s *Service) publicHandler() http.Handler {
	mux := http.NewServeMux()
	var webhook http.Handler = s.fleet.Webhook()
	if wrap := s.o.Fleetio.WrapWebhook; wrap != nil {
		webhook = wrap(webhook)
	}
	mux.Handle(bookings.WebhookPath, webhook)
	mux.Handle(bookings.AccessPath, s.fleet.Access())
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	return mux
}

// healthz answers 200 "ok" while the service runs; the body says whether
// Fleetio is connected and how deep the queue is, for a person looking.
func (s *Service) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "ok\nfleetio_connected %t\nqueue_depth %d\n", s.fleetioConnected(), s.bookingsStore.QueueDepth())
}

// readyPingTimeout bounds /readyz's check of the database: a load balancer
// polls it every few seconds, and a database slower than this to answer a
// ping could not take webhooks in time either.
const readyPingTimeout = time.Second

// readyz answers 200 "ready" when this replica may take traffic: subscribed
// to the boxes' topics at the broker, its database answering, and not
// shutting down; 503 with the failing check otherwise. /healthz says the
// process is alive; this says whether to send it webhooks.
func (s *Service) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	notReady := func(why string) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", why)
	}
	select {
	case <-s.stopping:
		notReady("shutting down")
		return
	default:
	}
	select {
	case <-s.cloud.Subscribed():
	default:
		notReady("not yet subscribed at the broker")
		return
	}
	if s.pool != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyPingTimeout)
		defer cancel()
		if err := s.pool.Ping(ctx); err != nil {
			notReady("database not answering")
			s.log.Warn("readyz: database ping", "err", err)
			return
		}
	}
	fmt.Fprintf(w, "ready\n")
}

// fleetioConnected says whether the integration has its settings.
func (s *Service) fleetioConnected() bool { return s.fleet != nil && s.fleet.Connected() }

// runBookings runs the queue worker and the maintenance loop (reconcile and
// overdue keys every Fleetio.ReconcileEvery) until ctx ends. The channel
// closes once both have stopped: the store must not close under them.
func (s *Service) runBookings(ctx context.Context) <-chan struct{} {
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.fleet.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("fleetio queue worker stopped", "err", err)
		}
	})
	if every := s.o.Fleetio.ReconcileEvery; every > 0 {
		// Reconcile, expiry and overdue keys (bookings.Maintain) every
		// interval; and bookings whose grant the box has not shown it
		// holds as their start nears, every minute. On PostgreSQL each
		// once per round across replicas (the alert is once per grant
		// revision anyway), and still while any one replica is up.
		wg.Go(func() { s.everyRound(ctx, "maintenance", every, s.fleet.Maintain) })
		wg.Go(func() { s.everyRound(ctx, "live", liveCheckEvery, s.checkLive) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// liveCheckEvery is how often bookings not yet live at their box are
// checked (bookings.CheckLive): a minute is well inside the alert's lead
// (bookings.DefaultLiveAlertBefore, 10 minutes) and costs one scan.
const liveCheckEvery = time.Minute

func (s *Service) checkLive(ctx context.Context) {
	if n, err := s.fleet.CheckLive(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("live check", "err", err, "raised", n)
	} else if n > 0 {
		s.log.Warn("bookings not live at their box as they start: admin told", "raised", n)
	}
}

// everyRound runs job at once and then every interval until ctx ends; on
// PostgreSQL only in the rounds this replica takes (takeRound).
func (s *Service) everyRound(ctx context.Context, name string, every time.Duration, job func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		mine := true
		if s.pool != nil {
			var err error
			if mine, err = takeRound(ctx, s.pool, name, s.o.Store.Replica, every); err != nil && ctx.Err() == nil {
				s.log.Error("periodic work: round", "job", name, "err", err) // the next tick asks again
			}
		}
		if mine {
			job(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
