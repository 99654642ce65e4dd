package simweb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// errBadRequest marks a request this package refused itself (a bad body, a
// slot that is not a number): 400.
var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// statusCarrier is an error that knows its HTTP answer: the box socket's
// error (a non-2xx answer of smartboxd, e.g. 409 for a latched slot).
// boxsocket.Error{Status, Message} is being written beside this package;
// once it lands, statusOf can use errors.As(err, new(*boxsocket.Error)).
type statusCarrier interface {
	error
	HTTPStatus() int
}

// statusOf is the answer's status for err (see the package comment).
func statusOf(err error) int {
	var sc statusCarrier
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, depot.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, depot.ErrUnknownBox), errors.Is(err, fleetiotest.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, depot.ErrBoxDown):
		return http.StatusConflict
	case errors.As(err, &sc) && sc.HTTPStatus() >= 400 && sc.HTTPStatus() <= 599:
		return sc.HTTPStatus()
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
