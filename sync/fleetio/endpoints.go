package fleetio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Me returns the API key's user (GET /v1/users/me): the bridge calls it at
// connect time to check the key and account token.
func (c *Client) Me(ctx context.Context) (User, error) {
	var u User
	_, err := c.do(ctx, http.MethodGet, "/v1/users/me", nil, nil, &u)
	return u, err
}

// VehicleFilter narrows ListVehicles. Zero fields are not sent.
type VehicleFilter struct {
	Name         string     // filter[name][eq]
	LicensePlate string     // filter[license_plate][eq]
	VIN          string     // filter[vin][eq]
	Extra        url.Values // any other query parameters, sent as they are
}

func (f VehicleFilter) query() url.Values {
	q := url.Values{}
	setEq(q, "name", f.Name)
	setEq(q, "license_plate", f.LicensePlate)
	setEq(q, "vin", f.VIN)
	addExtra(q, f.Extra)
	return q
}

// Vehicles iterates the account's vehicles (GET /v1/vehicles), page by page.
// The iteration ends after the first error.
func (c *Client) Vehicles(ctx context.Context, f VehicleFilter) iter.Seq2[Vehicle, error] {
	return list[Vehicle](ctx, c, "/v1/vehicles", f.query())
}

// ListVehicles returns every vehicle that f selects.
func (c *Client) ListVehicles(ctx context.Context, f VehicleFilter) ([]Vehicle, error) {
	return collect(c.Vehicles(ctx, f))
}

// GetVehicle returns one vehicle (GET /v1/vehicles/:id); a 404 matches
// ErrNotFound.
func (c *Client) GetVehicle(ctx context.Context, id int64) (Vehicle, error) {
	var v Vehicle
	if err := checkID("vehicle", id); err != nil {
		return v, err
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/vehicles/"+strconv.FormatInt(id, 10), nil, nil, &v)
	return v, err
}

// GetContact returns one contact (GET /v2/contacts/:id); a 404 matches
// ErrNotFound.
func (c *Client) GetContact(ctx context.Context, id int64) (Contact, error) {
	var ct Contact
	if err := checkID("contact", id); err != nil {
		return ct, err
	}
	_, err := c.do(ctx, http.MethodGet, "/v2/contacts/"+strconv.FormatInt(id, 10), nil, nil, &ct)
	return ct, err
}

// FindContactByEmail returns the contact with that email (GET
// /v2/contacts?filter[email][eq]=...), or an error matching ErrNotFound.
// Emails compare without regard to case, as mail systems do; should the
// server's filter be looser (a "like"), only an exact match counts.
func (c *Client) FindContactByEmail(ctx context.Context, email string) (Contact, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return Contact{}, errors.New("fleetio: find contact: email is empty")
	}
	q := url.Values{}
	setEq(q, "email", email)
	for ct, err := range list[Contact](ctx, c, "/v2/contacts", q) {
		if err != nil {
			return Contact{}, err
		}
		if strings.EqualFold(strings.TrimSpace(ct.Email), email) {
			return ct, nil
		}
	}
	return Contact{}, fmt.Errorf("fleetio: contact with email %q: %w", email, ErrNotFound)
}

// AssignmentFilter narrows ListVehicleAssignments. Zero fields are not sent.
type AssignmentFilter struct {
	VehicleID     int64     // filter[vehicle_id][eq]
	ContactID     int64     // filter[contact_id][eq]
	UpdatedSince  time.Time // filter[updated_at][gte]
	UpdatedBefore time.Time // filter[updated_at][lt]
	// SortBy is one of started_at, ended_at, updated_at, id: sort[SortBy]=asc
	// (desc with Desc).
	SortBy string
	Desc   bool
	Extra  url.Values // any other query parameters, sent as they are
}

func (f AssignmentFilter) query() url.Values {
	q := url.Values{}
	if f.VehicleID != 0 {
		setEq(q, "vehicle_id", strconv.FormatInt(f.VehicleID, 10))
	}
	if f.ContactID != 0 {
		setEq(q, "contact_id", strconv.FormatInt(f.ContactID, 10))
	}
	if !f.UpdatedSince.IsZero() {
		q.Set("filter[updated_at][gte]", f.UpdatedSince.UTC().Format(time.RFC3339Nano))
	}
	if !f.UpdatedBefore.IsZero() {
		q.Set("filter[updated_at][lt]", f.UpdatedBefore.UTC().Format(time.RFC3339Nano))
	}
	if f.SortBy != "" {
		dir := "asc"
		if f.Desc {
			dir = "desc"
		}
		q.Set("sort["+f.SortBy+"]", dir)
	}
	addExtra(q, f.Extra)
	return q
}

// VehicleAssignments iterates assignments (GET /v1/vehicle_assignments)
// across cursor pages. The iteration ends after the first error.
func (c *Client) VehicleAssignments(ctx context.Context, f AssignmentFilter) iter.Seq2[VehicleAssignment, error] {
	return list[VehicleAssignment](ctx, c, "/v1/vehicle_assignments", f.query())
}

// ListVehicleAssignments returns every assignment that f selects.
func (c *Client) ListVehicleAssignments(ctx context.Context, f AssignmentFilter) ([]VehicleAssignment, error) {
	return collect(c.VehicleAssignments(ctx, f))
}

// ListVehicleAssignmentsForVehicle returns a vehicle's assignments (GET
// /v1/vehicles/:id/vehicle_assignments); f.VehicleID is ignored.
func (c *Client) ListVehicleAssignmentsForVehicle(ctx context.Context, vehicleID int64, f AssignmentFilter) ([]VehicleAssignment, error) {
	if err := checkID("vehicle", vehicleID); err != nil {
		return nil, err
	}
	f.VehicleID = 0
	return collect(list[VehicleAssignment](ctx, c,
		"/v1/vehicles/"+strconv.FormatInt(vehicleID, 10)+"/vehicle_assignments", f.query()))
}

// FindVehicleAssignment reads one assignment back from the API, the truth
// a webhook's payload is checked against. A GET by id is not confirmed by
// Fleetio's public docs, so it lists the vehicle's assignments (a
// documented endpoint) and picks the id; gone matches ErrNotFound.
func (c *Client) FindVehicleAssignment(ctx context.Context, vehicleID, assignmentID int64) (VehicleAssignment, error) {
	if err := checkID("vehicle assignment", assignmentID); err != nil {
		return VehicleAssignment{}, err
	}
	if err := checkID("vehicle", vehicleID); err != nil {
		return VehicleAssignment{}, err
	}
	path := "/v1/vehicles/" + strconv.FormatInt(vehicleID, 10) + "/vehicle_assignments"
	for a, err := range list[VehicleAssignment](ctx, c, path, url.Values{}) {
		if err != nil {
			return VehicleAssignment{}, err
		}
		if a.ID == assignmentID {
			return a, nil
		}
	}
	return VehicleAssignment{}, fmt.Errorf("fleetio: vehicle assignment %d of vehicle %d: %w", assignmentID, vehicleID, ErrNotFound)
}

// PatchAssignmentCustomFields writes custom fields of an assignment (PATCH
// /v1/vehicle_assignments/:id with {"custom_fields": {...}}); a nil value
// clears a field. Fields not named are left as they are. Retrying it is
// safe: setting the same values twice is the same as once. It returns the
// updated assignment when Fleetio sends it back (zero if the answer is
// empty).
func (c *Client) PatchAssignmentCustomFields(ctx context.Context, id int64, fields map[string]any) (VehicleAssignment, error) {
	var a VehicleAssignment
	if err := checkID("vehicle assignment", id); err != nil {
		return a, err
	}
	if len(fields) == 0 {
		return a, errors.New("fleetio: patch custom fields: no fields given")
	}
	body := struct {
		CustomFields map[string]any `json:"custom_fields"`
	}{fields}
	_, err := c.do(ctx, http.MethodPatch, "/v1/vehicle_assignments/"+strconv.FormatInt(id, 10), nil, body, &a)
	return a, err
}

func checkID(what string, id int64) error {
	if id <= 0 {
		return fmt.Errorf("fleetio: %s id %d: must be positive", what, id)
	}
	return nil
}

func setEq(q url.Values, field, v string) {
	if v != "" {
		q.Set("filter["+field+"][eq]", v)
	}
}

func addExtra(q, extra url.Values) {
	for k, vs := range extra {
		q[k] = append([]string(nil), vs...)
	}
}

func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// list iterates a list endpoint. Cursor pages (an object with records and
// next_cursor) are followed by sending start_cursor until next_cursor is
// empty; a cursor seen before is an error rather than an endless loop.
// An older endpoint answering a bare array is followed with page=N while
// X-Pagination-Current-Page is below X-Pagination-Total-Pages.
func list[T any](ctx context.Context, c *Client, path string, base url.Values) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		fail := func(err error) { yield(zero, err) }
		seen := map[string]bool{}
		cursor := ""
		page := 1
		for {
			q := maps.Clone(base)
			if q == nil {
				q = url.Values{}
			}
			q.Set("per_page", strconv.Itoa(c.opts.PerPage))
			if cursor != "" {
				q.Set("start_cursor", cursor)
			}
			if page > 1 {
				q.Set("page", strconv.Itoa(page))
			}
			var raw json.RawMessage
			h, err := c.do(ctx, http.MethodGet, path, q, nil, &raw)
			if err != nil {
				fail(err)
				return
			}
			raw = bytes.TrimSpace(raw)
			if len(raw) == 0 {
				fail(fmt.Errorf("fleetio: GET %s: empty answer where a list was expected", path))
				return
			}
			if raw[0] == '[' {
				var recs []T
				if err := json.Unmarshal(raw, &recs); err != nil {
					fail(fmt.Errorf("fleetio: GET %s page %d: decode records: %w", path, page, err))
					return
				}
				for _, r := range recs {
					if !yield(r, nil) {
						return
					}
				}
				cur, err1 := strconv.Atoi(h.Get("X-Pagination-Current-Page"))
				total, err2 := strconv.Atoi(h.Get("X-Pagination-Total-Pages"))
				if err1 != nil || err2 != nil || len(recs) == 0 || cur >= total || cur < page {
					return
				}
				page = cur + 1
				continue
			}
			var p CursorPage[T]
			if err := json.Unmarshal(raw, &p); err != nil {
				fail(fmt.Errorf("fleetio: GET %s: decode cursor page: %w", path, err))
				return
			}
			for _, r := range p.Records {
				if !yield(r, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			if seen[p.NextCursor] {
				fail(fmt.Errorf("fleetio: GET %s: next_cursor %q repeats an earlier page", path, p.NextCursor))
				return
			}
			seen[p.NextCursor] = true
			cursor = p.NextCursor
		}
	}
}
