package simweb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// errBadRequest marks a request this package refused itself (a bad body, a
// slot that is not a number): 400.
var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// statusOf is the answer's status for err (see the package comment).
func statusOf(err error) int {
	se, fromBox := errors.AsType[*boxsocket.Error](err)
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, depot.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, depot.ErrUnknownBox), errors.Is(err, fleetiotest.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, depot.ErrBoxDown):
		return http.StatusConflict
	case fromBox && se.Status >= 400 && se.Status <= 599:
		// The box's own answer (409 for a latched slot, 400 for a key
		// not on its keypad) goes to the page as it is.
		return se.Status
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client is gone if this fails
}

// readBody decodes the request's one JSON object into v. An empty body is
// "{}" (every action's fields are optional or checked after). Unknown
// fields are refused so that a typo ("jamed") does not pass as "no change".
func readBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return badRequest("body: larger than %d bytes", MaxBody)
		}
		return badRequest("body: %v", err)
	}
	if dec.More() {
		return badRequest("body: more than one JSON value")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return badRequest("body: trailing data after the JSON object")
	}
	return nil
}
