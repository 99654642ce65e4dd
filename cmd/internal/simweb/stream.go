package simweb

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// getStream sends the State at once and again after each change of the
// depot, at most one per StreamEvery, with a heartbeat comment when idle.
// The box selection is the stream's: the page reconnects to change it.
func (s *Server) getStream(w http.ResponseWriter, r *http.Request) {
	want := r.URL.Query().Get("box")
	boxes := s.d.Boxes()
	if _, err := selected(boxes, want); err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	rc := http.NewResponseController(w)
	if !s.enter() {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many streams open (%d): close a tab", s.maxStreams))
		return
	}
	defer s.leave()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	ctx := r.Context()
	heartbeat := time.NewTicker(s.heartbeatEvery)
	defer heartbeat.Stop()
	for first := true; ; first = false {
		// Take the next change's channel before reading the state, so that a
		// change while it is built is not missed.
		changed := s.d.Changed()
		if !first {
			boxes = s.d.Boxes()
		}
		// "" follows the first box (there may be none yet at the start).
		id, err := selected(boxes, want)
		if err != nil {
			// The depot never drops a box; if one went, say so and let the
			// page reconnect to the first.
			fmt.Fprintf(w, "event: gone\ndata: %q\n\n", err.Error())
			_ = rc.Flush()
			return
		}
		b, err := json.Marshal(s.state(ctx, boxes, id))
		if err != nil {
			s.log.Error("simweb: encoding the state", "err", err)
			return
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return // the page went away
		}
		if err := rc.Flush(); err != nil {
			return
		}
		last := time.Now()
	wait:
		for {
			select {
			case <-changed:
				break wait
			case <-heartbeat.C:
				if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
			case <-ctx.Done():
				return
			case <-s.closed:
				return
			}
		}
		// Coalesce: whatever else changes until StreamEvery after the last
		// State goes into the next one.
		if d := time.Until(last.Add(StreamEvery)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			case <-s.closed:
				t.Stop()
				return
			}
		}
	}
}

// enter counts a stream in, if there is room and the server is open.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return false
	default:
	}
	if s.streams >= s.maxStreams {
		return false
	}
	s.streams++
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	s.streams--
	s.mu.Unlock()
}
