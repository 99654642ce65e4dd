package simweb

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sim/netcut"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// Depot is the running installation as the page uses it; *depot.Depot is one.
type Depot interface {
	Changed() <-chan struct{} // closed at the next change of anything shown; call again
	Boxes() []depot.BoxView
	Events(boxID string) []box.Event // the box's last events (depot.MaxEventsKept), oldest first
	Press(ctx context.Context, boxID, keys string) error
	Take(ctx context.Context, boxID string, slot int) error
	PutBack(ctx context.Context, boxID string, slot int) error
	Fob(ctx context.Context, boxID, uid string) error              // hold a fob at the reader
	ReaderRaw(ctx context.Context, boxID string, raw []byte) error // garbage on the serial line
	SetSlotFault(ctx context.Context, boxID string, slot int, f boxsocket.SlotFault) error
	SetClock(ctx context.Context, boxID string, r boxsocket.ClockRequest) error
	SetNetwork(boxID string, cut netcut.Mode) error // 0 restores
	SetPower(ctx context.Context, boxID string, on bool) error
	ForgeGrant(ctx context.Context, boxID string) error
	Selftest(ctx context.Context, boxID string) (*depot.SelftestRun, error) // the real smartboxctl selftest, a scripted technician at the box
	RestartBroker(ctx context.Context) error
	BrokerUp() bool         // false while RestartBroker runs, and after one that failed
	BrokerError() string    // why the last RestartBroker failed ("" if it did not)
	Inbox() []depot.Message // oldest first
	Fleetio() *fleetiotest.Server
	Vehicles(ctx context.Context) ([]bridge.VehicleLink, error)
	Reservations(ctx context.Context) ([]bridge.Reservation, error)
	Book(ctx context.Context, assignmentID int64, r bridge.BookRequest) error
	Bookings(ctx context.Context) ([]bridge.BookingRow, error)
}

// Bounds of the page's API, stated once.
const (
	// MaxStreams bounds the open /api/stream connections: each is a
	// goroutine rebuilding the State at every change, and a simulator is
	// watched by a few tabs, not a crowd. Beyond it: 503.
	MaxStreams = 32
	// StreamEvery is the shortest gap between two States on one stream: a
	// PIN typed is a dozen changes in a second, and the page redraws once.
	StreamEvery = 100 * time.Millisecond
	// HeartbeatEvery is how often an idle stream sends a comment, so that
	// a proxy or the browser does not take the quiet for a dead connection.
	HeartbeatEvery = 15 * time.Second
	// MaxBody caps a request body: the largest is a reader's raw bytes
	// (boxsocket.MaxRawBytes, in base64) or a booking's window.
	MaxBody = 16 << 10
	// StateTimeout bounds building one State: the bridge's lists are local
	// calls, and a stuck one must not freeze every stream.
	StateTimeout = 5 * time.Second
	// ActionTimeout bounds one action: a keypad string of boxsocket.MaxKeys
	// keys typed through the real scanner takes a few seconds.
	ActionTimeout = 30 * time.Second
	// DefaultAssignmentLength is the window of an assignment created
	// without ended_at: a working day.
	DefaultAssignmentLength = 8 * time.Hour
)

//go:embed static
var staticFiles embed.FS

// Server is the page and its API. Close ends the open streams (an
// http.Server's Shutdown waits for them otherwise).
type Server struct {
	// immutable
	d       Depot
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler // mux behind the host, origin and content-type checks
	anyHost bool
	now     func() time.Time

	// tests shorten these
	heartbeatEvery time.Duration
	maxStreams     int

	// mutable
	mu      sync.Mutex
	streams int
	closed  chan struct{}
	closing sync.Once
}

var _ http.Handler = (*Server)(nil)

// Options are New's settings; the zero value serves 127.0.0.1 only.
type Options struct {
	// Logger gets one line per failed action (nil: none).
	Logger *slog.Logger
	// AnyHost answers a request whatever its Host header. Without it only
	// 127.0.0.1, localhost and [::1] are answered: the page drives the whole
	// installation and has no login, so a web page the user visits must not
	// reach it through a DNS name rebound to 127.0.0.1.
	AnyHost bool
}

// New makes the page and API over d.
func New(d Depot, o Options) *Server {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{d: d, log: log, mux: http.NewServeMux(), now: time.Now, anyHost: o.AnyHost,
		heartbeatEvery: HeartbeatEvery, maxStreams: MaxStreams, closed: make(chan struct{})}
	s.routes()
	// Any page in the user's browser can send a request to 127.0.0.1: a
	// cross-site one that changes something is refused (403) before it
	// reaches the depot.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused: the simulator takes actions from its own page only")
	}))
	s.handler = s.checkHost(cop.Handler(requireJSON(s.mux)))
	return s
}

// checkHost refuses (403) a request whose Host is not a loopback name,
// unless the server answers any host.
func (s *Server) checkHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.anyHost && !IsLoopback(r.Host) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("host %q refused: the simulator answers loopback addresses only (127.0.0.1, localhost, [::1]; start it with --allow-remote and a non-loopback --listen for others)", r.Host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// IsLoopback reports whether host (a Host header, or a listen address;
// with or without a port) names this machine only: localhost, or a loopback
// address (any of 127/8, ::1). The page answers only such Hosts unless
// Options.AnyHost, and smartbox-sim listens only on such addresses unless
// --allow-remote. "" and ":8400" (every interface) are not.
func IsLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireJSON refuses (415) a body that is not declared application/json on
// a method that changes something: a plain HTML form (text/plain,
// urlencoded, multipart) can be sent cross-site without a preflight, JSON
// cannot.
func requireJSON(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			h.ServeHTTP(w, r)
			return
		}
		ct := r.Header.Get("Content-Type")
		if r.ContentLength == 0 && ct == "" {
			h.ServeHTTP(w, r) // no body: nothing to declare (DELETE)
			return
		}
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("body: Content-Type %q, want application/json", ct))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Close ends every open stream; later ones are refused (503).
func (s *Server) Close() error {
	s.closing.Do(func() { close(s.closed) })
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		// The page changes with the binary: never a stale app.js.
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", noCache(files)))

	s.mux.HandleFunc("GET /api/state", s.getState)
	s.mux.HandleFunc("GET /api/stream", s.getStream)

	s.mux.HandleFunc("POST /api/boxes/{id}/keypad", s.action(s.keypad))
	s.mux.HandleFunc("POST /api/boxes/{id}/slots/{n}/take", s.action(s.take))
	s.mux.HandleFunc("POST /api/boxes/{id}/slots/{n}/put-back", s.action(s.putBack))
	s.mux.HandleFunc("PUT /api/boxes/{id}/slots/{n}/fault", s.action(s.fault))
	s.mux.HandleFunc("POST /api/boxes/{id}/reader", s.action(s.reader))
	s.mux.HandleFunc("PUT /api/boxes/{id}/clock", s.action(s.clock))
	s.mux.HandleFunc("PUT /api/boxes/{id}/network", s.action(s.network))
	s.mux.HandleFunc("PUT /api/boxes/{id}/power", s.action(s.power))
	s.mux.HandleFunc("POST /api/boxes/{id}/forged-grant", s.action(s.forgedGrant))
	// A self-test waits for every lock and key: depot.SelftestTimeout,
	// not ActionTimeout.
	s.mux.HandleFunc("POST /api/boxes/{id}/selftest", s.actionWithin(depot.SelftestTimeout, s.selftest))
	s.mux.HandleFunc("POST /api/broker/restart", s.action(s.brokerRestart))

	s.mux.HandleFunc("POST /api/fleetio/assignments", s.action(s.createAssignment))
	s.mux.HandleFunc("PATCH /api/fleetio/assignments/{id}", s.action(s.changeAssignment))
	s.mux.HandleFunc("POST /api/fleetio/assignments/{id}/end", s.action(s.endAssignment))
	s.mux.HandleFunc("DELETE /api/fleetio/assignments/{id}", s.action(s.deleteAssignment))
	s.mux.HandleFunc("POST /api/reservations/{assignment}/book", s.action(s.book))

	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
	})
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
