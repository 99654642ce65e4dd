package boxsocket

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

func TestReleaseRequestValidate(t *testing.T) {
	require.NoError(t, ReleaseRequest{By: "alice", Reason: "swap battery"}.Validate())
	require.NoError(t, ReleaseRequest{By: strings.Repeat("é", MaxReleaseBy), Reason: strings.Repeat("x", MaxReleaseReason)}.Validate(), "bounds count characters")
	for _, tc := range []struct {
		r    ReleaseRequest
		want string
	}{
		{ReleaseRequest{Reason: "x"}, "by is required"},
		{ReleaseRequest{By: "a"}, "reason is required"},
		{ReleaseRequest{By: "a\nb", Reason: "x"}, "unprintable character U+000A"},
		{ReleaseRequest{By: "a", Reason: "\x1b[2J"}, "U+001B"},
		{ReleaseRequest{By: "a", Reason: "\xff"}, "not valid UTF-8"},
		{ReleaseRequest{By: strings.Repeat("a", MaxReleaseBy+1), Reason: "x"}, "65 characters, over the 64"},
		{ReleaseRequest{By: "a", Reason: strings.Repeat("a", MaxReleaseReason+1)}, "over the 200"},
	} {
		require.ErrorContains(t, tc.r.Validate(), tc.want, "%+v", tc.r)
	}
}

// TestClientAdmin: Grants and Release speak the routes the daemon serves;
// Release checks the request before it sends anything.
func TestClientAdmin(t *testing.T) {
	var released []string
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /v1/grants":
			WriteJSON(w, http.StatusOK, []box.Grant{{ID: "g-1", Kind: box.KindBooking}})
		case "POST /v1/slots/3/release":
			var req ReleaseRequest
			if DecodeBody(w, r, &req) {
				released = append(released, req.By+": "+req.Reason)
				WriteJSON(w, http.StatusOK, struct{}{})
			}
		case "POST /v1/slots/4/release":
			WriteError(w, http.StatusConflict, "slot 4 is released already")
		default:
			WriteError(w, http.StatusNotFound, r.URL.Path)
		}
	}))
	gs, err := c.Grants(t.Context())
	require.NoError(t, err)
	require.Equal(t, "g-1", gs[0].ID)
	require.NoError(t, c.Release(t.Context(), 3, ReleaseRequest{By: "alice", Reason: "swap battery"}))
	require.Equal(t, []string{"alice: swap battery"}, released)
	err = c.Release(t.Context(), 4, ReleaseRequest{By: "alice", Reason: "again"})
	require.True(t, IsStatus(err, http.StatusConflict), "%v", err)
	require.ErrorContains(t, c.Release(t.Context(), 3, ReleaseRequest{By: "alice"}), "reason is required")
	require.Len(t, released, 1, "an invalid request is not sent")
}
