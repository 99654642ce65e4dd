package simweb

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// State is everything the page shows, in one object: /api/state answers it
// and /api/stream sends it after each change. Lists are [] when empty,
// never null. A part that could not be read leaves its list empty and says
// why in Errors: the rest of the page stays live.
type State struct {
	Boxes        []depot.BoxView      `json:"boxes"`
	Box          string               `json:"box"` // the selected box ("" with no boxes)
	Events       []box.Event          `json:"events"`
	Inbox        []depot.Message      `json:"inbox"`
	Fleetio      FleetioState         `json:"fleetio"`
	Reservations []bridge.Reservation `json:"reservations"`
	Bookings     []bridge.BookingRow  `json:"bookings"`
	// BrokerUp is false while the broker (and the bridge with it) restarts,
	// and after a restart that failed: BrokerError then says why.
	BrokerUp    bool     `json:"broker_up"`
	BrokerError string   `json:"broker_error,omitempty"`
	Omitted     Omitted  `json:"omitted"`
	Errors      []string `json:"errors"`
}

// How much of the long lists goes out: the whole State is sent at every
// change to every tab, and a simulator run for a day piles up mail,
// assignments and bookings nobody scrolls back to. The newest are kept.
const (
	MaxInboxShown       = 100
	MaxAssignmentsShown = 200
	MaxBookingsShown    = 200
)

// Omitted counts the older entries of each bounded list left out of State.
type Omitted struct {
	Inbox       int `json:"inbox"`
	Assignments int `json:"assignments"`
	Bookings    int `json:"bookings"`
}

// FleetioState is the fake Fleetio account as the fleet manager sees it.
type FleetioState struct {
	Vehicles    []Vehicle                   `json:"vehicles"`
	Contacts    []fleetio.Contact           `json:"contacts"`
	Assignments []fleetio.VehicleAssignment `json:"assignments"`
}

// Vehicle is a Fleetio vehicle with the bridge's link to a box's key (nil:
// not linked, or the bridge's list could not be read).
type Vehicle struct {
	fleetio.Vehicle
	Link *bridge.Link `json:"link"`
}

// selected is the box a ?box= names ("": the first), or ErrUnknownBox.
func selected(boxes []depot.BoxView, want string) (string, error) {
	if want == "" {
		if len(boxes) == 0 {
			return "", nil
		}
		return boxes[0].ID, nil
	}
	for _, b := range boxes {
		if b.ID == want {
			return want, nil
		}
	}
	return "", fmt.Errorf("box %q: %w", want, depot.ErrUnknownBox)
}

// state builds the State with box selected (already checked).
func (s *Server) state(ctx context.Context, boxes []depot.BoxView, boxID string) State {
	ctx, cancel := context.WithTimeout(ctx, StateTimeout)
	defer cancel()
	st := State{Boxes: orEmpty(boxes), Box: boxID, Errors: []string{}}
	if boxID != "" {
		st.Events = s.d.Events(boxID)
	}
	st.Events = orEmpty(st.Events)
	st.BrokerUp, st.BrokerError = s.d.BrokerUp(), s.d.BrokerError()
	st.Inbox, st.Omitted.Inbox = lastN(orEmpty(s.d.Inbox()), MaxInboxShown) // oldest first

	f := s.d.Fleetio()
	links := map[int64]*bridge.Link{}
	if vl, err := s.d.Vehicles(ctx); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("the bridge's vehicle links: %v", err))
	} else {
		for _, v := range vl {
			links[v.Vehicle.ID] = v.Link
		}
	}
	for _, v := range f.Vehicles() {
		st.Fleetio.Vehicles = append(st.Fleetio.Vehicles, Vehicle{Vehicle: v, Link: links[v.ID]})
	}
	st.Fleetio.Vehicles = orEmpty(st.Fleetio.Vehicles)
	st.Fleetio.Contacts = orEmpty(f.Contacts())
	// By id: the newest are the last.
	st.Fleetio.Assignments, st.Omitted.Assignments = lastN(orEmpty(f.Assignments()), MaxAssignmentsShown)

	if rs, err := s.d.Reservations(ctx); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("the bridge's reservations: %v", err))
	} else {
		st.Reservations = rs
	}
	st.Reservations = orEmpty(st.Reservations)
	if bs, err := s.d.Bookings(ctx); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("the bridge's bookings: %v", err))
	} else {
		st.Bookings = bs
	}
	st.Bookings, st.Omitted.Bookings = newestBookings(orEmpty(st.Bookings), MaxBookingsShown)
	return st
}

// lastN is the last n of l and how many came before them.
func lastN[T any](l []T, n int) ([]T, int) {
	if len(l) <= n {
		return l, 0
	}
	return l[len(l)-n:], len(l) - n
}

// newestBookings keeps the n rows that start latest, in the bridge's order,
// and says how many were left out.
func newestBookings(rows []bridge.BookingRow, n int) ([]bridge.BookingRow, int) {
	if len(rows) <= n {
		return rows, 0
	}
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return rows[b].From.Compare(rows[a].From) })
	keep := make([]bool, len(rows))
	for _, i := range order[:n] {
		keep[i] = true
	}
	out := make([]bridge.BookingRow, 0, n)
	for i, r := range rows {
		if keep[i] {
			out = append(out, r)
		}
	}
	return out, len(rows) - n
}

func orEmpty[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

func (s *Server) getState(w http.ResponseWriter, r *http.Request) {
	boxes := s.d.Boxes()
	id, err := selected(boxes, r.URL.Query().Get("box"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.state(r.Context(), boxes, id))
}
