package bridge

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsCollector reads the bridge's counters and the boxes' statuses at
// scrape time: the counters live in sync/bookings and sync/cloud already, so
// there is nothing to keep in step here. With replicas, each serves its own
// /metrics: the counters (_total) count what this replica did, so sum them
// across replicas; the gauges read from the store (boxes, queue depth) are
// the whole service's, the same on every replica. replica_info names the
// replica and its store engine.
type metricsCollector struct {
	s *Service

	webhooks, grants, fleetioErrors, notifications, overdue, reconciled, echoes *prometheus.Desc
	queueDepth, boxes, connected, cloudDropped                                  *prometheus.Desc
	keypadAttacks, keypadClosures, returnsUnconfirmed                           *prometheus.Desc
	replica, notLive                                                            *prometheus.Desc
}

const metricsNS = "smartbox_bridge"

func newMetricsCollector(s *Service) *metricsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNS, "", name), help, labels, nil)
	}
	return &metricsCollector{
		s:             s,
		webhooks:      d("fleetio_webhooks_total", "Fleetio webhook deliveries by outcome: accepted (queued), rejected (401/400/413), ignored (event not acted on), duplicate, busy (503: too many bodies being read).", "outcome"),
		grants:        d("fleetio_grants_total", "Booking grants the Fleetio integration pushed to or revoked in the cloud.", "action"),
		fleetioErrors: d("fleetio_api_errors_total", "Failed calls to Fleetio's API (a 404 is an answer, not counted)."),
		notifications: d("notifications_total", "Driver and admin notifications by outcome.", "outcome"),
		overdue:       d("fleetio_keys_overdue_total", "Keys found not returned after their booking ended."),
		reconciled:    d("fleetio_reconcile_repairs_total", "Bookings the periodic reconcile had to repair."),
		echoes:        d("fleetio_echoes_skipped_total", "Webhooks that only echoed the bridge's own write-back, done without reading the assignment back."),
		queueDepth:    d("fleetio_queue_depth", "Webhook deliveries waiting to be processed."),
		boxes:         d("boxes", "Registered boxes by their last status: online, offline, or unknown (never sent one).", "state"),
		connected:     d("fleetio_connected", "1 when the Fleetio integration is connected."),
		cloudDropped:  d("cloud_dropped_total", "Box messages (event_*: events) the cloud dropped, refused, cut short or expired, by reason.", "reason"),
		keypadAttacks: d("keypad_attacks_total", "keypad_attack events from boxes: wrong codes past a box's alert threshold (the admin is told)."),
		keypadClosures: d("keypad_closures_total",
			"keypad_closed events from boxes: wrong codes spent a box's guess budget, no code is checked until a refill or restore-keypad (the admin is told)."),
		returnsUnconfirmed: d("fleetio_returns_unconfirmed_total",
			"Fob returns of a booking's key that the slot's sensor did not confirm: the key still counts as out."),
		notLive: d("fleetio_not_live_alerts_total",
			"Bookings whose grant the box had not shown it holds as their start neared: the admin was told (once per grant revision)."),
		replica: d("replica_info", "1, labelled with this replica's name and its store engine (bbolt: one process; postgres: one of the replicas on a database).",
			"replica", "store"),
	}
}

func (m *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.webhooks, m.grants, m.fleetioErrors, m.notifications, m.overdue, m.reconciled, m.echoes,
		m.queueDepth, m.boxes, m.connected, m.cloudDropped, m.keypadAttacks, m.keypadClosures, m.returnsUnconfirmed, m.replica, m.notLive} {
		ch <- d
	}
}

func (m *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	engine := "bbolt"
	if m.s.pool != nil {
		engine = "postgres"
	}
	gauge(m.replica, 1, m.s.o.Store.Replica, engine)
	if b := m.s.fleet; b != nil {
		st := b.Stats()
		counter(m.webhooks, st.WebhooksAccepted, "accepted")
		counter(m.webhooks, st.WebhooksRejected, "rejected")
		counter(m.webhooks, st.WebhooksIgnored, "ignored")
		counter(m.webhooks, st.WebhooksDuplicate, "duplicate")
		counter(m.webhooks, st.WebhooksBusy, "busy")
		counter(m.keypadAttacks, st.KeypadAttacks)
		counter(m.keypadClosures, st.KeypadClosures)
		counter(m.returnsUnconfirmed, st.ReturnsUnconfirmed)
		counter(m.grants, st.GrantsPushed, "pushed")
		counter(m.grants, st.GrantsRevoked, "revoked")
		counter(m.fleetioErrors, st.FleetioErrors)
		counter(m.notifications, st.NotificationsSent, "sent")
		counter(m.notifications, st.NotificationsFailed, "failed")
		counter(m.overdue, st.Overdue)
		counter(m.reconciled, st.Reconciled)
		counter(m.echoes, st.EchoesSkipped)
		counter(m.notLive, st.NotLiveAlerts)
		gauge(m.queueDepth, float64(st.QueueDepth))
		gauge(m.connected, boolGauge(m.s.fleetioConnected()))
	}
	if c := m.s.cloud; c != nil {
		var online, offline, unknown float64
		ids, err := c.Boxes()
		if err == nil {
			for _, id := range ids {
				st, ok, err := c.Status(id)
				switch {
				case err != nil || !ok:
					unknown++
				case st.Online:
					online++
				default:
					offline++
				}
			}
			gauge(m.boxes, online, "online")
			gauge(m.boxes, offline, "offline")
			gauge(m.boxes, unknown, "unknown")
		}
		cs := c.Stats()
		for _, r := range []struct {
			reason string
			v      uint64
		}{
			{"wrong_box", cs.WrongBox}, {"malformed", cs.Malformed}, {"unknown_box", cs.UnknownBox},
			{"events_throttled", cs.EventsThrottled}, {"sync_throttled", cs.SyncThrottled}, {"queue_full", cs.QueueFull},
			{"duplicate_events", cs.DuplicateEvents}, {"events_past_gap", cs.EventsPastGap},
			// Events, not messages: cut to the cloud's size bounds (stored
			// and acked), held back by a box's byte budget (not acked, sent
			// again), deleted after the retention.
			{"event_oversize", cs.EventsOversize}, {"event_over_budget", cs.EventsOverBudget},
			{"event_expired", cs.EventsExpired},
		} {
			counter(m.cloudDropped, r.v, r.reason)
		}
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves /metrics in Prometheus' text format: the bridge's
// own metrics, and the Go runtime's and the process's.
func (s *Service) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetricsCollector(s), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}})
}

// slogPrinter passes promhttp's errors to the service's log.
type slogPrinter struct{ s *Service }

func (p slogPrinter) Println(v ...any) { p.s.log.Warn("metrics", "err", v) }
