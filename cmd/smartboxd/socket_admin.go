package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
)

// serveGrants is GET /v1/grants: every grant the store holds. box.Grant
// has no code field (the store keeps only the codes' HMACs), so none can
// leak here.
func (d *daemon) serveGrants(w http.ResponseWriter, r *http.Request) {
	answer(w, func() ([]box.Grant, error) {
		gs, err := d.store.Grants()
		if gs == nil {
			gs = []box.Grant{}
		}
		return gs, err
	})
}

// serveRelease is POST /v1/slots/{n}/release: the controller releases slot
// n for a person at the box, as for a take (it relocks when the key moves
// or after the release time), recording who, why and the peer's uid.
func (d *daemon) serveRelease(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 || n > d.cfg.Hardware.Slots.Count {
		boxsocket.WriteError(w, http.StatusNotFound, fmt.Sprintf("slot %q: want a number in 1..%d", r.PathValue("n"), d.cfg.Hardware.Slots.Count))
		return
	}
	var req boxsocket.ReleaseRequest
	if !boxsocket.DecodeBody(w, r, &req) {
		return
	}
	if err := req.Validate(); err != nil {
		boxsocket.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	uid := peerUID(r.Context())
	err = d.ctrl.ReleaseLocal(n, req.By, uid, req.Reason)
	switch {
	case errors.Is(err, box.ErrSlotBusy):
		boxsocket.WriteError(w, http.StatusConflict, fmt.Sprintf("slot %d is released already: wait for it to relock (its key taken or seated, or its release time over)", n))
		return
	case err != nil:
		boxsocket.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("releasing slot %d: %v", n, err))
		return
	}
	d.log.Info("slot released on the admin socket", "slot", n, "by", req.By, "uid", uid, "reason", req.Reason)
	boxsocket.WriteJSON(w, http.StatusOK, struct{}{})
}

// peerKey is the context key of a connection's peer uid.
type peerKey struct{}

// withPeer is the server's ConnContext: it keeps the peer's uid
// (SO_PEERCRED) for the connection's requests; -1 when it is not known.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uid := -1
	if uc, ok := c.(*net.UnixConn); ok {
		uid = unixPeerUID(uc)
	}
	return context.WithValue(ctx, peerKey{}, uid)
}

// peerUID is the uid withPeer kept, -1 if none.
func peerUID(ctx context.Context) int {
	if uid, ok := ctx.Value(peerKey{}).(int); ok {
		return uid
	}
	return -1
}
