package bridge

import (
	"log/slog"
	"net/http"
	"time"
)

// httpLimits are the timeouts and header bound of one HTTP listener: what a
// slow or hostile client can hold. Each connection costs a goroutine and
// about 10 KB of buffers while it is open; these bound how long it is open
// and how many header bytes it may make the server keep.
type httpLimits struct {
	// ReadHeader: from the connection's first byte to the end of the
	// request's headers.
	ReadHeader time.Duration
	// Read: the whole request, headers and body (0: none).
	Read time.Duration
	// Write: from the end of the headers to the end of the answer (0:
	// none).
	Write time.Duration
	// Idle: a kept-alive connection waiting for its next request.
	Idle time.Duration
	// MaxHeaderBytes bounds the request line and headers (net/http's
	// default is 1 MiB, which every slow client could make the server
	// hold).
	MaxHeaderBytes int
}

// publicLimits are the internet-facing listener's (webhooks, access pages,
// health check), usually behind a TLS reverse proxy on the same network.
var publicLimits = httpLimits{
	// Fleetio's and a browser's headers come in one or two packets; 10 s
	// is a phone on a bad mobile link, and a client that takes longer is
	// holding a connection, not sending a request.
	ReadHeader: 10 * time.Second,
	// The biggest body is a webhook of at most fleetio.max_body (64 KiB
	// by default), seconds even at a few hundred kbit/s. 20 s bounds the
	// whole request; a webhook body has its own, shorter deadline
	// (bridge.DefaultBodyTimeout, 5 s), which is what bounds how long a
	// slow client holds one of the webhook's body slots.
	Read: 20 * time.Second,
	// Answers are small (JSON, an access page); Fleetio gives up on a
	// delivery after about 30 s.
	Write: 30 * time.Second,
	// Long enough for Fleetio to reuse a connection through a burst of
	// deliveries; idle connections are otherwise memory held for nobody.
	Idle: time.Minute,
	// Fleetio's headers (signature, Authorization, type, user agent) and a
	// proxy's X-Forwarded-* are under 2 KiB.
	MaxHeaderBytes: 16 << 10,
}

// adminLimits are the admin endpoint's: loopback only, behind a bearer
// token, used by the CLI.
var adminLimits = httpLimits{
	ReadHeader: 10 * time.Second,
	// The biggest request is a grant (maxAdminBody), written over
	// loopback in milliseconds.
	Read: 30 * time.Second,
	// None: release-slot waits for the box's answer and a reconcile reads
	// every assignment from Fleetio; the CLI's own client timeout bounds
	// them.
	Write:          0,
	Idle:           time.Minute,
	MaxHeaderBytes: 16 << 10, // a bearer token and a few headers
}

// server makes an http.Server for h with these limits, logging net/http's
// own complaints (a TLS handshake error, a header too large) at warn.
func (l httpLimits) server(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeader,
		ReadTimeout:       l.Read,
		WriteTimeout:      l.Write,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
