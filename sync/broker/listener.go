package broker

import (
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// closeSafeListener wraps a mochi listener to close a race in mochi v2.7.9:
// each accepted connection runs attachClient in a new goroutine, which calls
// ClientsWg.Add(1) itself, while Server.Close waits on ClientsWg. A
// connection accepted just as the broker closes (a box reconnecting during a
// restart) thus adds to a WaitGroup that is being waited on: a data race, and
// a client that may outlive Close. Here the Add is made before the connection
// is handed over, under a lock that Close takes first, so every connection
// is either counted before the wait or refused.
type closeSafeListener struct {
	listeners.Listener
	clients *sync.WaitGroup // the server's Listeners.ClientsWg

	mu      sync.Mutex
	closing bool
}

func (l *closeSafeListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			return c.Close()
		}
		l.clients.Add(1)
		l.mu.Unlock()
		defer l.clients.Done()
		return establish(id, c)
	})
}

func (l *closeSafeListener) Close(closer listeners.CloseFn) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.Listener.Close(closer)
}
