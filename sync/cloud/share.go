package cloud

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Replicas: several Serve processes on one database and one broker, each
// box message handled by one of them (Options.ShareGroup).
//
// A share-group member connects with a clean session. mosquitto 2 (subs.c:
// round robin over the group's sessions, connected or not) and mochi
// (topics.go SelectShared: any member session) both keep handing a
// persistent member its share of the box messages while it is offline,
// queued in its session until it comes back. A replica that dies for good,
// or comes back under another client id (a new pod), would swallow 1/N of
// every box's messages until its session expires, which on mosquitto is
// never by default. With a clean session the broker forgets the member and
// its subscriptions when its connection ends, and the live members get
// everything. What that costs, the protocol repairs:
//
//   - QoS 1 messages in flight to a replica when it dies are lost (mosquitto
//     #2662; MQTT 5 4.8.2 allows a server to drop or redeliver them). A box
//     resends an unacked event batch after its AckTimeout, and a lost sync
//     request or status is repaired by the catch-up below.
//   - While no replica at all is connected, box messages have no subscriber
//     and are dropped: events are resent, and a box that asked for records
//     in that time is caught up once a replica is back (catch-up), or at its
//     next status (every 5 minutes) if its online status was lost too.

// maxShareGroup bounds a share group name: it is a topic level the broker
// keeps per subscription.
const maxShareGroup = 64

func checkShareGroup(g string) error {
	if g == "" {
		return nil
	}
	if len(g) > maxShareGroup || strings.ContainsAny(g, "/+# \t\r\n\x00") {
		return fmt.Errorf("Options.ShareGroup %q: want at most %d bytes without '/', '+', '#' or spaces", g, maxShareGroup)
	}
	return nil
}

// subscription is the filter Serve subscribes with for filter.
func (c *Cloud) subscription(filter string) string {
	if c.opts.ShareGroup == "" {
		return filter
	}
	return "$share/" + c.opts.ShareGroup + "/" + filter
}

// Catch-up: a box left behind is brought current in seconds.
//
// A replica can commit a revision and die before it pushes it, or die
// holding a box's sync request; the box would then wait for its periodic
// request (15 minutes). Every replica therefore scans, every catchUpEvery,
// the statuses the boxes reported (kept in the store, so seen by all): a
// box online at a revision below the store's at two scans in a row, with
// no newer status between (a box publishes its status after applying a
// batch, within milliseconds of a push), is sent the delta from the
// revision it reported, as if it had asked.
//
// Bound, per box and replica: after the first catch-up answer for the same
// reported revision the next waits 2, 4, 8... scans, at most
// catchUpMaxScans (about 10 minutes, past the box's own 5-minute status),
// and every answer is within Options.SyncRate. A box that cannot apply
// what it is sent, or whose newer status was lost, costs one small answer
// per replica per 10 minutes, not a loop. N replicas may each send the same
// catch-up: a box ignores a batch it already has.
//
// The scan reads each box's row once (Boxes, then one read per box): for a
// fleet of thousands on PostgreSQL that is thousands of small queries per
// scan per replica. So that it never keeps the store busy, the next scan
// starts catchUpEvery after the last began, or catchUpIdle times the
// last's duration after it ended if that is later (a scan of 1 s: one
// every 5 s, and the catch-up and its backoff slow down alike). A store
// query for "online and behind" would make a scan one query.
const (
	catchUpEvery    = 2 * time.Second
	catchUpIdle     = 4
	catchUpMaxScans = 300 // 10 minutes of scans at catchUpEvery
)

// behind is what the catch-up remembers of a box seen behind.
type behind struct {
	have  uint64 // the revision its status reported
	next  int    // scan at which to send the next catch-up
	tries int    // catch-ups sent for have
}

// catchUp keeps the per-box state between scans; only catchUpLoop uses it.
type catchUp struct {
	scan  int
	boxes map[string]*behind
}

// catchUpLoop scans every catchUpEvery (or slower, see above) until done
// is closed.
func (c *Cloud) catchUpLoop(s *server) {
	timer := time.NewTimer(catchUpEvery)
	defer timer.Stop()
	cu := &catchUp{boxes: map[string]*behind{}}
	for {
		select {
		case <-s.done:
			return
		case <-timer.C:
			began := time.Now()
			if err := c.catchUpScan(s, cu); err != nil {
				c.log.Error("catch-up scan", "err", err)
			}
			took := time.Since(began)
			timer.Reset(max(catchUpEvery-took, catchUpIdle*took))
		}
	}
}

// catchUpScan is one scan: it hands a catch-up job to the box's worker for
// each box that is due one.
func (c *Cloud) catchUpScan(s *server, cu *catchUp) error {
	cu.scan++
	ids, err := c.Boxes()
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(cu.boxes))
	for _, id := range ids {
		select {
		case <-s.done:
			return nil
		default:
		}
		have, ok, err := c.boxBehind(id)
		if err != nil {
			c.log.Warn("catch-up: reading the box", "box", id, "err", err)
			continue
		}
		if !ok {
			continue
		}
		seen[id] = true
		b := cu.boxes[id]
		if b == nil || b.have != have {
			// First seen behind at this revision: a push may be on its
			// way. Due at the next scan if still so.
			cu.boxes[id] = &behind{have: have, next: cu.scan + 1}
			continue
		}
		if cu.scan < b.next {
			continue
		}
		b.tries++
		b.next = cu.scan + min(1<<min(b.tries, 16), catchUpMaxScans)
		c.stats.catchUps.Add(1)
		c.log.Info("box behind the store with no answer on its way: sending what it misses",
			"box", id, "have", have, "attempt", b.tries)
		s.enqueue(c, job{box: id, leaf: leafCatchUp, from: have})
	}
	for id := range cu.boxes {
		if !seen[id] {
			delete(cu.boxes, id) // current, offline, or gone
		}
	}
	return nil
}

// leafCatchUp marks a catch-up job (not a topic leaf: boxes cannot send it).
const leafCatchUp = "catch-up"

// boxBehind says whether the box's last status is online at a revision
// below the store's, and which, in one read.
func (c *Cloud) boxBehind(boxID string) (have uint64, ok bool, err error) {
	err = c.view("catch-up", boxID, func(bt boxTx) error {
		m := bt.meta()
		if m.Status == nil {
			return nil
		}
		var st wire.Status
		if err := json.Unmarshal(m.Status, &st); err != nil {
			return fmt.Errorf("stored status: %w", err)
		}
		have, ok = st.Revision, st.Online && st.Revision < m.Rev
		return nil
	})
	return have, ok, err
}
