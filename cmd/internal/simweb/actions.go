package simweb

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/sim/netcut"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// okBody is the answer of an action that returns nothing else.
type okBody struct {
	OK bool `json:"ok"`
}

// action runs h with a bounded context and writes its answer: h's value, or
// {"ok": true} for nil, or the error with its status.
func (s *Server) action(h func(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return s.actionWithin(ActionTimeout, h)
}

// actionWithin is action bounded by timeout instead of ActionTimeout.
func (s *Server) actionWithin(timeout time.Duration, h func(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		v, err := h(ctx, w, r)
		if err != nil {
			status := statusOf(err)
			if status >= 500 {
				s.log.Error("simweb: action failed", "method", r.Method, "path", r.URL.Path, "err", err)
			} else {
				s.log.Info("simweb: action refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
			}
			writeError(w, status, err.Error())
			return
		}
		if v == nil {
			v = okBody{OK: true}
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// slotOf is the {n} of a slot path: a positive number (the depot checks it
// against the box's slots).
func slotOf(r *http.Request) (int, error) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		return 0, badRequest("slot %q: not a slot number (1, 2, ...)", r.PathValue("n"))
	}
	return n, nil
}

// idOf is a numeric path value (a Fleetio id).
func idOf(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest("%s %q: not a Fleetio id", name, r.PathValue(name))
	}
	return id, nil
}

func (s *Server) keypad(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		Keys string `json:"keys"`
	}
	if err := readBody(w, r, &req); err != nil {
		return nil, err
	}
	if req.Keys == "" {
		return nil, badRequest("keys: empty (digits, '*' clears, '#' submits)")
	}
	if len(req.Keys) > boxsocket.MaxKeys {
		return nil, badRequest("keys: %d keys, at most %d at once", len(req.Keys), boxsocket.MaxKeys)
	}
	if i := strings.IndexFunc(req.Keys, func(c rune) bool { return !strings.ContainsRune("0123456789*#", c) }); i >= 0 {
		return nil, badRequest("keys: %q at %d is not on the keypad (0-9, *, #)", req.Keys[i:i+1], i)
	}
	return nil, s.d.Press(ctx, r.PathValue("id"), req.Keys)
}

func (s *Server) take(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	n, err := slotOf(r)
	if err != nil {
		return nil, err
	}
	if err := readBody(w, r, &struct{}{}); err != nil {
		return nil, err
	}
	return nil, s.d.Take(ctx, r.PathValue("id"), n)
}

func (s *Server) putBack(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	n, err := slotOf(r)
	if err != nil {
		return nil, err
	}
	if err := readBody(w, r, &struct{}{}); err != nil {
		return nil, err
	}
	return nil, s.d.PutBack(ctx, r.PathValue("id"), n)
}

func (s *Server) fault(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	n, err := slotOf(r)
	if err != nil {
		return nil, err
	}
	var f boxsocket.SlotFault
	if err := readBody(w, r, &f); err != nil {
		return nil, err
	}
	if f.Jammed == nil && f.SensorDead == nil {
		return nil, badRequest("fault: give jammed or sensor_dead (true or false)")
	}
	return nil, s.d.SetSlotFault(ctx, r.PathValue("id"), n, f)
}

// What "garbage" on the reader's serial line is.
const (
	// garbageRandomBytes of noise come first.
	garbageRandomBytes = 16
	// badChecksumFrame is a well-formed RDM6300 frame whose checksum is
	// wrong: 01 00 07 34 E0 sums to D2 (PITFALLS.md), not D3.
	badChecksumFrame = "\x02" + "01000734E0" + "D3" + "\x03"
	// halfFrame is a frame cut off after its start and three data bytes.
	halfFrame = "\x02" + "010007"
)

// garbage is what a noisy or hostile serial line carries: random bytes, a
// frame with a bad checksum, and half a frame. The reader's parser must
// survive all three and open nothing.
func garbage() []byte {
	out := make([]byte, garbageRandomBytes, garbageRandomBytes+len(badChecksumFrame)+len(halfFrame))
	_, _ = rand.Read(out) // crypto/rand.Read never fails (Go 1.24+)
	out = append(out, badChecksumFrame...)
	return append(out, halfFrame...)
}

func (s *Server) reader(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		Fob     string `json:"fob"`
		Garbage bool   `json:"garbage"`
		Raw     []byte `json:"raw"` // base64
	}
	if err := readBody(w, r, &req); err != nil {
		return nil, err
	}
	given := 0
	for _, set := range []bool{req.Fob != "", req.Garbage, req.Raw != nil} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, badRequest("reader: give exactly one of fob (10 hex digits), garbage (true) and raw (base64)")
	}
	id := r.PathValue("id")
	switch {
	case req.Fob != "":
		uid, ok := box.NormalizeFobUID(req.Fob)
		if !ok {
			return nil, badRequest("fob %q: not an EM4100 UID (10 hex digits)", req.Fob)
		}
		return nil, s.d.Fob(ctx, id, uid)
	case req.Garbage:
		return nil, s.d.ReaderRaw(ctx, id, garbage())
	default:
		if len(req.Raw) == 0 || len(req.Raw) > boxsocket.MaxRawBytes {
			return nil, badRequest("raw: %d bytes, give 1 to %d", len(req.Raw), boxsocket.MaxRawBytes)
		}
		return nil, s.d.ReaderRaw(ctx, id, req.Raw)
	}
}

func (s *Server) clock(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		At     *time.Time `json:"at"`
		Offset string     `json:"offset"`
		Reset  bool       `json:"reset"`
	}
	if err := readBody(w, r, &req); err != nil {
		return nil, err
	}
	given := 0
	for _, set := range []bool{req.At != nil, req.Offset != "", req.Reset} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, badRequest(`clock: give exactly one of at (RFC 3339), offset ("-2h") and reset (true)`)
	}
	var cr boxsocket.ClockRequest
	switch {
	case req.At != nil:
		if req.At.IsZero() {
			return nil, badRequest("clock: at is the zero time; for 1970 give 1970-01-01T00:00:00Z")
		}
		cr.At = *req.At
	case req.Offset != "":
		d, err := time.ParseDuration(req.Offset)
		if err != nil {
			return nil, badRequest("clock: offset %q: %v", req.Offset, err)
		}
		cr.At = s.now().Add(d)
	default:
		cr.Reset = true
	}
	return nil, s.d.SetClock(ctx, r.PathValue("id"), cr)
}

func (s *Server) network(_ context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		Cut  *bool  `json:"cut"`
		Mode string `json:"mode"` // "reset" (the default) or "blackhole"
	}
	if err := readBody(w, r, &req); err != nil {
		return nil, err
	}
	if req.Cut == nil {
		return nil, badRequest("network: give cut (true or false)")
	}
	if !*req.Cut {
		if req.Mode != "" {
			return nil, badRequest("network: a mode is for a cut, not a restore")
		}
		return nil, s.d.SetNetwork(r.PathValue("id"), 0)
	}
	mode := netcut.Reset
	if req.Mode != "" {
		m, err := netcut.ParseMode(req.Mode)
		if err != nil {
			return nil, badRequest("network: %v", err)
		}
		mode = m
	}
	return nil, s.d.SetNetwork(r.PathValue("id"), mode)
}

func (s *Server) power(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		On *bool `json:"on"`
	}
	if err := readBody(w, r, &req); err != nil {
		return nil, err
	}
	if req.On == nil {
		return nil, badRequest("power: give on (true or false)")
	}
	return nil, s.d.SetPower(ctx, r.PathValue("id"), *req.On)
}

func (s *Server) forgedGrant(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	if err := readBody(w, r, &struct{}{}); err != nil {
		return nil, err
	}
	return nil, s.d.ForgeGrant(ctx, r.PathValue("id"))
}

// selftest runs `smartboxctl selftest` on the box and answers its run:
// the report's rows, the exit status, what the technician was told.
func (s *Server) selftest(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	if err := readBody(w, r, &struct{}{}); err != nil {
		return nil, err
	}
	return s.d.Selftest(ctx, r.PathValue("id"))
}

func (s *Server) brokerRestart(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	if err := readBody(w, r, &struct{}{}); err != nil {
		return nil, err
	}
	return nil, s.d.RestartBroker(ctx)
}

// endedAt reads an assignment's ended_at: absent (ok false), null (open:
// nil) or a time.
func endedAt(raw json.RawMessage) (end *time.Time, ok bool, err error) {
	if raw == nil {
		return nil, false, nil
	}
	if err := json.Unmarshal(raw, &end); err != nil {
		return nil, false, badRequest("ended_at: %v", err)
	}
	return end, true, nil
}

func checkWindow(start time.Time, end *time.Time) error {
	if end != nil && end.Before(start) {
		return badRequest("ended_at %s is before started_at %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	return nil
}

func (s *Server) createAssignment(_ context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		VehicleID int64           `json:"vehicle_id"`
		ContactID int64           `json:"contact_id"`
		StartedAt *time.Time      `json:"started_at"`
		EndedAt   json.RawMessage `json:"ended_at"`
	}
	if err := readBody(w, r, &req); err != nil {
		return nil, err
	}
	if req.VehicleID < 1 || req.ContactID < 1 {
		return nil, badRequest("assignment: give vehicle_id and contact_id")
	}
	now := s.now()
	a := fleetio.VehicleAssignment{VehicleID: req.VehicleID, ContactID: req.ContactID, StartedAt: now}
	if req.StartedAt != nil {
		if req.StartedAt.IsZero() {
			return nil, badRequest("started_at: the zero time")
		}
		a.StartedAt = *req.StartedAt
	}
	end, given, err := endedAt(req.EndedAt)
	if err != nil {
		return nil, err
	}
	if !given {
		e := a.StartedAt.Add(DefaultAssignmentLength)
		end = &e
	}
	a.EndedAt = end
	if err := checkWindow(a.StartedAt, a.EndedAt); err != nil {
		return nil, err
	}
	out, err := s.d.Fleetio().CreateAssignment(a)
	if err != nil {
		return nil, fmt.Errorf("creating the assignment: %w", err)
	}
	return out, nil
}

func (s *Server) changeAssignment(_ context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	id, err := idOf(r, "id")
	if err != nil {
		return nil, err
	}
	var req struct {
		ContactID *int64          `json:"contact_id"`
		StartedAt *time.Time      `json:"started_at"`
		EndedAt   json.RawMessage `json:"ended_at"`
	}
	if err := readBody(w, r, &req); err != nil {
		return nil, err
	}
	end, endGiven, err := endedAt(req.EndedAt)
	if err != nil {
		return nil, err
	}
	if req.ContactID == nil && req.StartedAt == nil && !endGiven {
		return nil, badRequest("assignment: give contact_id, started_at or ended_at")
	}
	if req.StartedAt != nil && req.StartedAt.IsZero() {
		return nil, badRequest("started_at: the zero time")
	}
	if req.ContactID != nil && *req.ContactID < 1 {
		return nil, badRequest("contact_id: not a Fleetio id")
	}
	f := s.d.Fleetio()
	old, ok := f.Assignment(id)
	if !ok {
		return nil, fmt.Errorf("assignment %d: %w", id, fleetiotest.ErrNotFound)
	}
	start := old.StartedAt
	if req.StartedAt != nil {
		start = *req.StartedAt
	}
	if !endGiven {
		end = old.EndedAt
	}
	if err := checkWindow(start, end); err != nil {
		return nil, err
	}
	out, err := f.UpdateAssignment(id, func(a *fleetio.VehicleAssignment) {
		if req.ContactID != nil {
			a.ContactID = *req.ContactID
		}
		a.StartedAt, a.EndedAt = start, end
	})
	if err != nil {
		return nil, fmt.Errorf("changing assignment %d: %w", id, err)
	}
	return out, nil
}

func (s *Server) endAssignment(_ context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	id, err := idOf(r, "id")
	if err != nil {
		return nil, err
	}
	if err := readBody(w, r, &struct{}{}); err != nil {
		return nil, err
	}
	f := s.d.Fleetio()
	old, ok := f.Assignment(id)
	if !ok {
		return nil, fmt.Errorf("assignment %d: %w", id, fleetiotest.ErrNotFound)
	}
	now := s.now()
	if now.Before(old.StartedAt) {
		return nil, badRequest("assignment %d starts at %s: it cannot end before it starts (delete it)", id, old.StartedAt.Format(time.RFC3339))
	}
	out, err := f.UpdateAssignment(id, func(a *fleetio.VehicleAssignment) { a.EndedAt = &now })
	if err != nil {
		return nil, fmt.Errorf("ending assignment %d: %w", id, err)
	}
	return out, nil
}

func (s *Server) deleteAssignment(_ context.Context, _ http.ResponseWriter, r *http.Request) (any, error) {
	id, err := idOf(r, "id")
	if err != nil {
		return nil, err
	}
	out, err := s.d.Fleetio().DeleteAssignment(id)
	if err != nil {
		return nil, fmt.Errorf("deleting assignment %d: %w", id, err)
	}
	return out, nil
}

func (s *Server) book(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	id, err := idOf(r, "assignment")
	if err != nil {
		return nil, err
	}
	var req bridge.BookRequest
	if err := readBody(w, r, &req); err != nil {
		return nil, err
	}
	switch req.ContactMethod {
	case "", "email", "sms":
	default:
		return nil, badRequest(`contact %q: "email", "sms" or absent`, req.ContactMethod)
	}
	if req.From != nil && req.Until != nil && req.Until.Before(*req.From) {
		return nil, badRequest("until is before from")
	}
	if err := s.d.Book(ctx, id, req); err != nil {
		return nil, fmt.Errorf("booking assignment %d: %w", id, err)
	}
	return nil, nil
}
