package main

// The maintenance session behind `smartboxctl selftest` on a running box
// (routes in cmd/internal/boxsocket/selftest.go). While a session lasts the
// keypad, the reader and the key sensors talk to it instead of the
// controller, so no code or fob opens anything, and the technician's
// client drives the locks itself; every release is audited in the outbox
// like a driver's.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/selftest"
)

// sessionInputs bounds the inputs a session keeps for its client: a
// technician presses one key at a time, so more unread means the client
// is not reading, and the oldest news is not worth memory.
const sessionInputs = 64

// inputRouter is where the keypad, the reader and the key sensors send
// what they read: the controller, or the maintenance session while one
// lasts. It is also the link's Releaser: a remote release during a session
// is refused (the cloud sends it again after).
type inputRouter struct {
	d *daemon
	// lease is boxsocket.SessionLease (tests shorten it before run).
	lease time.Duration

	mu sync.Mutex
	s  *maintSession // nil: the controller has the inputs
	// endedID and endedWhy say why the last session ended, for a client
	// still using it (only the last: one technician at a time).
	endedID, endedWhy string
}

// maintSession is one maintenance session.
type maintSession struct {
	id     string
	inputs chan boxsocket.SessionInput
	done   chan struct{} // closed at end
	// guarded by inputRouter.mu
	released map[int]bool
	inflight int // requests being served: the lease does not run out meanwhile
	lastSeen time.Time
	timer    *time.Timer
	lease    time.Duration // the router's when the session began
	began    time.Time
}

func newInputRouter(d *daemon) *inputRouter {
	return &inputRouter{d: d, lease: boxsocket.SessionLease}
}

func (r *inputRouter) session() *maintSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.s
}

// offer gives s an input, dropping it if the client is not reading.
func (r *inputRouter) offer(s *maintSession, in boxsocket.SessionInput) {
	select {
	case s.inputs <- in:
	default:
		r.d.log.Warn("selftest: input dropped, the client is not reading", "session", s.id, "kind", in.Kind)
	}
}

// Press is the keypad's.
func (r *inputRouter) Press(key rune) {
	if s := r.session(); s != nil {
		r.offer(s, boxsocket.SessionInput{Kind: boxsocket.InputKey, Key: string(key)})
		return
	}
	r.d.ctrl.Press(key)
}

// FobScanned is the reader's.
func (r *inputRouter) FobScanned(uid string) {
	if s := r.session(); s != nil {
		r.offer(s, boxsocket.SessionInput{Kind: boxsocket.InputFob, Fob: uid})
		return
	}
	r.d.ctrl.FobScanned(uid)
}

// KeySensed is the key sensors'.
func (r *inputRouter) KeySensed(slot int, present bool) {
	if s := r.session(); s != nil {
		r.offer(s, boxsocket.SessionInput{Kind: boxsocket.InputSensor, Slot: slot, Present: present})
		return
	}
	r.d.ctrl.KeySensed(slot, present)
}

// RemoteRelease is the link's: refused while a technician tests the box.
func (r *inputRouter) RemoteRelease(slot int, by, reason, commandID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.s != nil {
		return fmt.Errorf("slot %d: a technician's self-test is running on the box: send the command again when it ends", slot)
	}
	return r.d.ctrl.RemoteRelease(slot, by, reason, commandID)
}

// RestoreKeypad is the link's: let through during a self-test, which
// moves no lock and reads no code the budget counts (the session takes
// the keypad's input), so a restore changes nothing the technician sees.
func (r *inputRouter) RestoreKeypad(by, reason, commandID string) error {
	return r.d.ctrl.RestoreKeypad(by, reason, commandID)
}

// audit commits events as the controller does (the link drains at once,
// watchers are told), stamped with the box clock and its trust.
func (d *daemon) audit(evs ...box.Event) error {
	now := d.clock.Now()
	for i := range evs {
		evs[i].Time, evs[i].ClockUntrusted = now, !d.floor.Trusted()
	}
	_, err := d.commitStore().Commit(box.Change{Events: evs})
	return err
}

// begin starts a session for the socket peer uid (-1: unknown), or says
// why not (409).
func (r *inputRouter) begin(uid int) (*maintSession, error) {
	r.mu.Lock()
	if r.s != nil {
		r.mu.Unlock()
		return nil, errSessionBusy
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	s := &maintSession{id: hex.EncodeToString(b[:]), inputs: make(chan boxsocket.SessionInput, sessionInputs),
		done: make(chan struct{}), released: map[int]bool{}, lastSeen: time.Now(), began: time.Now()}
	s.lease = r.lease
	r.s = s // from here no input reaches the controller
	r.mu.Unlock()
	// A code or fob read just before may still be queued: let the
	// controller handle it, then look whether a driver's slot is open.
	r.d.ctrl.Flush()
	for _, v := range r.d.ctrl.Slots() {
		if v.Released {
			r.abandon(s)
			return nil, fmt.Errorf("slot %d is released for a driver (%s): wait until it relocks: %w", v.Slot, v.Purpose, errSessionBusy)
		}
	}
	if err := r.d.audit(box.Event{Type: box.EventMaintenanceBegan, Detail: fmt.Sprintf("selftest session %s by uid %d", s.id, uid)}); err != nil {
		r.abandon(s)
		return nil, fmt.Errorf("recording the session's start: %w", err)
	}
	r.mu.Lock()
	s.timer = time.AfterFunc(s.lease, func() { r.d.failSecure(func() { r.expire(s) }) })
	r.mu.Unlock()
	r.d.log.Info("selftest session began", "session", s.id)
	return s, nil
}

var errSessionBusy = errors.New("another self-test session is running")

// abandon undoes a session that never began (nothing was released).
func (r *inputRouter) abandon(s *maintSession) {
	r.mu.Lock()
	if r.s == s {
		r.s = nil
		close(s.done)
	}
	r.mu.Unlock()
}

// expire ends s if its client has gone quiet for the lease.
func (r *inputRouter) expire(s *maintSession) {
	r.mu.Lock()
	if r.s != s {
		r.mu.Unlock()
		return
	}
	if left := s.lease - time.Since(s.lastSeen); s.inflight > 0 || left > 0 {
		if s.inflight == 0 {
			s.timer.Reset(left)
		}
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.end(s, fmt.Sprintf("lease expired: no request for %s", s.lease))
}

// end ends s (if it is still the session): every lock de-energised, the
// relocks and the end recorded, and the controller told what the sensors
// read now (keys moved meanwhile).
func (r *inputRouter) end(s *maintSession, why string) {
	r.mu.Lock()
	if r.s != s {
		r.mu.Unlock()
		return
	}
	// Locks first, before anything that can fail.
	lockErr := r.d.slots.LockAll()
	r.s = nil
	r.endedID, r.endedWhy = s.id, why
	if s.timer != nil {
		s.timer.Stop()
	}
	close(s.done)
	var evs []box.Event
	for n := 1; n <= r.d.cfg.Hardware.Slots.Count; n++ {
		if s.released[n] {
			evs = append(evs, box.Event{Type: box.EventSlotRelocked, Slot: n, Purpose: box.PurposeSelftest, Reason: box.ReasonStop})
		}
	}
	r.mu.Unlock()
	if lockErr != nil {
		r.d.log.Error("selftest: de-energising the locks at the session's end", "err", lockErr)
	}
	evs = append(evs, box.Event{Type: box.EventMaintenanceEnded, Detail: fmt.Sprintf("selftest session %s: %s", s.id, why)})
	if err := r.d.audit(evs...); err != nil {
		r.d.log.Error("selftest: recording the session's end", "session", s.id, "err", err)
	}
	for n := 1; n <= r.d.cfg.Hardware.Slots.Count; n++ {
		if p, err := r.d.slots.Present(n); err == nil {
			r.d.ctrl.KeySensed(n, p)
		}
	}
	r.d.log.Info("selftest session ended", "session", s.id, "why", why)
}

// stop ends any session (the daemon stops).
func (r *inputRouter) stop() {
	if s := r.session(); s != nil {
		r.end(s, "the box is stopping")
	}
}

// selftestRoutes adds /v1/selftest.
func (d *daemon) selftestRoutes(mux *http.ServeMux) {
	r := d.input
	mux.HandleFunc("POST /v1/selftest", func(w http.ResponseWriter, req *http.Request) {
		s, err := r.begin(peerUID(req.Context()))
		switch {
		case errors.Is(err, errSessionBusy):
			boxsocket.WriteError(w, http.StatusConflict, err.Error())
			return
		case err != nil:
			boxsocket.WriteError(w, http.StatusInternalServerError, err.Error())
			return
		}
		boxsocket.WriteJSON(w, http.StatusOK, boxsocket.SessionInfo{ID: s.id, Slots: d.cfg.Hardware.Slots.Count,
			Layout: d.cfg.Hardware.Keypad.Layout, LeaseMS: s.lease.Milliseconds()})
	})
	// on serves a route on the session named by {id}, its lease held.
	on := func(pattern string, h func(w http.ResponseWriter, req *http.Request, s *maintSession)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, req *http.Request) {
			s, ok := r.hold(w, req.PathValue("id"))
			if !ok {
				return
			}
			defer r.letGo(s)
			h(w, req, s)
		})
	}
	on("DELETE /v1/selftest/{id}", func(w http.ResponseWriter, req *http.Request, s *maintSession) {
		r.end(s, "ended by the client")
		done(w)
	})
	on("POST /v1/selftest/{id}/slots/{n}/release", d.sessionRelease)
	on("POST /v1/selftest/{id}/slots/{n}/lock", d.sessionLock)
	on("GET /v1/selftest/{id}/slots/{n}", func(w http.ResponseWriter, req *http.Request, s *maintSession) {
		n, ok := d.slotPath(w, req)
		if !ok {
			return
		}
		answer(w, func() (boxsocket.SessionSensor, error) {
			p, err := d.slots.Present(n)
			return boxsocket.SessionSensor{Slot: n, Present: p}, err
		})
	})
	on("GET /v1/selftest/{id}/next", d.sessionNext)
	on("POST /v1/selftest/{id}/lease", func(w http.ResponseWriter, req *http.Request, s *maintSession) { done(w) })
	on("GET /v1/selftest/{id}/checks", func(w http.ResponseWriter, req *http.Request, s *maintSession) {
		answer(w, d.sessionChecks)
	})
}

// hold finds session id and holds its lease for one request; on an
// unknown one it has answered 404.
func (r *inputRouter) hold(w http.ResponseWriter, id string) (*maintSession, bool) {
	r.mu.Lock()
	if r.s == nil || r.s.id != id {
		msg := fmt.Sprintf("no self-test session %s", id)
		if id == r.endedID {
			msg += " (ended: " + r.endedWhy + ")"
		}
		r.mu.Unlock()
		boxsocket.WriteError(w, http.StatusNotFound, msg+": begin a new one")
		return nil, false
	}
	s := r.s
	if time.Since(s.began) > boxsocket.MaxSessionLength {
		r.mu.Unlock()
		why := fmt.Sprintf("it ran longer than %s", boxsocket.MaxSessionLength)
		r.end(s, why)
		boxsocket.WriteError(w, http.StatusNotFound, fmt.Sprintf("self-test session %s ended: %s: begin a new one", id, why))
		return nil, false
	}
	s.inflight++
	s.lastSeen = time.Now()
	r.mu.Unlock()
	return s, true
}

// letGo ends hold's request: the lease runs again from now.
func (r *inputRouter) letGo(s *maintSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.inflight--
	s.lastSeen = time.Now()
	if r.s == s && s.timer != nil {
		s.timer.Reset(s.lease)
	}
}

func (d *daemon) sessionRelease(w http.ResponseWriter, req *http.Request, s *maintSession) {
	n, ok := d.slotPath(w, req)
	if !ok {
		return
	}
	var rel boxsocket.SessionRelease
	if !boxsocket.DecodeBody(w, req, &rel) {
		return
	}
	if rel.MS <= 0 {
		boxsocket.WriteError(w, http.StatusBadRequest, fmt.Sprintf("ms %d: want how long to release the lock, in milliseconds (more than 0)", rel.MS))
		return
	}
	r := d.input
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.s != s {
		boxsocket.WriteError(w, http.StatusNotFound, "the self-test session ended: begin a new one")
		return
	}
	// One slot at a time, as the self-test goes: a client cannot energise
	// every coil at once (the supply is sized for one or two).
	for m := range s.released {
		if m != n {
			boxsocket.WriteError(w, http.StatusConflict, fmt.Sprintf("slot %d is still released in this session: lock it first (one slot at a time)", m))
			return
		}
	}
	// Recorded first: a release the outbox cannot hold does not happen.
	if err := d.audit(box.Event{Type: box.EventSlotReleased, Slot: n, Purpose: box.PurposeSelftest, Detail: "selftest session " + s.id}); err != nil {
		boxsocket.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("recording the release of slot %d: %v (not released)", n, err))
		return
	}
	s.released[n] = true
	if err := d.slots.Release(n, time.Duration(rel.MS)*time.Millisecond); err != nil {
		boxsocket.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("releasing slot %d: %v", n, err))
		return
	}
	done(w)
}

func (d *daemon) sessionLock(w http.ResponseWriter, req *http.Request, s *maintSession) {
	n, ok := d.slotPath(w, req)
	if !ok {
		return
	}
	r := d.input
	r.mu.Lock()
	defer r.mu.Unlock()
	// An ended session locked every slot as it ended; a lock arriving
	// after (a racing end) must not relock a slot the controller has
	// since released for a driver.
	if r.s != s {
		boxsocket.WriteError(w, http.StatusNotFound, "the self-test session ended: begin a new one")
		return
	}
	if err := d.slots.Lock(n); err != nil {
		boxsocket.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("locking slot %d: %v", n, err))
		return
	}
	if s.released[n] {
		delete(s.released, n)
		if err := d.audit(box.Event{Type: box.EventSlotRelocked, Slot: n, Purpose: box.PurposeSelftest, Detail: "selftest session " + s.id}); err != nil {
			d.log.Error("selftest: recording a relock", "slot", n, "err", err)
		}
	}
	done(w)
}

func (d *daemon) sessionNext(w http.ResponseWriter, req *http.Request, s *maintSession) {
	wait := boxsocket.MaxNextWait
	if q := req.URL.Query().Get("timeout_ms"); q != "" {
		ms, err := strconv.ParseInt(q, 10, 64)
		if err != nil || ms < 0 {
			boxsocket.WriteError(w, http.StatusBadRequest, fmt.Sprintf("timeout_ms %q: want milliseconds, 0 to %d", q, boxsocket.MaxNextWait.Milliseconds()))
			return
		}
		wait = min(time.Duration(ms)*time.Millisecond, boxsocket.MaxNextWait)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case in := <-s.inputs:
		boxsocket.WriteJSON(w, http.StatusOK, in)
	case <-t.C:
		boxsocket.WriteJSON(w, http.StatusOK, boxsocket.SessionInput{})
	case <-s.done:
		boxsocket.WriteError(w, http.StatusNotFound, "the self-test session ended: begin a new one")
	case <-req.Context().Done():
		// The daemon stopping (or the client gone): say so to a client
		// still there rather than an empty answer.
		boxsocket.WriteError(w, http.StatusServiceUnavailable, "smartboxd is stopping: the self-test session ends")
	}
}

// sessionChecks is the clock, the store (bbolt's check, its identity) and
// the broker.
func (d *daemon) sessionChecks() (boxsocket.SessionChecks, error) {
	st, err := d.socketStatus()
	if err != nil {
		return boxsocket.SessionChecks{}, err
	}
	return boxsocket.SessionChecks{Status: st, StoreErr: selftest.StoreCheck(d.store, d.cfg.BoxID)}, nil
}
