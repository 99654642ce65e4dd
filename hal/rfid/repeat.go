package rfid

import "time"

// recentTags is how many distinct tags the repeat filter remembers. Two fobs
// on one ring can both answer in turn; remembering a few keeps their
// alternating frames from counting as new presentations.
const recentTags = 4

// repeatFilter turns a reader's frames into presentations: a tag counts when
// it has not been seen within window.
type repeatFilter struct {
	window time.Duration
	seen   [recentTags]struct {
		uid string
		at  time.Time
	}
}

// accept records a frame of uid at now and reports whether it starts a new
// presentation.
func (f *repeatFilter) accept(uid string, now time.Time) bool {
	oldest := 0
	for i := range f.seen {
		e := &f.seen[i]
		if e.uid == uid {
			fresh := now.Sub(e.at) > f.window
			e.at = now
			return fresh
		}
		if e.uid == "" || (f.seen[oldest].uid != "" && e.at.Before(f.seen[oldest].at)) {
			oldest = i
		}
	}
	f.seen[oldest].uid, f.seen[oldest].at = uid, now
	return true
}
