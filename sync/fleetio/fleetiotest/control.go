package fleetiotest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// ControlHandler is the control API under /_fake/: the fake has no UI, so
// these routes stand in for a fleet manager's clicks when the fake runs as a
// process (cmd/fake-fleetio) and no Go code can call its methods.
//
//	POST   /_fake/vehicle_assignments      {"vehicle_id", "contact_id", "started_at", "ended_at"}: 201, the assignment
//	PATCH  /_fake/vehicle_assignments/{id} the fields given (ended_at null: open-ended): 200, the assignment
//	DELETE /_fake/vehicle_assignments/{id} 200, the assignment as it was
//	PUT    /_fake/webhook                  {"url"}: where webhooks go from now on ("" records only)
//	GET    /_fake/deliveries               the webhook delivery log
//
// Every request needs "Authorization: Token <Options.APIKey>" (no
// Account-Token: a fleet manager is not an API client). Errors are
// {"error": "..."}: 401 without the key, 400 for a bad body, 404 for an
// unknown assignment, 422 for a change the account refuses. Each change
// queues its vehicle_assignment_* webhook, as the API's own changes do.
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(w http.ResponseWriter, r *http.Request) (any, int, error)) {
		mux.Handle(pattern, s.controlAuth(h))
	}
	handle("POST /_fake/vehicle_assignments", s.controlCreate)
	handle("PATCH /_fake/vehicle_assignments/{id}", s.controlUpdate)
	handle("DELETE /_fake/vehicle_assignments/{id}", s.controlDelete)
	handle("PUT /_fake/webhook", s.controlWebhook)
	handle("GET /_fake/deliveries", s.controlDeliveries)
	return mux
}

// controlAuth checks the API key and writes h's answer or error as JSON.
func (s *Server) controlAuth(h func(w http.ResponseWriter, r *http.Request) (any, int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Token ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.APIKey)) != 1 {
			writeError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		v, status, err := h(w, r)
		if err != nil {
			writeError(w, status, err.Error())
			return
		}
		writeJSON(w, status, v)
	}
}

// assignmentChange is the body of a POST or PATCH; absent fields are
// unchanged.
type assignmentChange struct {
	VehicleID *int64          `json:"vehicle_id"`
	ContactID *int64          `json:"contact_id"`
	StartedAt *time.Time      `json:"started_at"`
	EndedAt   json.RawMessage `json:"ended_at"` // a time, or null for open-ended
}

func (c assignmentChange) apply(a *fleetio.VehicleAssignment) error {
	if c.VehicleID != nil {
		a.VehicleID = *c.VehicleID
	}
	if c.ContactID != nil {
		a.ContactID = *c.ContactID
	}
	if c.StartedAt != nil {
		a.StartedAt = *c.StartedAt
	}
	if len(c.EndedAt) > 0 {
		var end *time.Time
		if err := json.Unmarshal(c.EndedAt, &end); err != nil {
			return fmt.Errorf("ended_at: %w", err)
		}
		a.EndedAt = end
	}
	return nil
}

// readChange decodes a change; an unknown field is refused so that a typo
// ("endet_at") does not pass as "no change".
func readChange(w http.ResponseWriter, r *http.Request) (assignmentChange, error) {
	var c assignmentChange
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return c, fmt.Errorf("body: %w", err)
	}
	return c, nil
}

// controlID is the {id} of a control path.
func controlID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("assignment id %q: not a number", r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) controlCreate(w http.ResponseWriter, r *http.Request) (any, int, error) {
	c, err := readChange(w, r)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	var a fleetio.VehicleAssignment
	if err := c.apply(&a); err != nil {
		return nil, http.StatusBadRequest, err
	}
	out, err := s.CreateAssignment(a)
	if err != nil {
		return nil, http.StatusUnprocessableEntity, err
	}
	return out, http.StatusCreated, nil
}

func (s *Server) controlUpdate(w http.ResponseWriter, r *http.Request) (any, int, error) {
	id, err := controlID(r)
	if err != nil {
		return nil, http.StatusNotFound, err
	}
	c, err := readChange(w, r)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	if _, ok := s.Assignment(id); !ok {
		return nil, http.StatusNotFound, fmt.Errorf("assignment %d: %w", id, ErrNotFound)
	}
	var applyErr error
	out, err := s.UpdateAssignment(id, func(a *fleetio.VehicleAssignment) { applyErr = c.apply(a) })
	switch {
	case applyErr != nil:
		return nil, http.StatusBadRequest, applyErr
	case err != nil:
		return nil, http.StatusUnprocessableEntity, err
	}
	return out, http.StatusOK, nil
}

func (s *Server) controlDelete(w http.ResponseWriter, r *http.Request) (any, int, error) {
	id, err := controlID(r)
	if err != nil {
		return nil, http.StatusNotFound, err
	}
	out, err := s.DeleteAssignment(id)
	if err != nil {
		return nil, http.StatusNotFound, err
	}
	return out, http.StatusOK, nil
}

// controlWebhook points the webhook elsewhere (a bridge started after the
// fake): later deliveries, and retries of pending ones, go there.
func (s *Server) controlWebhook(w http.ResponseWriter, r *http.Request) (any, int, error) {
	var body struct {
		URL string `json:"url"`
	}
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12))
	d.DisallowUnknownFields()
	if err := d.Decode(&body); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("body: %w", err)
	}
	if body.URL != "" {
		if u, err := url.Parse(body.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, http.StatusBadRequest, fmt.Errorf("url %q: want http(s)://host/path", body.URL)
		}
	}
	s.SetWebhookURL(body.URL)
	return body, http.StatusOK, nil
}

// controlDelivery is one entry of the delivery log as the control API shows
// it.
type controlDelivery struct {
	ID        int64           `json:"id"`
	Event     string          `json:"event"`
	Body      json.RawMessage `json:"body"`
	Attempts  []Attempt       `json:"attempts"`
	Delivered bool            `json:"delivered"`
	GaveUp    bool            `json:"gave_up"`
}

func (s *Server) controlDeliveries(w http.ResponseWriter, r *http.Request) (any, int, error) {
	out := []controlDelivery{}
	for _, d := range s.Deliveries() {
		out = append(out, controlDelivery{d.ID, d.Event, d.Body, d.Attempts, d.Delivered, d.GaveUp})
	}
	return out, http.StatusOK, nil
}
