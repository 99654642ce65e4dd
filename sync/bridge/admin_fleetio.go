package bridge

import (
	"cmp"
	"errors"
	"fmt"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"net/http"
	"slices"
	"strconv"

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

// grantEventWindow bounds how far back the events of a non-Fleetio grant
// are looked for: the bookings list is a glance, not an audit.
const grantEventWindow = 2000

func (s *Service) fleetioRoutes(mux *http.ServeMux) {
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
	writeJSON(w, status, adminapi.ErrorResponse{Error: err.Error()})
}

func pathInt(r *http.Request, name string) (int64, error) {
	v, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%w %s %q: want a positive number (Fleetio's id)", bookings.ErrInvalid, name, r.PathValue(name))
	}
	return v, nil
}

func (s *Service) webhookURL() string { return s.publicURL + bookings.WebhookPath }

func (s *Service) fleetioStatus(w http.ResponseWriter, _ *http.Request) {
	out := FleetioStatus{Connected: s.fleet.Connected(), WebhookURL: s.webhookURL(), AccessURL: s.publicURL + bookings.AccessPath,
		Stats: statsOf(s.fleet.Stats())}
	if st, err := s.bookingsStore.Settings(); err == nil {
		out.BaseURL = cmp.Or(st.BaseURL, fleetio.DefaultBaseURL)
	}
	var err error
	if out.CodeMode, err = s.bookingsStore.CodeMode(); err != nil {
		fleetFail(w, err)
		return
	}
	out.CodeMode = cmp.Or(out.CodeMode, bookings.CodePerAssignment)
	links, err := s.bookingsStore.Links()
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

func (s *Service) fleetioConnect(w http.ResponseWriter, r *http.Request) {
	var req ConnectRequest
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
			writeJSON(w, http.StatusBadRequest, adminapi.ErrorResponse{Error: err.Error()})
			return
		}
		fleetFail(w, err)
		return
	}
	s.log.Info("fleetio connected", "user", u.ID, "base_url", cmp.Or(req.BaseURL, fleetio.DefaultBaseURL))
	writeJSON(w, http.StatusOK, ConnectResponse{User: u, WebhookURL: s.webhookURL()})
}

func (s *Service) fleetioDisconnect(w http.ResponseWriter, r *http.Request) {
	rep, err := s.fleet.Disconnect(r.Context())
	if err != nil && len(rep.Revoked)+len(rep.Kept) == 0 {
		fleetFail(w, err)
		return
	}
	if err != nil {
		// Partly done: the report says what was, the error what was not.
		s.log.Warn("fleetio disconnect incomplete", "err", err)
	}
	writeJSON(w, http.StatusOK, disconnectReportOf(rep))
}

func (s *Service) fleetioCodeMode(w http.ResponseWriter, r *http.Request) {
	var req CodeModeRequest
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
	writeJSON(w, http.StatusOK, CodeModeRequest{Mode: cmp.Or(req.Mode, bookings.CodePerAssignment)})
}

func (s *Service) fleetioVehicles(w http.ResponseWriter, r *http.Request) {
	vs, err := s.fleet.Vehicles(r.Context())
	if err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, listOf(vs, vehicleLinkOf))
}

func (s *Service) fleetioLink(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt(r, "vehicle")
	if err != nil {
		fleetFail(w, err)
		return
	}
	var req LinkRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	l := bookings.Link{VehicleID: id, BoxID: req.BoxID, KeyID: req.KeyID, Mode: req.Method}
	if err := s.fleet.SetLink(r.Context(), l); err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, linkOf(l))
}

func (s *Service) fleetioUnlink(w http.ResponseWriter, r *http.Request) {
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

func (s *Service) fleetioReservations(w http.ResponseWriter, _ *http.Request) {
	rs, err := s.fleet.Reservations()
	if err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, listOf(rs, reservationOf))
}

func (s *Service) fleetioBook(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt(r, "assignment")
	if err != nil {
		fleetFail(w, err)
		return
	}
	var req BookRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	// CreateBooking checks the contact method (ErrInvalid: 400).
	bk, err := s.fleet.CreateBooking(r.Context(), id, bookings.BookingEdit{From: req.From, Until: req.Until, ContactMethod: req.ContactMethod})
	if err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, bookingOf(bk))
}

func (s *Service) fleetioDrivers(w http.ResponseWriter, _ *http.Request) {
	ds, err := s.fleet.DriverCodes()
	if err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, listOf(ds, driverCodeOf))
}

func (s *Service) fleetioSetDriverCode(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt(r, "contact")
	if err != nil {
		fleetFail(w, err)
		return
	}
	var req DriverCodeRequest
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

func (s *Service) fleetioClearDriverCode(w http.ResponseWriter, r *http.Request) {
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

func (s *Service) fleetioReconcile(w http.ResponseWriter, r *http.Request) {
	rep, err := s.fleet.Reconcile(r.Context())
	if err != nil {
		fleetFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, reconcileReportOf(rep))
}

// allBookings lists every grant of every box with the Fleetio booking
// behind it, if any, and the Fleetio bookings that have no grant.
func (s *Service) allBookings(w http.ResponseWriter, _ *http.Request) {
	bks, err := s.fleet.Bookings()
	if err != nil {
		fleetFail(w, err)
		return
	}
	type ref struct{ box, grant string }
	views := listOf(bks, bookingOf)
	byGrant := make(map[ref]*Booking, len(views))
	for i := range views {
		if views[i].GrantID != "" && views[i].BoxID != "" {
			byGrant[ref{views[i].BoxID, views[i].GrantID}] = &views[i]
		}
	}
	ids, err := s.cloud.Boxes()
	if err != nil {
		fleetFail(w, err)
		return
	}
	out := []BookingRow{}
	used := map[int64]bool{}
	for _, id := range ids {
		_, grants, err := s.cloud.Records(id)
		if err != nil {
			fleetFail(w, err)
			return
		}
		var boxEvents []box.Event
		for _, g := range grants {
			row := BookingRow{BoxID: id, GrantID: g.ID, Kind: g.Kind, KeyIDs: g.KeyIDs, From: g.From, Until: g.Until,
				Revoked: g.Revoked, MaxUses: g.MaxUses, Uses: g.Uses, DriverRef: g.DriverRef, Source: g.Source,
				Fleetio: g.Source == bookings.GrantSource}
			if bk := byGrant[ref{id, g.ID}]; bk != nil {
				row.Booking, row.Fleetio = bk, true
				used[bk.AssignmentID] = true
				if row.Events, err = s.bookingEvents(bk.AssignmentID); err != nil {
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
	for i := range views {
		if bk := &views[i]; !used[bk.AssignmentID] {
			row := BookingRow{BoxID: bk.BoxID, GrantID: bk.GrantID, Kind: box.KindBooking, From: bk.From, Until: bk.Until,
				Fleetio: true, Booking: bk, Source: bookings.GrantSource}
			if bk.KeyID != "" {
				row.KeyIDs = []string{bk.KeyID}
			}
			if row.Events, err = s.bookingEvents(bk.AssignmentID); err != nil {
				fleetFail(w, err)
				return
			}
			out = append(out, row)
		}
	}
	slices.SortStableFunc(out, func(a, b BookingRow) int {
		return cmp.Or(cmp.Compare(a.BoxID, b.BoxID), a.From.Compare(b.From), cmp.Compare(a.GrantID, b.GrantID))
	})
	writeJSON(w, http.StatusOK, out)
}

// bookingEvents are a booking's events; a booking with none is not an error.
func (s *Service) bookingEvents(assignmentID int64) ([]BookingEvent, error) {
	evs, err := s.fleet.BookingEvents(assignmentID)
	if err != nil && !errors.Is(err, bookings.ErrNotFound) {
		return nil, err
	}
	return listOf(evs, bookingEventOf), nil
}

// recentEvents is the last grantEventWindow events of a box.
func (s *Service) recentEvents(boxID string) ([]box.Event, error) {
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
