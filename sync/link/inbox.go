package link

import (
	"sync"
	"time"
)

// Inbox bounds. A snapshot of 100,000 grants is about a hundred 1 MiB
// chunks, which may all arrive at once after a reconnect; the bound is
// there for a broker or neighbour flooding the box, not for normal work.
// Whatever is dropped is repaired by the sync request the worker sends when
// it sees the drop.
const (
	inboxMaxItems = 10000
	inboxMaxBytes = 256 << 20
)

type connEvent int

const (
	evMessage connEvent = iota
	evConnected
	evLost
)

// item is one thing for the worker: a message or a connection change.
type item struct {
	event   connEvent
	topic   string
	payload []byte
}

// inbox is an unbounded-up-to-a-limit FIFO between paho's handlers, which
// must never block, and the worker. A buffered channel would make the
// handler block, or drop, at a fixed small depth.
type inbox struct {
	mu      sync.Mutex
	items   []item
	bytes   int
	dropped int
	ready   chan struct{} // has a token when items is not empty
}

func newInbox() *inbox { return &inbox{ready: make(chan struct{}, 1)} }

func (q *inbox) push(it item) {
	q.mu.Lock()
	if it.event == evMessage && (len(q.items) >= inboxMaxItems || q.bytes+len(it.payload) > inboxMaxBytes) {
		q.dropped++
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, it)
	q.bytes += len(it.payload)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns everything queued and how many messages were dropped since
// the last take.
func (q *inbox) take() ([]item, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items, dropped := q.items, q.dropped
	q.items, q.bytes, q.dropped = nil, 0, 0
	return items, dropped
}

// limiter is a token bucket: burst tokens, one more every period.
type limiter struct {
	burst      float64
	per        time.Duration
	tokens     float64
	last       time.Time
	suppressed int // refused by the limiter since the last allowed
}

func newLimiter(burst int, per time.Duration) *limiter {
	return &limiter{burst: float64(burst), per: per, tokens: float64(burst)}
}

// allow takes a token if there is one. suppressed is how many calls were
// refused since the last one allowed, to report them with it.
func (l *limiter) allow(now time.Time) (ok bool, suppressed int) {
	if !l.last.IsZero() {
		l.tokens += float64(now.Sub(l.last)) / float64(l.per)
		if l.tokens > l.burst {
			l.tokens = l.burst
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	s := l.suppressed
	l.suppressed = 0
	return true, s
}
