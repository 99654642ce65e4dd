package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/sync/link"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// serveProbe is POST /v1/cloud/probe: a signed round trip to the cloud
// through the link (link.Probe), for selftest and doctor. It sends one sync
// request, so it is not cheap for the cloud: the link bounds how many wait
// at once, and the cloud rate-limits a box's requests.
func (d *daemon) serveProbe(w http.ResponseWriter, r *http.Request) {
	fail := func(reason, msg string) {
		boxsocket.WriteJSON(w, http.StatusServiceUnavailable, boxsocket.ProbeFailure{Error: msg, Reason: reason})
	}
	if d.link == nil {
		fail(boxsocket.ProbeOfflineOnly, "this box's config has no [cloud] section: it runs offline-only and has no cloud to probe")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), boxsocket.ProbeTimeout)
	defer cancel()
	res, err := d.link.Probe(ctx)
	if err != nil {
		fail(probeReason(err), err.Error())
		return
	}
	boxsocket.WriteJSON(w, http.StatusOK, boxsocket.ProbeResponse{
		RTTMS: float64(res.RTT.Microseconds()) / 1000, KeyID: res.KeyID})
}

// probeReason is the socket's word for a link probe error.
func probeReason(err error) string {
	switch {
	case errors.Is(err, link.ErrNotConnected):
		return boxsocket.ProbeNotConnected
	case errors.Is(err, link.ErrProbeTimeout):
		return boxsocket.ProbeTimedOut
	case errors.Is(err, wire.ErrWrongAudience):
		return boxsocket.ProbeWrongBox
	case errors.Is(err, link.ErrProbeSignature):
		return boxsocket.ProbeBadSignature
	case errors.Is(err, link.ErrProbeBusy):
		return boxsocket.ProbeBusy
	}
	return boxsocket.ProbeFailed
}
