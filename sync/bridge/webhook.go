package bridge

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// WebhookPath is where Fleetio's webhook is pointed.
const WebhookPath = "/webhooks/fleetio"

// Webhook returns the handler of POST /webhooks/fleetio. It answers:
//
//	405 not a POST
//	413 body over Options.MaxBody
//	503 the integration is not connected (Fleetio retries later)
//	401 bad or missing signature or Authorization: nothing stored
//	400 not a webhook delivery, or an assignment event without an assignment
//	200 stored (or a duplicate, or an event the bridge does not handle)
//	500 the store failed: Fleetio retries
//
// It only stores; the worker does the rest, so that the answer is fast.
func (b *Bridge) Webhook() http.Handler {
	return http.HandlerFunc(b.serveWebhook)
}

func (b *Bridge) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	log := b.log.With("remote", r.RemoteAddr)
	body, err := readBody(w, r, b.o.MaxBody)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			b.stats.webhooksRejected.Add(1)
			log.Warn("webhook refused: body too large", "limit", mbe.Limit)
			httpError(w, http.StatusRequestEntityTooLarge, "body over the limit")
			return
		}
		b.stats.webhooksRejected.Add(1)
		log.Warn("webhook: reading body", "err", err)
		httpError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	st, err := b.o.Store.Settings()
	if err != nil {
		if errors.Is(err, ErrNotConnected) {
			httpError(w, http.StatusServiceUnavailable, "fleetio integration not connected")
			return
		}
		log.Error("webhook: settings", "err", err)
		httpError(w, http.StatusInternalServerError, "store error")
		return
	}
	v := fleetio.WebhookVerifier{Secret: []byte(st.WebhookSecret), Authorization: st.Authorization}
	if err := v.Verify(r.Header, body); err != nil {
		b.stats.webhooksRejected.Add(1)
		log.Warn("webhook refused", "err", err)
		httpError(w, http.StatusUnauthorized, "signature check failed")
		return
	}
	wh, err := fleetio.ParseWebhook(body)
	if err != nil {
		b.stats.webhooksRejected.Add(1)
		log.Warn("webhook refused: malformed", "err", err)
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	log = log.With("delivery", wh.ID, "event", wh.Event)
	if !handledEvent(wh.Event) {
		// 2xx: a webhook subscribed to more events must not be retried and
		// then disabled by Fleetio for events we do not act on.
		b.stats.webhooksIgnored.Add(1)
		log.Info("webhook ignored: event not handled")
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
		return
	}
	if _, err := fleetio.ParseAssignment(wh.Payload); err != nil {
		b.stats.webhooksRejected.Add(1)
		log.Warn("webhook refused: payload", "err", err)
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	added, err := b.o.Store.AddDelivery(Delivery{ID: wh.ID, Event: wh.Event, Body: body, ReceivedAt: b.o.Now()})
	if errors.Is(err, ErrNotConnected) { // disconnected while this one was checked
		httpError(w, http.StatusServiceUnavailable, "fleetio integration not connected")
		return
	}
	if err != nil {
		log.Error("webhook: store delivery", "err", err)
		httpError(w, http.StatusInternalServerError, "store error")
		return
	}
	if !added {
		b.stats.webhooksDuplicate.Add(1)
		log.Info("webhook duplicate: already stored")
		writeJSON(w, http.StatusOK, map[string]string{"status": "duplicate"})
		return
	}
	b.stats.webhooksAccepted.Add(1)
	log.Info("webhook stored")
	b.Wake()
	writeJSON(w, http.StatusOK, map[string]string{"status": "queued"})
}

// handledEvent: vehicle_assignment_* (the names are inferred from Fleetio's
// pattern, so any assignment event is taken; the read-back decides).
func handledEvent(ev string) bool { return strings.HasPrefix(ev, "vehicle_assignment_") }

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	defer rd.Close()
	return io.ReadAll(rd)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
