package cloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Replicas on one broker: two Clouds in one share group on one database.
// They need two Clouds on one store, so they run on PostgreSQL only
// (needReplicas says why); the split itself is tested on each broker kind.

// shareGroup is the tests' group name.
const shareGroup = "smartbox-test"

// shareEnv is a broker with the cloud user and boxes, and an env whose
// Clouds serve in shareGroup with rates no test reaches (the clock is
// fixed: a bucket never refills).
func shareEnv(t *testing.T, kind brokertest.Kind, boxes []string) (*env, brokertest.Broker) {
	t.Helper()
	e := newEnv(t, func(o *cloud.Options) {
		o.ShareGroup = shareGroup
		o.EventRate = cloud.Rate{PerSecond: 1e6, Burst: 1e6}
		o.SyncRate = cloud.Rate{PerSecond: 1e6, Burst: 1e6}
	})
	users := map[string]string{brokertest.CloudUser: brokertest.Password(brokertest.CloudUser)}
	for _, id := range boxes {
		users[id] = brokertest.Password(id)
		if id != "box-a" {
			// One X25519 key for all: e.verifier opens what is signed for
			// any of them.
			require.NoError(t, e.c.RegisterBox(id, e.boxKey.PublicKey().Bytes()))
		}
	}
	return e, brokertest.Start(t, kind, brokertest.Options{Users: users})
}

// serving is a Cloud's Serve running in a test.
type serving struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	dead   atomic.Bool
	mu     gosync.Mutex
	conn   net.Conn // the connection to the broker now
}

// serve runs c.Serve as replica clientID until the test ends (or stop or
// kill), and waits for its subscription.
func serve(t *testing.T, c *cloud.Cloud, br brokertest.Broker, clientID string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- c.Serve(ctx, br.URL(), func(o *mqtt.ClientOptions) {
			o.SetUsername(brokertest.CloudUser).SetPassword(brokertest.Password(brokertest.CloudUser)).
				SetClientID(clientID).
				SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
					if s.dead.Load() {
						return nil, fmt.Errorf("replica %s is dead", clientID)
					}
					conn, err := net.Dial("tcp", u.Host)
					if err == nil {
						s.mu.Lock()
						s.conn = conn
						s.mu.Unlock()
					}
					return conn, err
				})
		})
	}()
	t.Cleanup(s.stop)
	select {
	case <-c.Subscribed():
	case err := <-s.done:
		t.Fatalf("serve %s: %v", clientID, err)
	case <-time.After(waitFor):
		t.Fatalf("serve %s: not subscribed within %v", clientID, waitFor)
	}
	return s
}

// stop ends Serve (idempotent).
func (s *serving) stop() {
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok {
			require.NoError(s.t, err)
			close(s.done)
		}
	case <-time.After(waitFor):
		s.t.Error("Serve did not return after cancel")
	}
}

// kill drops the replica as a crash would: its connection closes with no
// DISCONNECT, and it never connects again.
func (s *serving) kill() {
	s.dead.Store(true)
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close()
	}
	s.mu.Unlock()
	s.stop()
}

// testBox is a box played by hand over paho: a clean session, its own
// topics, every message it sends counted.
type testBox struct {
	id   string
	cl   mqtt.Client
	acks chan uint64
	recs chan []byte
	sent atomic.Uint64
}

func connectBox(t *testing.T, e *env, br brokertest.Broker, id string) *testBox {
	t.Helper()
	b := &testBox{id: id, acks: make(chan uint64, 1024), recs: make(chan []byte, 1024)}
	o := mqtt.NewClientOptions().AddBroker(br.URL()).SetClientID(id).SetProtocolVersion(4).
		SetUsername(id).SetPassword(brokertest.Password(id)).SetCleanSession(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			switch m.Topic() {
			case wire.Topic(id, wire.LeafEventsAck):
				var a wire.EventAck
				if err := e.verifier.Open(m.Payload(), wire.KindEventsAck, id, &a); err != nil {
					t.Errorf("box %s: ack: %v", id, err)
					return
				}
				b.acks <- a.Through
			case wire.Topic(id, wire.LeafRecords):
				b.recs <- m.Payload()
			}
		})
	b.cl = mqtt.NewClient(o)
	tok := b.cl.Connect()
	require.True(t, tok.WaitTimeout(waitFor))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { b.cl.Disconnect(100) })
	tok = b.cl.SubscribeMultiple(map[string]byte{wire.Topic(id, wire.LeafRecords): 1, wire.Topic(id, wire.LeafEventsAck): 1}, nil)
	require.True(t, tok.WaitTimeout(waitFor))
	require.NoError(t, tok.Error())
	return b
}

// publish sends body (JSON) on the box's leaf and waits for the PUBACK.
// Safe from any goroutine: errors are returned, not failed.
func (b *testBox) publish(leaf string, retained bool, body any) error {
	msg, err := json.Marshal(body)
	if err != nil {
		return err
	}
	tok := b.cl.Publish(wire.Topic(b.id, leaf), 1, retained, msg)
	if !tok.WaitTimeout(waitFor) {
		return fmt.Errorf("box %s: no PUBACK on %s", b.id, leaf)
	}
	b.sent.Add(1)
	return tok.Error()
}

// sendEvents sends events 1..n, per in a batch, as sync/link does: one
// batch in flight, sent again from the oldest unacked after resend.
func (b *testBox) sendEvents(n, per uint64, resend time.Duration) error {
	deadline := time.Now().Add(waitFor)
	for next := uint64(1); next <= n; {
		if time.Now().After(deadline) {
			return fmt.Errorf("box %s: events from %d not acked within %v", b.id, next, waitFor)
		}
		batch := events(seqRange(next, min(next+per-1, n))...)
		batch.Box = b.id
		if err := b.publish(wire.LeafEvents, false, batch); err != nil {
			return err
		}
		timer := time.NewTimer(resend)
	wait:
		for {
			select {
			case through := <-b.acks:
				if through >= next {
					next = through + 1
					break wait
				}
			case <-timer.C:
				break wait
			}
		}
		timer.Stop()
	}
	return nil
}

func boxIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("box-%02d", i+1)
	}
	return ids
}

// requireEventsOnce: every box has exactly its events 1..n stored, once.
func requireEventsOnce(t *testing.T, c *cloud.Cloud, ids []string, n int) {
	t.Helper()
	for _, id := range ids {
		evs, err := c.Events(id, 0, n+10)
		require.NoError(t, err)
		require.Len(t, evs, n, "box %s", id)
		for i, ev := range evs {
			require.EqualValues(t, i+1, ev.Seq, "box %s", id)
		}
	}
}

// TestShareGroupSplits: two Clouds in one share group on one broker and
// one database, boxes sending events at once. Each box message is taken by
// one replica (what the two took adds up to what the boxes sent, and each
// took some), every event is stored once and acked.
func TestShareGroupSplits(t *testing.T) {
	needReplicas(t)
	for _, kind := range brokertest.Kinds(t) {
		t.Run(string(kind), func(t *testing.T) {
			const boxes, n, per = 6, 200, 10
			ids := boxIDs(boxes)
			e, br := shareEnv(t, kind, ids)
			other := e.another(t)
			serve(t, e.c, br, "cloud-1")
			serve(t, other, br, "cloud-2")

			tbs := make([]*testBox, boxes)
			for i, id := range ids {
				tbs[i] = connectBox(t, e, br, id)
			}
			errs := make(chan error, boxes)
			for _, b := range tbs {
				go func() { errs <- b.sendEvents(n, per, 5*time.Second) }()
			}
			for range tbs {
				require.NoError(t, <-errs)
			}
			requireEventsOnce(t, other, ids, n)

			var sent uint64
			for _, b := range tbs {
				sent += b.sent.Load()
			}
			var took uint64
			require.Eventually(t, func() bool {
				took = e.c.Stats().Messages + other.Stats().Messages
				return took >= sent
			}, waitFor, 10*time.Millisecond)
			s1, s2 := e.c.Stats(), other.Stats()
			t.Logf("%s: boxes sent %d messages; cloud-1 took %d, cloud-2 %d", kind, sent, s1.Messages, s2.Messages)
			require.Equal(t, sent, took, "each box message taken by one replica")
			require.NotZero(t, s1.Messages, "the group splits the messages")
			require.NotZero(t, s2.Messages, "the group splits the messages")
		})
	}
}

// TestShareGroupReplicaKilled: one of two replicas dies (its connection
// drops with no DISCONNECT, and it never returns) while boxes send. The
// broker forgets its clean session, the other replica takes everything
// from then on, and nothing is lost: what was in flight to the dead one is
// sent again by the boxes and stored once.
func TestShareGroupReplicaKilled(t *testing.T) {
	needReplicas(t)
	for _, kind := range brokertest.Kinds(t) {
		t.Run(string(kind), func(t *testing.T) {
			const boxes, n, per = 4, 400, 2
			ids := boxIDs(boxes)
			e, br := shareEnv(t, kind, ids)
			other := e.another(t)
			doomed := serve(t, e.c, br, "cloud-1")
			serve(t, other, br, "cloud-2")

			tbs := make([]*testBox, boxes)
			for i, id := range ids {
				tbs[i] = connectBox(t, e, br, id)
			}
			errs := make(chan error, boxes)
			for _, b := range tbs {
				go func() { errs <- b.sendEvents(n, per, time.Second) }()
			}
			stored := func() uint64 {
				var sum uint64
				for _, id := range ids {
					high, err := other.HighestSeq(id)
					require.NoError(t, err)
					sum += high
				}
				return sum
			}
			require.Eventually(t, func() bool { return stored() >= boxes*n/4 }, waitFor, time.Millisecond)
			doomed.kill()
			atKill := stored()
			require.Less(t, atKill, uint64(boxes*n), "the boxes finished before the kill: make n larger")
			tookDead, tookLive := e.c.Stats().Messages, other.Stats().Messages
			for range tbs {
				require.NoError(t, <-errs)
			}
			requireEventsOnce(t, other, ids, n)
			t.Logf("%s: killed cloud-1 at %d of %d events; it took %d messages, cloud-2 %d then %d",
				kind, atKill, boxes*n, tookDead, tookLive, other.Stats().Messages)
			require.Equal(t, tookDead, e.c.Stats().Messages, "nothing reaches a dead replica")
			require.Greater(t, other.Stats().Messages, tookLive, "the live replica took the rest")
		})
	}
}

// TestShareGroupCatchUp: a revision committed by a replica that never
// pushes it (a Cloud that is not serving: as if it died between commit
// and publish) reaches the online box within a few catch-up scans, from
// a replica that never saw the change.
func TestShareGroupCatchUp(t *testing.T) {
	needReplicas(t)
	for _, kind := range brokertest.Kinds(t) {
		t.Run(string(kind), func(t *testing.T) {
			e, br := shareEnv(t, kind, []string{"box-a"})
			other := e.another(t)
			dead := e.another(t)
			_, err := e.c.PutKey("box-a", key(1))
			require.NoError(t, err)
			serve(t, e.c, br, "cloud-1")
			serve(t, other, br, "cloud-2")

			b := connectBox(t, e, br, "box-a")
			r := e.replica(t)
			recordsUntil := func(rev uint64) {
				t.Helper()
				for r.rev < rev {
					select {
					case m := <-b.recs:
						r.apply([][]byte{m})
					case <-time.After(waitFor):
						t.Fatalf("box at revision %d, want %d: nothing came within %v", r.rev, rev, waitFor)
					}
				}
			}
			// Online at 0: the replica that takes the status sends the
			// snapshot; the box applies it and says so, as sync/link does.
			require.NoError(t, b.publish(wire.LeafStatus, true, wire.Status{V: 1, Box: "box-a", Online: true}))
			recordsUntil(1)
			require.NoError(t, b.publish(wire.LeafStatus, true, wire.Status{V: 1, Box: "box-a", Online: true, Revision: 1}))
			require.Eventually(t, func() bool {
				st, _, err := e.c.Status("box-a")
				return err == nil && st.Revision == 1
			}, waitFor, 10*time.Millisecond)

			_, err = dead.PutGrant("box-a", booking("g1", "k1"), "123456")
			require.NoError(t, err)
			start := time.Now()
			recordsUntil(2)
			took := time.Since(start)
			r.requireSame()
			require.Equal(t, "123456", r.codes["g1"])
			catchUps := e.c.Stats().CatchUps + other.Stats().CatchUps
			t.Logf("%s: the box got revision 2 after %v (%d catch-ups)", kind, took, catchUps)
			require.NotZero(t, catchUps)
			// Two scans see it behind, the second sends: 2 s to 4 s, and
			// room for a busy machine.
			require.Less(t, took, 20*time.Second)
		})
	}
}

// TestShareGroupNeedsOwnClientID: a share-group member on the default
// client id would kick its twin off the broker at every reconnect.
func TestShareGroupNeedsOwnClientID(t *testing.T) {
	e := newEnv(t, func(o *cloud.Options) { o.ShareGroup = shareGroup })
	err := e.c.Serve(context.Background(), "tcp://127.0.0.1:1")
	require.ErrorContains(t, err, "client id of its own")
	_, err = cloud.Open(e.store.replica(t).opts(cloud.Options{Signer: e.signer, ShareGroup: "a/b"}))
	require.ErrorContains(t, err, "ShareGroup")
}
