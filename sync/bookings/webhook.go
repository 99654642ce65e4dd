package bookings

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// WebhookPath is where Fleetio's webhook is pointed.
const WebhookPath = "/webhooks/fleetio"

// Webhook returns the handler of POST /webhooks/fleetio. It answers:
//
//	405 not a POST
//	401 missing or malformed signature header, or a wrong Authorization
//	    (when one is configured): refused before the body is read
//	503 the integration is not connected (Fleetio retries later), or
//	    Options.MaxBodiesInFlight bodies are being read already, or
//	    Options.MaxBodiesPerAddress from the client's address (Retry-After):
//	    refused before the body is read
//	413 body over Options.MaxBody (by its Content-Length: unread)
//	408 the body did not arrive within Options.BodyTimeout
//	401 the signature does not match the body: nothing stored
//	400 not a webhook delivery, or an assignment event without an assignment
//	200 stored (or a duplicate, or an event the bridge does not handle)
//	500 the store failed: Fleetio retries
//
// Nothing that cannot be a delivery costs a body read, and at most
// Options.MaxBodiesInFlight bodies of at most Options.MaxBody bytes are in
// memory at once, at most Options.MaxBodiesPerAddress of them for one
// client, each for at most Options.BodyTimeout. It only stores; the worker does the rest, so that the
// answer is fast.
func (b *Integration) Webhook() http.Handler {
	return http.HandlerFunc(b.serveWebhook)
}

// busyRetryAfter is the Retry-After (seconds) of a 503 when every body slot
// is taken: slow clients hold one for at most Options.BodyTimeout (5 s).
const busyRetryAfter = "10"

func (b *Integration) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuseUnread(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	log := b.log.With("remote", r.RemoteAddr)
	// Everything that can be judged from the headers is, before the body:
	// an unauthenticated client must not make the bridge read a megabyte.
	if _, err := fleetio.ParseSignatureHeader(r.Header.Get(fleetio.SignatureHeader)); err != nil {
		b.stats.webhooksRejected.Add(1)
		log.Warn("webhook refused before its body", "err", err)
		refuseUnread(w, http.StatusUnauthorized, "signature check failed")
		return
	}
	st, err := b.o.Store.Settings()
	if err != nil {
		if errors.Is(err, ErrNotConnected) {
			refuseUnread(w, http.StatusServiceUnavailable, "fleetio integration not connected")
			return
		}
		log.Error("webhook: settings", "err", err)
		refuseUnread(w, http.StatusInternalServerError, "store error")
		return
	}
	if err := fleetio.VerifyAuthorization(st.Authorization, r.Header.Get("Authorization")); err != nil {
		b.stats.webhooksRejected.Add(1)
		log.Warn("webhook refused before its body", "err", err)
		refuseUnread(w, http.StatusUnauthorized, "signature check failed")
		return
	}
	if r.ContentLength > b.o.MaxBody {
		b.stats.webhooksRejected.Add(1)
		log.Warn("webhook refused: body too large", "limit", b.o.MaxBody, "content_length", r.ContentLength)
		refuseUnread(w, http.StatusRequestEntityTooLarge, "body over the limit")
		return
	}
	client := b.bodySlots.client(r)
	release, ok, perAddr := b.bodySlots.take(client)
	if !ok {
		b.stats.webhooksBusy.Add(1)
		if perAddr {
			log.Warn("webhook refused: this address has its share of bodies being read", "client", client,
				"limit", b.o.MaxBodiesPerAddress)
		} else {
			log.Warn("webhook refused: too many bodies being read", "limit", b.o.MaxBodiesInFlight)
		}
		w.Header().Set("Retry-After", busyRetryAfter)
		refuseUnread(w, http.StatusServiceUnavailable, "busy, retry later")
		return
	}
	defer release()
	// The slot is held while the body arrives: a client that has shown
	// nothing but a well-formed header holds it for BodyTimeout at most,
	// not the server's whole read timeout. (A ResponseWriter without a
	// connection, as in tests, has no deadline to set.)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(b.o.BodyTimeout))
	body, err := readBody(w, r, b.o.MaxBody)
	if err != nil {
		b.stats.webhooksRejected.Add(1)
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			log.Warn("webhook refused: body too large", "limit", mbe.Limit)
			httpError(w, http.StatusRequestEntityTooLarge, "body over the limit")
		case errors.Is(err, os.ErrDeadlineExceeded):
			log.Warn("webhook refused: body too slow", "limit", b.o.BodyTimeout)
			w.Header().Set("Connection", "close")
			httpError(w, http.StatusRequestTimeout, "body not received in time")
		default:
			log.Warn("webhook: reading body", "err", err)
			httpError(w, http.StatusBadRequest, "cannot read body")
		}
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

// refuseUnread answers without reading the request's body, and makes the
// server drop the connection rather than read what is left of it: "Connection:
// close" stops net/http's post-handler discard of up to 256 KiB, and a read
// deadline of now ends the final Close's read at once, so a slow client's
// body is not waited for. (A ResponseWriter without a connection, as in
// tests, has no deadline to set.)
func refuseUnread(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	httpError(w, status, msg)
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
