package fleetiotest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// maxPatchBody bounds a PATCH body: custom fields are short text.
const maxPatchBody = 1 << 20

var (
	assignmentList = listSpec{
		filters: fieldSet("id", "vehicle_id", "contact_id", "started_at", "ended_at", "created_at", "updated_at"),
		sorts:   fieldSet("id", "started_at", "ended_at", "created_at", "updated_at"),
	}
	vehicleList = listSpec{
		filters: fieldSet("id", "name", "license_plate", "vin", "make", "model", "year", "group_id", "created_at", "updated_at"),
		sorts:   fieldSet("id", "name", "created_at", "updated_at"),
	}
	contactList = listSpec{
		filters: fieldSet("id", "email", "name", "first_name", "last_name", "employee_number", "group_id", "created_at", "updated_at"),
		sorts:   fieldSet("id", "name", "last_name", "created_at", "updated_at"),
	}
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f func(http.ResponseWriter, *http.Request, apiKey)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			k, ok := s.authenticate(w, r)
			if !ok {
				return
			}
			f(w, r, k)
		})
	}
	h("GET /api/v1/users/me", s.getMe)
	h("GET /api/v1/vehicles", s.listVehicles)
	h("GET /api/v1/vehicles/{id}", s.getVehicle)
	h("GET /api/v1/vehicles/{id}/vehicle_assignments", s.listVehicleAssignments)
	h("GET /api/v2/contacts", s.listContacts)
	h("GET /api/v2/contacts/{id}", s.getContact)
	h("GET /api/v1/vehicle_assignments", s.listAssignments)
	h("GET /api/v1/vehicle_assignments/{id}", s.getAssignment)
	h("PATCH /api/v1/vehicle_assignments/{id}", s.patchAssignment)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found")
	})
	return mux
}

func pathID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

func (s *Server) getMe(w http.ResponseWriter, r *http.Request, _ apiKey) {
	s.mu.Lock()
	me := s.me
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, me)
}

func (s *Server) getVehicle(w http.ResponseWriter, r *http.Request, _ apiKey) {
	id, _ := pathID(r)
	s.mu.Lock()
	v, ok := s.vehicles[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeRecord(w, v)
}

func (s *Server) getContact(w http.ResponseWriter, r *http.Request, _ apiKey) {
	id, _ := pathID(r)
	s.mu.Lock()
	c, ok := s.contacts[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeRecord(w, c)
}

// getAssignment serves a single assignment by id. Fleetio's docs don't
// confirm this endpoint (a client should list with filter[id][eq]); the fake
// has it because a client that tries it first should get a sensible answer.
func (s *Server) getAssignment(w http.ResponseWriter, r *http.Request, _ apiKey) {
	id, _ := pathID(r)
	a, ok := s.Assignment(id)
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeRecord(w, a)
}

func (s *Server) listVehicles(w http.ResponseWriter, r *http.Request, _ apiKey) {
	s.mu.Lock()
	recs := make(map[int64]any, len(s.vehicles))
	for id, v := range s.vehicles {
		recs[id] = v
	}
	s.mu.Unlock()
	s.servePage(w, r, vehicleList, recs)
}

func (s *Server) listContacts(w http.ResponseWriter, r *http.Request, _ apiKey) {
	s.mu.Lock()
	recs := make(map[int64]any, len(s.contacts))
	for id, c := range s.contacts {
		recs[id] = c
	}
	s.mu.Unlock()
	s.servePage(w, r, contactList, recs)
}

func (s *Server) listAssignments(w http.ResponseWriter, r *http.Request, _ apiKey) {
	s.servePage(w, r, assignmentList, s.assignmentRecords(0))
}

func (s *Server) listVehicleAssignments(w http.ResponseWriter, r *http.Request, _ apiKey) {
	id, _ := pathID(r)
	s.mu.Lock()
	_, ok := s.vehicles[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.servePage(w, r, assignmentList, s.assignmentRecords(id))
}

// assignmentRecords are the assignments (of vehicle, if not 0) as served.
func (s *Server) assignmentRecords(vehicle int64) map[int64]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := make(map[int64]any, len(s.assigns))
	for id, a := range s.assigns {
		if vehicle == 0 || a.VehicleID == vehicle {
			recs[id] = s.view(a)
		}
	}
	return recs
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request, spec listSpec, recs map[int64]any) {
	lq, err := parseListQuery(r.URL.Query(), spec)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rows := make([]row, 0, len(recs))
	for _, id := range slices.Sorted(maps.Keys(recs)) {
		rw, err := toRow(id, recs[id])
		if err != nil {
			writeError(w, http.StatusInternalServerError, "encoding a record failed")
			return
		}
		rows = append(rows, rw)
	}
	body, err := page(rows, lq)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// patchAssignment merges {"custom_fields": {...}} into the assignment (the
// Rails-style {"vehicle_assignment": {"custom_fields": ...}} is taken too:
// unconfirmed which Fleetio prefers). A key set to null clears the field;
// keys not named keep their value.
func (s *Server) patchAssignment(w http.ResponseWriter, r *http.Request, k apiKey) {
	if k.readOnly {
		writeError(w, http.StatusForbidden, "Forbidden: this API key may not update vehicle assignments")
		return
	}
	id, _ := pathID(r)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPatchBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		writeError(w, http.StatusBadRequest, "reading request body failed")
		return
	}
	fields, err := parsePatch(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.assigns[id]
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	a = cloneAssignment(a)
	for key, v := range fields {
		if _, defined := s.fields[key]; len(s.fields) > 0 && !defined {
			writeValidation(w, "custom_fields", fmt.Sprintf("%s is not a custom field of vehicle assignments", key))
			return
		}
		a.CustomFields[key] = v
	}
	for key, required := range s.fields {
		if v, _ := a.CustomFields[key].(string); required && v == "" {
			writeValidation(w, "custom_fields", fmt.Sprintf("%s is required", key))
			return
		}
	}
	a.UpdatedAt = s.touch()
	s.assigns[id] = a
	s.changes.signal()
	out := s.view(a)
	by := s.me.Email
	s.hooks.enqueue(fleetio.EventAssignmentUpdated, out, &by)
	writeRecord(w, out)
}

// parsePatch reads a PATCH body's custom fields: each a string or null
// (numbers and booleans are taken as their text, as a Text field would).
func parsePatch(body []byte) (map[string]any, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("body is not a JSON object: %v", err)
	}
	raw, ok := top["custom_fields"]
	if !ok {
		if inner, ok2 := top["vehicle_assignment"]; ok2 {
			var va map[string]json.RawMessage
			if err := json.Unmarshal(inner, &va); err != nil {
				return nil, fmt.Errorf("vehicle_assignment is not a JSON object: %v", err)
			}
			raw, ok = va["custom_fields"]
		}
	}
	if !ok {
		return nil, errors.New(`body has no "custom_fields" object`)
	}
	var in map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&in); err != nil || in == nil {
		return nil, errors.New("custom_fields is not a JSON object")
	}
	out := make(map[string]any, len(in))
	for k, v := range in {
		if k == "" {
			return nil, errors.New("custom_fields has an empty key")
		}
		switch v := v.(type) {
		case nil, string:
			out[k] = v
		case json.Number:
			out[k] = v.String()
		case bool:
			out[k] = strconv.FormatBool(v)
		default:
			return nil, fmt.Errorf("custom_fields.%s: want a string or null", k)
		}
	}
	return out, nil
}

// writeRecord answers 200 with one record as Fleetio encodes it.
func writeRecord(w http.ResponseWriter, rec any) {
	b, err := wire(rec)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the record failed")
		return
	}
	writeJSON(w, http.StatusOK, b)
}
