package boxsocket

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// socketBodies are the request bodies smartboxd's socket decodes (with
// DecodeBody) from whoever can connect to it.
var socketBodies = []func() any{
	func() any { return new(ReleaseRequest) },
	func() any { return new(KeypadRequest) },
	func() any { return new(SlotFault) },
	func() any { return new(ReaderRequest) },
	func() any { return new(ClockRequest) },
}

// FuzzDecodeBody: DecodeBody on any body either decodes one value, which
// encodes and decodes back to the same, and writes nothing; or answers 400
// with a JSON error message. A release request that decodes passes
// Validate exactly when both its fields are present, valid UTF-8,
// printable and within their bounds, the promise the audited event and the
// technician's terminal rely on.
func FuzzDecodeBody(f *testing.F) {
	f.Add(uint8(0), []byte(`{"by":"ann","reason":"driver lost the PIN"}`))
	f.Add(uint8(0), []byte(`{"by":"ann\n2026-11-02 ok","reason":"forged line"}`))
	f.Add(uint8(0), []byte(`{"by":"","reason":""}`))
	f.Add(uint8(1), []byte(`{"keys":"123456#","hold_ms":80}`))
	f.Add(uint8(2), []byte(`{"jammed":true,"sensor_dead":null}`))
	f.Add(uint8(3), []byte(`{"fob":"01000734E0","hold_ms":500}`))
	f.Add(uint8(3), []byte(`{"raw":"AgEAAAc04Ak="}`))
	f.Add(uint8(4), []byte(`{"at":"1970-01-01T00:00:00Z"}`))
	f.Add(uint8(4), []byte(`{"reset":true} {"reset":false}`))
	f.Add(uint8(1), []byte(`{"keys":"1","extra":1}`))
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		mk := socketBodies[int(kind)%len(socketBodies)]
		v := mk()
		ok, rec := decodeBody(body, v)
		if !ok {
			require.Equal(t, http.StatusBadRequest, rec.Code)
			var e ErrorResponse
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "the 400 is JSON: %q", rec.Body.Bytes())
			require.NotEmpty(t, e.Error)
			return
		}
		require.Zero(t, rec.Body.Len(), "DecodeBody answered though it decoded")
		enc, err := json.Marshal(v)
		require.NoError(t, err)
		again := mk()
		ok, rec = decodeBody(enc, again)
		require.True(t, ok, "its own encoding does not decode: %s", rec.Body.Bytes())
		enc2, err := json.Marshal(again)
		require.NoError(t, err)
		require.Equal(t, string(enc), string(enc2))

		if r, isRelease := v.(*ReleaseRequest); isRelease {
			want := releaseFieldOK(r.By, MaxReleaseBy) && releaseFieldOK(r.Reason, MaxReleaseReason)
			err := r.Validate()
			require.Equal(t, want, err == nil, "by %q, reason %q: Validate says %v", r.By, r.Reason, err)
		}
	})
}

// decodeBody runs DecodeBody on body as a request's.
func decodeBody(body []byte, v any) (bool, *httptest.ResponseRecorder) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/slots/1/release", bytes.NewReader(body))
	return DecodeBody(rec, req, v), rec
}

// releaseFieldOK is ReleaseRequest's rule for one field, said again
// plainly: present, UTF-8, at most max characters, each one printable.
func releaseFieldOK(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}
