package boxsocket

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// WriteJSON answers v as JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers an ErrorResponse with status code and the reason msg.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, ErrorResponse{Error: msg})
}

// DecodeBody decodes r's JSON body into v strictly: at most MaxRequestBody
// bytes, no unknown field, one value. On error it has answered 400 with the
// reason, and the caller just returns.
func DecodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			err = errors.New("more than one JSON value")
		} else if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			WriteError(w, http.StatusBadRequest, fmt.Sprintf("request body over %d bytes", MaxRequestBody))
		case errors.Is(err, io.EOF):
			WriteError(w, http.StatusBadRequest, "request body: empty, want a JSON object")
		default:
			WriteError(w, http.StatusBadRequest, "request body: "+err.Error())
		}
		return false
	}
	return true
}
