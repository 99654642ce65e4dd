package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/ntpsync"
)

// Bounds of the local socket.
const (
	// sunPathMax is the longest Unix socket path Linux takes (sun_path is
	// 108 bytes with the terminating NUL).
	sunPathMax = 107
	// socketProbeTimeout bounds the dial that tells a live socket (another
	// smartboxd answers) from a stale file a killed one left.
	socketProbeTimeout = time.Second
	// socketStopWait bounds the wait for requests in flight at stop
	// (a keypad request types for a few seconds at most).
	socketStopWait = 5 * time.Second
	// socketHeaderTimeout bounds a client's request headers.
	socketHeaderTimeout = 10 * time.Second
	// watchHeartbeat is how often an idle watch writes a comment line, so
	// that a client gone away is noticed (the write fails) and its
	// goroutine ends.
	watchHeartbeat = 15 * time.Second
	// socketTempPattern names the private directory a new socket is made
	// in before it is linked into place: short, for sun_path's sake.
	socketTempPattern = ".sbsock*"
	// defaultEvents is /v1/events' limit when none is given.
	defaultEvents = 100
)

// boxSocket is the listening socket and its file.
type boxSocket struct {
	path string
	ln   net.Listener
	file os.FileInfo // the socket file as made: close removes path only if it is still this one
}

// listenSocket listens on the Unix socket path, mode 0600, or 0660 with
// group (a name) when it is not empty. A socket file that nothing answers
// on (a killed smartboxd's) is removed first; one that answers is another
// daemon's, and an error.
func listenSocket(path, group string) (*boxSocket, error) {
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("--socket-group %s: %w (create the group, or leave --socket-group out for a 0600 socket)", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("--socket-group %s: gid %q is not a number", group, g.Gid)
		}
	}
	if len(path) > sunPathMax {
		return nil, fmt.Errorf("--socket %s: the path is %d bytes, over the %d a Unix socket path may have: choose a shorter one", path, len(path), sunPathMax)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("--socket %s: the path exists and is not a socket: not removing it", path)
		}
		c, err := net.DialTimeout("unix", path, socketProbeTimeout)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("--socket %s: something answers there already (another smartboxd?): stop it or choose another path", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("--socket %s: checking whether the old socket is live: %w", path, err)
		}
		// Nobody listens: a killed daemon's leftover.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--socket %s: removing the stale socket: %w", path, err)
		}
	}
	ln, fi, err := listenPrivate(path, gid)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	return &boxSocket{path: path, ln: ln, file: fi}, nil
}

// listenPrivate listens on a Unix socket that appears at path already 0600
// (or 0660 with group gid, when gid is not -1). The socket drives the
// hardware: only its owner, root and that group may connect.
// A socket file is made under the process umask, so bound at path and
// chmod-ed after, a group member could connect in between (umask 002). It
// is bound instead inside a fresh 0700 directory beside path (nobody else
// can reach into it), made 0600 there, then hard-linked into place: a link,
// unlike a rename, fails if something is at path already, so two daemons
// started together on one --socket cannot take it from each other (the
// second is told, as a bind at path would tell it).
func listenPrivate(path string, gid int) (net.Listener, os.FileInfo, error) {
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), socketTempPattern)
	if err != nil {
		return nil, nil, fmt.Errorf("making a private directory for the new socket: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmpDir) }()
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) > sunPathMax {
		return nil, nil, fmt.Errorf("the temporary socket path %s is %d bytes, over the %d a Unix socket path may have: choose a shorter --socket directory", tmp, len(tmp), sunPathMax)
	}
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, nil, err
	}
	// The file at tmp goes with its directory: the listener must not unlink
	// anything when it closes; boxSocket.close removes path.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	mode := os.FileMode(0o600)
	if gid >= 0 {
		// The group before the mode: 0660 with the daemon's own group
		// would let that group in for a moment.
		if err := os.Chown(tmp, -1, gid); err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("giving it group %d: %w (the daemon's user must be root or in that group)", gid, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("making it %04o: %w", mode, err)
	}
	if err := os.Link(tmp, path); err != nil {
		ln.Close()
		if errors.Is(err, fs.ErrExist) {
			return nil, nil, errors.New("something was put there while this daemon started (another smartboxd?): stop it or choose another path")
		}
		return nil, nil, fmt.Errorf("putting the socket into place: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("the socket put into place: %w", err)
	}
	return ln, fi, nil
}

// close stops listening and removes the socket file, if it is still the one
// this daemon made (never another daemon's that replaced it).
func (s *boxSocket) close(log *slog.Logger) {
	_ = s.ln.Close() // it does not unlink (see listenPrivate)
	fi, err := os.Lstat(s.path)
	if err != nil || !os.SameFile(fi, s.file) {
		return
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Error("removing the socket file", "path", s.path, "err", err)
	}
}

// serveSocket serves the socket (if any) until the returned stop is called.
// Requests see ctx: when the daemon stops, watches end.
func (d *daemon) serveSocket(ctx context.Context) (stop func()) {
	if d.sock == nil {
		return func() {}
	}
	srv := &http.Server{
		Handler:           d.socketRoutes(),
		ReadHeaderTimeout: socketHeaderTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext:       withPeer, // the uid a release records
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go d.failSecure(func() {
		defer close(done)
		if err := srv.Serve(d.sock.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			d.log.Error("local socket stopped", "path", d.sock.path, "err", err)
		}
	})
	d.log.Info("serving the local socket", "path", d.sock.path)
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), socketStopWait)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-done
	}
}

func (d *daemon) socketRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		answer(w, d.socketStatus)
	})
	mux.HandleFunc("GET /v1/slots", func(w http.ResponseWriter, r *http.Request) {
		answer(w, d.socketSlots)
	})
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		answer(w, func() ([]box.Key, error) {
			keys, err := d.store.Keys()
			if keys == nil {
				keys = []box.Key{} // [] rather than null, for the page's JavaScript
			}
			return keys, err
		})
	})
	mux.HandleFunc("GET /v1/grants", d.serveGrants)
	mux.HandleFunc("POST /v1/slots/{n}/release", d.serveRelease)
	mux.HandleFunc("GET /v1/events", d.serveEvents)
	mux.HandleFunc("GET /v1/watch", d.serveWatch)
	mux.HandleFunc("POST /v1/cloud/probe", d.serveProbe)
	d.simRoutes(mux)
	d.selftestRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		boxsocket.WriteError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// answer writes what get returns as JSON, or a 500 with its error.
func answer[T any](w http.ResponseWriter, get func() (T, error)) {
	v, err := get()
	if err != nil {
		boxsocket.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	boxsocket.WriteJSON(w, http.StatusOK, v)
}

// socketStatus is the box in one answer.
func (d *daemon) socketStatus() (boxsocket.Status, error) {
	st := boxsocket.Status{
		BoxID:    d.cfg.BoxID,
		Software: d.software,
		Hardware: d.cfg.Hardware.Profile,
		Started:  d.started.Round(0),
		UptimeS:  int64(time.Since(d.started) / time.Second),
	}
	switch {
	case d.link == nil:
		st.Cloud = "offline-only"
	case d.link.Connected():
		st.Cloud, st.Broker = "connected", d.cfg.Cloud.BrokerURL
	default:
		st.Cloud, st.Broker = "not connected", d.cfg.Cloud.BrokerURL
	}
	if d.link != nil {
		ls := d.link.State()
		st.LastSync, st.LastAck = ls.LastSync.Round(0), ls.LastAck.Round(0)
		st.SyncRefused, st.SyncRefusedAt = ls.Refused, ls.RefusedAt.Round(0)
	}
	now := d.clock.Now()
	st.Clock = now.Round(0)
	st.ClockTrusted = d.floor.Trusted()
	st.ClockFloor, _ = d.floor.Floor()
	if d.sim == nil {
		// The sim's clock is settable, not NTP's: false there. An error
		// (not Linux) is "not known to be synchronised".
		st.ClockSynced, _ = ntpsync.Synced()
	}
	if err := st.FillFromStore(d.store, now); err != nil {
		return st, err
	}
	return st, nil
}

// socketSlots is every slot as a person at the box sees it.
func (d *daemon) socketSlots() ([]boxsocket.Slot, error) {
	keys, err := d.store.Keys()
	if err != nil {
		return nil, fmt.Errorf("reading the keys: %w", err)
	}
	home := map[int]box.Key{}
	for _, k := range keys {
		home[k.Slot] = k
	}
	views := d.ctrl.Slots()
	out := make([]boxsocket.Slot, d.cfg.Hardware.Slots.Count)
	for i := range out {
		n := i + 1
		s := boxsocket.Slot{Slot: n, KeyID: home[n].ID, KeyName: home[n].Name}
		if i < len(views) {
			v := views[i]
			s.KeyPresent, s.Released = v.Occupied, v.Released
			if v.Released {
				s.WaitingFor = v.Purpose
			}
		}
		if d.sim != nil {
			// The pins' truth: the lock as driven, the LED, the key.
			s.Released, s.LED = d.sim.slots.Released(n), d.sim.slots.LED(n)
			s.KeyInSlot = d.sim.slots.Occupied(n)
			s.Jammed, s.SensorDead = d.sim.slots.Jammed(n), d.sim.slots.SensorDead(n)
		}
		out[i] = s
	}
	return out, nil
}

func (d *daemon) serveEvents(w http.ResponseWriter, r *http.Request) {
	after, ok := queryAfter(w, r)
	if !ok {
		return
	}
	limit := defaultEvents
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > boxsocket.MaxEvents {
			boxsocket.WriteError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number in 1..%d", s, boxsocket.MaxEvents))
			return
		}
		limit = n
	}
	answer(w, func() ([]box.Event, error) {
		evs, err := d.eventsAfter(after, limit)
		if evs == nil {
			evs = []box.Event{}
		}
		return evs, err
	})
}

// queryAfter reads ?after= (default 0); on a bad one it has answered 400.
func queryAfter(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	s := r.URL.Query().Get("after")
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		boxsocket.WriteError(w, http.StatusBadRequest, fmt.Sprintf("after %q: want an event sequence number (0 or more)", s))
		return 0, false
	}
	return n, true
}

// serveWatch streams Watch messages as server-sent events: one at once,
// then one after each change, at most one per WatchEvery. The changes come
// from the sources themselves (the sim slots' pins, the controller's slot
// views and entry, every event commit, the link, the clock being set),
// never from polling.
func (d *daemon) serveWatch(w http.ResponseWriter, r *http.Request) {
	after, ok := queryAfter(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	heartbeat := time.NewTicker(watchHeartbeat)
	defer heartbeat.Stop()
	for {
		// Take the change channels before reading the state: a change
		// while it is read fires them, and is sent next.
		var slotsCh <-chan struct{}
		if d.sim != nil {
			slotsCh = d.sim.slots.Changed()
		}
		ctrlCh := d.ctrl.Changed() // the slot views and the keypad entry
		changedCh := d.changes.Wait()

		msg, err := d.watchMessage(after)
		if err != nil {
			d.log.Error("socket watch: reading the state", "err", err)
			fmt.Fprintf(w, ": error: %s\n\n", err) // the client sees the stream end
			return
		}
		b, err := json.Marshal(msg)
		if err != nil {
			d.log.Error("socket watch: encoding", "err", err)
			return
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		sent := time.Now()
		more := len(msg.Events) == boxsocket.MaxEvents // more events wait: no need for a change
		if n := len(msg.Events); n > 0 {
			after = msg.Events[n-1].Seq
		}
		for !more {
			select {
			case <-ctx.Done():
				return
			case <-slotsCh:
			case <-ctrlCh:
			case <-changedCh:
			case <-heartbeat.C:
				if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
				continue
			}
			more = true
		}
		// Coalesce: a burst of changes within WatchEvery is one message.
		if wait := time.Until(sent.Add(boxsocket.WatchEvery)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// watchMessage is the whole state and the events after seq after.
func (d *daemon) watchMessage(after uint64) (boxsocket.Watch, error) {
	var m boxsocket.Watch
	var err error
	if m.Status, err = d.socketStatus(); err != nil {
		return m, err
	}
	if m.Slots, err = d.socketSlots(); err != nil {
		return m, err
	}
	if m.Events, err = d.eventsAfter(after, boxsocket.MaxEvents); err != nil {
		return m, fmt.Errorf("reading the events: %w", err)
	}
	if d.sim != nil {
		m.Typed = d.ctrl.Typed()
	}
	return m, nil
}
