package fleetiotest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// ErrNotFound is returned by the seed API for an unknown id.
var ErrNotFound = errors.New("fake fleetio: not found")

// accountTime is t as Fleetio prints it: in the account's zone, to the
// millisecond.
func (s *Server) accountTime(t time.Time) time.Time {
	return t.In(s.tz).Truncate(time.Millisecond)
}

// nextID hands out ids from one counter, so that a vehicle id never equals a
// contact id by accident and a client mixing them up fails.
func (s *Server) nextID(want int64) int64 {
	if want > 0 {
		s.lastID = max(s.lastID, want)
		return want
	}
	s.lastID++
	return s.lastID
}

// touch is the updated_at of a change now: never equal to or before the last
// one, so that filter[updated_at][gte] sync can't miss a change made under a
// frozen test clock.
func (s *Server) touch() time.Time {
	now := s.accountTime(s.clock.Now())
	if !now.After(s.lastUpdate) {
		now = s.lastUpdate.Add(time.Millisecond)
	}
	s.lastUpdate = now
	return now
}

// AddUser sets the user the API key acts as (users/me, triggered_by of API
// changes).
func (s *Server) AddUser(u fleetio.User) (fleetio.User, error) {
	if u.Email == "" {
		return fleetio.User{}, errors.New("fake fleetio: add user: email is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u.ID = s.nextID(u.ID)
	s.me = u
	s.changes.signal()
	return u, nil
}

// AddVehicle stores v (an id of 0 is assigned) and returns it as stored.
func (s *Server) AddVehicle(v fleetio.Vehicle) (fleetio.Vehicle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.vehicles[v.ID]; dup && v.ID != 0 {
		return fleetio.Vehicle{}, fmt.Errorf("fake fleetio: add vehicle: id %d exists", v.ID)
	}
	v.ID = s.nextID(v.ID)
	now := s.touch()
	v.CreatedAt, v.UpdatedAt = now, now
	if v.CustomFields == nil {
		v.CustomFields = map[string]any{}
	}
	v.CustomFields = maps.Clone(v.CustomFields)
	s.vehicles[v.ID] = v
	s.changes.signal()
	return v, nil
}

// AddContact stores c (an id of 0 is assigned; Name defaults to first and
// last name) and returns it as stored.
func (s *Server) AddContact(c fleetio.Contact) (fleetio.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.contacts[c.ID]; dup && c.ID != 0 {
		return fleetio.Contact{}, fmt.Errorf("fake fleetio: add contact: id %d exists", c.ID)
	}
	c.ID = s.nextID(c.ID)
	if c.Name == "" {
		c.Name = strings.TrimSpace(c.FirstName + " " + c.LastName)
	}
	now := s.touch()
	c.CreatedAt, c.UpdatedAt = now, now
	if c.CustomFields == nil {
		c.CustomFields = map[string]any{}
	}
	c.CustomFields = maps.Clone(c.CustomFields)
	s.contacts[c.ID] = c
	s.changes.signal()
	return c, nil
}

// DefineCustomField declares a vehicle-assignment custom field, as an admin
// does in Fleetio's UI. Once any is defined, records list every defined field
// (null when unset), a PATCH naming an undefined one is refused with 422, and
// a required one left empty makes the update fail. With none defined every
// key is accepted.
func (s *Server) DefineCustomField(key string, required bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fields[key] = required
	for id, a := range s.assigns {
		if _, ok := a.CustomFields[key]; !ok {
			a.CustomFields[key] = nil
			s.assigns[id] = a
		}
	}
	s.changes.signal()
}

// CreateAssignment stores a new assignment of a.VehicleID to a.ContactID
// from a.StartedAt to a.EndedAt (nil: open-ended) and queues a
// vehicle_assignment_created delivery. Ids and times are set by the fake;
// the nested contact and vehicle come from the stored records.
func (s *Server) CreateAssignment(a fleetio.VehicleAssignment) (fleetio.VehicleAssignment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.ID = s.nextID(0)
	if err := s.completeAssignment(&a); err != nil {
		return fleetio.VehicleAssignment{}, fmt.Errorf("fake fleetio: create assignment: %w", err)
	}
	now := s.touch()
	a.CreatedAt, a.UpdatedAt = now, now
	s.assigns[a.ID] = a
	s.changes.signal()
	out := s.view(a)
	s.hooks.enqueue(fleetio.EventAssignmentCreated, out, s.seedActor())
	return out, nil
}

// UpdateAssignment changes assignment id with change (new window, driver,
// vehicle or custom fields), bumps updated_at and queues a
// vehicle_assignment_updated delivery.
func (s *Server) UpdateAssignment(id int64, change func(a *fleetio.VehicleAssignment)) (fleetio.VehicleAssignment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.assigns[id]
	if !ok {
		return fleetio.VehicleAssignment{}, fmt.Errorf("fake fleetio: update assignment %d: %w", id, ErrNotFound)
	}
	a := cloneAssignment(old)
	change(&a)
	a.ID, a.CreatedAt = old.ID, old.CreatedAt
	if err := s.completeAssignment(&a); err != nil {
		return fleetio.VehicleAssignment{}, fmt.Errorf("fake fleetio: update assignment %d: %w", id, err)
	}
	a.UpdatedAt = s.touch()
	s.assigns[id] = a
	s.changes.signal()
	out := s.view(a)
	s.hooks.enqueue(fleetio.EventAssignmentUpdated, out, s.seedActor())
	return out, nil
}

// DeleteAssignment removes assignment id and queues a
// vehicle_assignment_deleted delivery carrying it as it was last.
func (s *Server) DeleteAssignment(id int64) (fleetio.VehicleAssignment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.assigns[id]
	if !ok {
		return fleetio.VehicleAssignment{}, fmt.Errorf("fake fleetio: delete assignment %d: %w", id, ErrNotFound)
	}
	delete(s.assigns, id)
	s.changes.signal()
	a.UpdatedAt = s.touch()
	out := s.view(a)
	s.hooks.enqueue(fleetio.EventAssignmentDeleted, out, s.seedActor())
	return out, nil
}

// Assignment returns assignment id as the API would (current and future
// computed now), for reading custom fields back.
func (s *Server) Assignment(id int64) (fleetio.VehicleAssignment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.assigns[id]
	if !ok {
		return fleetio.VehicleAssignment{}, false
	}
	return s.view(a), true
}

// Assignments returns every stored assignment, by id.
func (s *Server) Assignments() []fleetio.VehicleAssignment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]fleetio.VehicleAssignment, 0, len(s.assigns))
	for _, a := range s.assigns {
		out = append(out, s.view(a))
	}
	slices.SortFunc(out, func(a, b fleetio.VehicleAssignment) int { return int(a.ID - b.ID) })
	return out
}

// Vehicles returns every stored vehicle, by id.
func (s *Server) Vehicles() []fleetio.Vehicle {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.vehicles))
	slices.SortFunc(out, func(a, b fleetio.Vehicle) int { return int(a.ID - b.ID) })
	return out
}

// Contacts returns every stored contact, by id.
func (s *Server) Contacts() []fleetio.Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.contacts))
	slices.SortFunc(out, func(a, b fleetio.Contact) int { return int(a.ID - b.ID) })
	return out
}

func (s *Server) seedActor() *string {
	if s.opts.TriggeredBy == "" {
		return nil
	}
	by := s.opts.TriggeredBy
	return &by
}

// completeAssignment checks a's references and window and fills in what
// Fleetio derives: the nested contact and vehicle, contact_full_name, the
// defined custom fields.
func (s *Server) completeAssignment(a *fleetio.VehicleAssignment) error {
	v, ok := s.vehicles[a.VehicleID]
	if !ok {
		return fmt.Errorf("vehicle %d: %w", a.VehicleID, ErrNotFound)
	}
	c, ok := s.contacts[a.ContactID]
	if !ok {
		return fmt.Errorf("contact %d: %w", a.ContactID, ErrNotFound)
	}
	if a.StartedAt.IsZero() {
		return errors.New("started_at is required")
	}
	a.StartedAt = s.accountTime(a.StartedAt)
	if a.EndedAt != nil {
		e := s.accountTime(*a.EndedAt)
		if e.Before(a.StartedAt) {
			return fmt.Errorf("ended_at %s is before started_at %s", e.Format(time.RFC3339), a.StartedAt.Format(time.RFC3339))
		}
		a.EndedAt = &e
	}
	a.ContactFullName = c.Name
	a.Contact = &fleetio.AssignmentContact{ID: c.ID, Email: c.Email, Name: c.Name, GroupID: c.GroupID}
	a.Vehicle = &fleetio.AssignmentVehicle{ID: v.ID, Name: v.Name, LicensePlate: v.LicensePlate, VIN: v.VIN, Year: v.Year, Make: v.Make, Model: v.Model}
	if a.CustomFields == nil {
		a.CustomFields = map[string]any{}
	}
	for k := range s.fields {
		if _, ok := a.CustomFields[k]; !ok {
			a.CustomFields[k] = nil
		}
	}
	return nil
}

// view is a copy of a with current and future computed from the clock:
// current while started_at <= now < ended_at, future before started_at.
func (s *Server) view(a fleetio.VehicleAssignment) fleetio.VehicleAssignment {
	a = cloneAssignment(a)
	now := s.clock.Now()
	a.Future = now.Before(a.StartedAt)
	a.Current = !a.Future && (a.EndedAt == nil || now.Before(*a.EndedAt))
	return a
}

func cloneAssignment(a fleetio.VehicleAssignment) fleetio.VehicleAssignment {
	a.CustomFields = maps.Clone(a.CustomFields)
	if a.CustomFields == nil {
		a.CustomFields = map[string]any{}
	}
	if a.EndedAt != nil {
		e := *a.EndedAt
		a.EndedAt = &e
	}
	if a.Contact != nil {
		c := *a.Contact
		a.Contact = &c
	}
	if a.Vehicle != nil {
		v := *a.Vehicle
		a.Vehicle = &v
	}
	return a
}
