package main

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// The Fleetio integration's admin API (same token, same rules as the rest:
// secrets go in, never out).
//
//	GET    /v1/fleetio/status
//	POST   /v1/fleetio/connect                    {api_key, account_token, webhook_secret, authorization, base_url, code_mode}
//	POST   /v1/fleetio/disconnect
//	PUT    /v1/fleetio/code-mode                  {mode}
//	GET    /v1/fleetio/vehicles                   Fleetio's vehicles, each with its link
//	PUT    /v1/fleetio/links/{vehicle}            {box_id, key_id, method}
//	DELETE /v1/fleetio/links/{vehicle}
//	GET    /v1/fleetio/reservations               pending Prompt reservations
//	POST   /v1/fleetio/reservations/{assignment}/book {from, until, contact}
//	GET    /v1/fleetio/drivers                    drivers with a code (never the code)
//	PUT    /v1/fleetio/drivers/{contact}/code     {code}
//	DELETE /v1/fleetio/drivers/{contact}/code
//	POST   /v1/fleetio/reconcile
//	GET    /v1/bookings                           every grant of every box, Fleetio's marked, with events

type connectRequest struct {
	APIKey        string            `json:"api_key"`
	AccountToken  string            `json:"account_token"`
	WebhookSecret string            `json:"webhook_secret"`
	Authorization string            `json:"authorization,omitempty"`
	BaseURL       string            `json:"base_url,omitempty"`
	CodeMode      bookings.CodeMode `json:"code_mode,omitempty"`
}

type connectResponse struct {
	User       fleetio.User `json:"user"`
	WebhookURL string       `json:"webhook_url"` // give this to Fleetio
}

type fleetioStatus struct {
	Connected  bool              `json:"connected"`
	BaseURL    string            `json:"base_url,omitempty"`
	CodeMode   bookings.CodeMode `json:"code_mode"`
	WebhookURL string            `json:"webhook_url"`
	AccessURL  string            `json:"access_url"`
	Links      int               `json:"links"`
	Pending    int               `json:"reservations"`
	Stats      bookings.Stats    `json:"stats"`
}

type codeModeRequest struct {
	Mode bookings.CodeMode `json:"mode"`
}

type linkRequest struct {
	BoxID  string            `json:"box_id"`
	KeyID  string            `json:"key_id"`
	Method bookings.LinkMode `json:"method"`
}

type bookRequest struct {
	From    *time.Time `json:"from,omitempty"`
	Until   *time.Time `json:"until,omitempty"`
	Contact string     `json:"contact,omitempty"`
}

type driverCodeRequest struct {
	Code string `json:"code"`
}

// bookingRow is one grant of a box, or one Fleetio booking without a grant
// (a vehicle not linked, or ended and its grant gone).
type bookingRow struct {
	BoxID     string        `json:"box_id,omitempty"`
	GrantID   string        `json:"grant_id,omitempty"`
	Kind      box.GrantKind `json:"kind,omitempty"`
	KeyIDs    []string      `json:"key_ids,omitempty"`
	From      time.Time     `json:"from,omitzero"`
	Until     time.Time     `json:"until,omitzero"`
	Revoked   bool          `json:"revoked,omitempty"`
	MaxUses   int           `json:"max_uses,omitempty"`
	Uses      int           `json:"uses,omitempty"`
	DriverRef string        `json:"driver_ref,omitempty"`
	Source    string        `json:"source,omitempty"`
	// Fleetio: the grant is the integration's (a booking or a driver code).
	Fleetio bool `json:"fleetio"`
	// Booking is the Fleetio booking behind the grant, if any.
	Booking *bookings.Booking       `json:"booking,omitempty"`
	Events  []bookings.BookingEvent `json:"events,omitempty"`
	// BoxEvents are the box's events naming a grant the bridge did not
	// make (the latest grantEventWindow of the box's log).
	BoxEvents []box.Event `json:"box_events,omitempty"`
}

// grantEventWindow bounds how far back the events of a non-Fleetio grant
// are looked for: the bookings list is a glance, not an audit.
const grantEventWindow = 2000

func (s *service) fleetioRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/fleetio/status", s.fleetioStatus)
	mux.HandleFunc("POST /v1/fleetio/connect", s.fleetioConnect)
	mux.HandleFunc("POST /v1/fleetio/disconnect", s.fleetioDisconnect)
	mux.HandleFunc("PUT /v1/fleetio/code-mode", s.fleetioCodeMode)
	mux.HandleFunc("GET /v1/fleetio/vehicles", s.fleetioVehicles)
	mux.HandleFunc("PUT /v1/fleetio/links/{vehicle}", s.fleetioLink)
	mux.HandleFunc("DELETE /v1/fleetio/links/{vehicle}", s.fleetioUnlink)
	mux.HandleFunc("GET /v1/fleetio/reservations", s.fleetioReservations)
	mux.HandleFunc("POST /v1/fleetio/reservations/{assignment}/book", s.fleetioBook)
	mux.HandleFunc("GET /v1/fleetio/drivers", s.fleetioDrivers)
	mux.HandleFunc("PUT /v1/fleetio/drivers/{contact}/code", s.fleetioSetDriverCode)
	mux.HandleFunc("DELETE /v1/fleetio/drivers/{contact}/code", s.fleetioClearDriverCode)
	mux.HandleFunc("POST /v1/fleetio/reconcile", s.fleetioReconcile)
	mux.HandleFunc("GET /v1/bookings", s.allBookings)
}

// fleetFail answers with a status from the error's kind: the bridge's
// sentinels, then the cloud's, then Fleetio's own answers.
func fleetFail(w http.ResponseWriter, err error) {
	var api *fleetio.APIError
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, bookings.ErrNotFound), errors.Is(err, cloud.ErrUnknownBox), errors.Is(err, cloud.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, bookings.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, bookings.ErrNotConnected), errors.Is(err, bookings.ErrDriverCodeInUse), errors.Is(err, box.ErrCodeInUse):
		status = http.StatusConflict
	case errors.As(err, &api):
		// Fleetio said no (a bad key is 401 there): the gateway's answer.
		status = http.StatusBadGateway
	}
	writeJSON(w, status, errorResponse{Error: err.Error()})
}

func pathInt(r *http.Request, name string) (int64, error) {
	v, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%w %s %q: want a positive number (Fleetio's id)", bookings.ErrInvalid, name, r.PathValue(name))
	}
	return v, nil
}

func (s *service) webhookURL() string { return s.publicURL + bookings.WebhookPath }

func (s *service) fleetioStatus(w http.ResponseWriter, _ *http.Request) {
	out := fleetioStatus{Connected: s.fleet.Connected(), WebhookURL: s.webhookURL(), AccessURL: s.publicURL + bookings.AccessPath,
		Stats: s.fleet.Stats()}
	if st, err := s.fleetStore.Settings(); err == nil {
		out.BaseURL = cmp.Or(st.BaseURL, fleetio.DefaultBaseURL)
	}
	var err error
	if out.CodeMode, err = s.fleetStore.CodeMode(); err != nil {
		fleetFail(w, err)
		return
	}
	out.CodeMode = cmp.Or(out.CodeMode, bookings.CodePerAssignment)
	links, err := s.fleetStore.Links()
	if err != nil {
		fleetFail(w, err)
		return
	}
	res, err := s.fleet.Reservations()
	if err != nil {
		fleetFail(w, err)
		return
	}
	out.Links, out.Pending = len(links), len(res)
	writeJSON(w, http.StatusOK, out)
}

func (s *service) fleetioConnect(w http.ResponseWriter, r *http.Request) {
	var req connectRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	st := bookings.Settings{APIKey: req.APIKey, AccountToken: req.AccountToken, WebhookSecret: req.WebhookSecret,
		Authorization: req.Authorization, BaseURL: req.BaseURL, CodeMode: req.CodeMode}
	u, err := s.fleet.Connect(r.Context(), st)
	if err != nil {
		var api *fleetio.APIError
		if errors.As(err, &api) && (api.StatusCode == http.StatusUnauthorized || api.StatusCode == http.StatusForbidden) {
			// The admin's input was wrong, not the gateway.
			writeJSON(w, http.StatusBadRequest, errorResponse{Error: err.Error()})
			return
		}
		fleetFail(w, err)
		return
	}
	s.log.Info("fleetio connected", "user", u.ID, "base_url", cmp.Or(req.BaseURL, fleetio.DefaultBaseURL))
	writeJSON(w, http.StatusOK, connectResponse{User: u, WebhookURL: s.webhookURL()})
}

func (s *service) fleetioDisconnect(w http.ResponseWriter, r *http.Request) {
	rep, err := s.fleet.Disconnect(r.Context())
	if err != nil && len(rep.Revoked)+len(rep.Kept) == 0 {
		fleetFail(w, err)
		return
	}
	if err != nil {
		// Partly done: the report says what was, the error what was not.
		s.log.Warn("fleetio disconnect incomplete", "err", err)
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *service) fleetioCodeMode(w http.ResponseWriter, r *http.Request) {
	var req codeModeRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if err := req.Mode.Validate(); err != nil {
		fleetFail(w, err)
		return
	}
	if err := s.fleet.SetCodeMode(req.Mode); err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, codeModeRequest{Mode: cmp.Or(req.Mode, bookings.CodePerAssignment)})
}

func (s *service) fleetioVehicles(w http.ResponseWriter, r *http.Request) {
	vs, err := s.fleet.Vehicles(r.Context())
	if err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, vs)
}

func (s *service) fleetioLink(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt(r, "vehicle")
	if err != nil {
		fleetFail(w, err)
		return
	}
	var req linkRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	l := bookings.Link{VehicleID: id, BoxID: req.BoxID, KeyID: req.KeyID, Mode: req.Method}
	if err := s.fleet.SetLink(r.Context(), l); err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *service) fleetioUnlink(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt(r, "vehicle")
	if err != nil {
		fleetFail(w, err)
		return
	}
	if err := s.fleet.Unlink(id); err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"vehicle_id": id})
}

func (s *service) fleetioReservations(w http.ResponseWriter, _ *http.Request) {
	rs, err := s.fleet.Reservations()
	if err != nil {
		fleetFail(w, err)
		return
	}
	if rs == nil {
		rs = []bookings.Reservation{}
	}
	writeJSON(w, http.StatusOK, rs)
}

func (s *service) fleetioBook(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt(r, "assignment")
	if err != nil {
		fleetFail(w, err)
		return
	}
	var req bookRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	switch req.Contact {
	case "", "email", "sms":
	default:
		fleetFail(w, fmt.Errorf("%w contact %q: want email or sms", bookings.ErrInvalid, req.Contact))
		return
	}
	bk, err := s.fleet.CreateBooking(r.Context(), id, bookings.BookingEdit{From: req.From, Until: req.Until, ContactMethod: req.Contact})
	if err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, bk)
}

func (s *service) fleetioDrivers(w http.ResponseWriter, _ *http.Request) {
	ds, err := s.fleet.DriverCodes()
	if err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}

func (s *service) fleetioSetDriverCode(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt(r, "contact")
	if err != nil {
		fleetFail(w, err)
		return
	}
	var req driverCodeRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if err := s.fleet.SetDriverCode(r.Context(), id, req.Code); err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"contact_id": id})
}

func (s *service) fleetioClearDriverCode(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt(r, "contact")
	if err != nil {
		fleetFail(w, err)
		return
	}
	if err := s.fleet.ClearDriverCode(r.Context(), id); err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"contact_id": id})
}

func (s *service) fleetioReconcile(w http.ResponseWriter, r *http.Request) {
	rep, err := s.fleet.Reconcile(r.Context())
	if err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// allBookings lists every grant of every box with the Fleetio booking
// behind it, if any, and the Fleetio bookings that have no grant.
func (s *service) allBookings(w http.ResponseWriter, _ *http.Request) {
	bks, err := s.fleet.Bookings()
	if err != nil {
		fleetFail(w, err)
		return
	}
	type ref struct{ box, grant string }
	byGrant := make(map[ref]*bookings.Booking, len(bks))
	for i := range bks {
		if bks[i].GrantID != "" && bks[i].BoxID != "" {
			byGrant[ref{bks[i].BoxID, bks[i].GrantID}] = &bks[i]
		}
	}
	ids, err := s.cloud.Boxes()
	if err != nil {
		fleetFail(w, err)
		return
	}
	out := []bookingRow{}
	used := map[int64]bool{}
	for _, id := range ids {
		_, grants, err := s.cloud.Records(id)
		if err != nil {
			fleetFail(w, err)
			return
		}
		var boxEvents []box.Event
		for _, g := range grants {
			row := bookingRow{BoxID: id, GrantID: g.ID, Kind: g.Kind, KeyIDs: g.KeyIDs, From: g.From, Until: g.Until,
				Revoked: g.Revoked, MaxUses: g.MaxUses, Uses: g.Uses, DriverRef: g.DriverRef, Source: g.Source,
				Fleetio: g.Source == bookings.GrantSource}
			if bk := byGrant[ref{id, g.ID}]; bk != nil {
				row.Booking, row.Fleetio = bk, true
				used[bk.AssignmentID] = true
				if row.Events, err = s.fleet.BookingEvents(bk.AssignmentID); err != nil && !errors.Is(err, bookings.ErrNotFound) {
					fleetFail(w, err)
					return
				}
			} else if !row.Fleetio {
				if boxEvents == nil {
					if boxEvents, err = s.recentEvents(id); err != nil {
						fleetFail(w, err)
						return
					}
				}
				for _, e := range boxEvents {
					if e.GrantID == g.ID {
						row.BoxEvents = append(row.BoxEvents, e)
					}
				}
			}
			out = append(out, row)
		}
	}
	for i := range bks {
		if bk := &bks[i]; !used[bk.AssignmentID] {
			row := bookingRow{BoxID: bk.BoxID, GrantID: bk.GrantID, Kind: box.KindBooking, From: bk.From, Until: bk.Until,
				Fleetio: true, Booking: bk, Source: bookings.GrantSource}
			if bk.KeyID != "" {
				row.KeyIDs = []string{bk.KeyID}
			}
			if row.Events, err = s.fleet.BookingEvents(bk.AssignmentID); err != nil && !errors.Is(err, bookings.ErrNotFound) {
				fleetFail(w, err)
				return
			}
			out = append(out, row)
		}
	}
	slices.SortStableFunc(out, func(a, b bookingRow) int {
		return cmp.Or(cmp.Compare(a.BoxID, b.BoxID), a.From.Compare(b.From), cmp.Compare(a.GrantID, b.GrantID))
	})
	writeJSON(w, http.StatusOK, out)
}

// recentEvents is the last grantEventWindow events of a box.
func (s *service) recentEvents(boxID string) ([]box.Event, error) {
	hi, err := s.cloud.HighestSeq(boxID)
	if err != nil {
		return nil, err
	}
	after := uint64(0)
	if hi > grantEventWindow {
		after = hi - grantEventWindow
	}
	evs, err := s.cloud.Events(boxID, after, grantEventWindow)
	if evs == nil {
		evs = []box.Event{}
	}
	return evs, err
}
