package broker_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/broker"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// queueBroker starts an embedded broker with users box-a, box-b and cloud,
// all with password "pw".
func queueBroker(t *testing.T, dataDir string) *broker.Broker {
	t.Helper()
	hash, err := broker.HashPassword("pw")
	require.NoError(t, err)
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", CloudUser: "cloud", DataDir: dataDir,
		StaticUsers: []broker.User{{Name: "box-a", PasswordHash: hash}, {Name: "box-b", PasswordHash: hash},
			{Name: "cloud", PasswordHash: hash}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// seqs receives the sequence numbers that open each payload.
type seqs chan int

func (s seqs) handler(_ paho.Client, m paho.Message) {
	n, _ := strconv.Atoi(string(bytes.TrimRight(m.Payload()[:8], " x")))
	s <- n
}

// next waits for the next sequence number.
func (s seqs) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-s:
		return n
	case <-time.After(wait):
		t.Fatalf("no message within %v", wait)
		return 0
	}
}

// set waits for n messages and returns their sequence numbers: mochi
// sends what it queued in no fixed order (by the second it was queued).
func (s seqs) set(t *testing.T, n int) map[int]bool {
	t.Helper()
	got := map[int]bool{}
	for range n {
		got[s.next(t)] = true
	}
	return got
}

// upTo is {0, ..., n-1}.
func upTo(n int) map[int]bool {
	m := map[int]bool{}
	for i := range n {
		m[i] = true
	}
	return m
}

// none says that nothing more arrives within a short while.
func (s seqs) none(t *testing.T) {
	t.Helper()
	select {
	case n := <-s:
		t.Fatalf("unexpected message %d", n)
	case <-time.After(300 * time.Millisecond):
	}
}

// dialPersistent connects user (client id id) with a persistent session;
// in gets what its subscriptions (made again by the caller) deliver.
func dialPersistent(t *testing.T, b *broker.Broker, user, id string, in seqs) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID(id).SetUsername(user).SetPassword("pw").
		SetCleanSession(false).SetAutoReconnect(false).SetProtocolVersion(4).SetConnectTimeout(wait)
	if in != nil {
		o.SetDefaultPublishHandler(in.handler) // what the session queued comes before any Subscribe returns
	}
	c := paho.NewClient(o)
	// Disconnect even if the login fails below: a client left connected
	// keeps the broker's Close (a cleanup of the test) waiting for it.
	t.Cleanup(func() { c.Disconnect(0) })
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(wait))
	require.NoError(t, tok.Error())
	return c
}

func subscribeOK(t *testing.T, c paho.Client, filter string, in seqs) {
	t.Helper()
	tok := c.Subscribe(filter, 1, in.handler)
	require.True(t, tok.WaitTimeout(wait))
	require.NoError(t, tok.Error())
	require.Less(t, tok.(*paho.SubscribeToken).Result()[filter], byte(0x80), "subscribe %s granted", filter)
}

// payload is a message of size bytes that starts with seq.
func payload(seq, size int) []byte {
	p := bytes.Repeat([]byte("x"), size)
	copy(p, fmt.Sprintf("%-8d", seq))
	return p
}

func publishOK(t *testing.T, c paho.Client, topic string, p []byte) {
	t.Helper()
	tok := c.Publish(topic, 1, false, p)
	require.True(t, tok.WaitTimeout(wait))
	require.NoError(t, tok.Error())
}

// waitDropped waits for the broker's count of dropped deliveries to reach
// want: mochi acks a publish before it delivers it, so the PUBACK of the
// last one comes before its delivery is tried.
func waitDropped(t *testing.T, b *broker.Broker, want int) {
	t.Helper()
	require.Eventually(t, func() bool { return b.QueueDropped() >= uint64(want) }, wait, time.Millisecond)
	require.EqualValues(t, want, b.QueueDropped())
}

func heapInuse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// bigEvent is the size of a flooding box's event batch: as large as the
// events leaf allows.
const bigEvent = wire.MaxMessageSize - 100

// queuedOf is how many messages of size bytes on topic a session holds
// before a bound of limit bytes: deliveries are admitted while the queue is
// below it.
func queuedOf(limit, size int, topic string) int {
	per := size + len(topic)
	return (limit + per - 1) / per
}

// Review finding 3. The cloud's persistent session is offline (a bridge
// restart); box-a's password publishes 200 x 1 MiB event batches. Before,
// every one queued for the cloud (+400 MB of heap); now box-a's share stops
// at 8 MiB, the rest is acked to box-a and dropped, and counted. box-b's
// event still queues (its own share). Back online, the cloud gets what was
// queued, and the box's resends (its outbox sends each batch until the
// cloud acks it) get through.
func TestQueueBoundFromBoxToOfflineCloud(t *testing.T) {
	b := queueBroker(t, "")
	aEvents, bEvents := wire.Topic("box-a", wire.LeafEvents), wire.Topic("box-b", wire.LeafEvents)
	cloudIn := make(seqs, 1000)
	cl := dialPersistent(t, b, "cloud", "smartbox-cloud", cloudIn)
	subscribeOK(t, cl, wire.CloudFilter(wire.LeafEvents), cloudIn)
	cl.Disconnect(100)

	h0 := heapInuse()
	boxA := dialPersistent(t, b, "box-a", "box-a", nil)
	const n = 200
	for seq := range n {
		publishOK(t, boxA, aEvents, payload(seq, bigEvent))
	}
	publishOK(t, dialPersistent(t, b, "box-b", "box-b", nil), bEvents, payload(1000, 100))
	grew := heapInuse() - h0
	queued := queuedOf(8<<20, bigEvent, aEvents)
	t.Logf("%d x 1 MiB for the offline cloud: heap +%d MiB, %d queued, %d dropped", n, grew>>20, queued, b.QueueDropped())
	require.Less(t, grew, int64(40<<20), "before: +400 MB")
	waitDropped(t, b, n-queued)

	// The session keeps its subscription. (A SUBSCRIBE now would likely be
	// refused: mochi v2.7.9 refuses one whose packet id is that of a
	// message it has in flight to the client, and both count from 1.)
	dialPersistent(t, b, "cloud", "smartbox-cloud", cloudIn)
	want := upTo(queued)
	want[1000] = true // box-b's event: box-a's flood used only box-a's share
	require.Equal(t, want, cloudIn.set(t, queued+1), "what was queued is delivered")
	cloudIn.none(t)
	// The box sends the batches never acked again, one at a time as
	// sync/link does (one batch in flight until the cloud's ack).
	for seq := queued; seq < queued+10; seq++ {
		publishOK(t, boxA, aEvents, payload(seq, bigEvent))
		require.Equal(t, seq, cloudIn.next(t))
	}
	require.EqualValues(t, n-queued, b.QueueDropped(), "nothing dropped once the cloud reads")
}

// The same bound for a box's own session: the cloud publishes 40 x 1 MiB of
// records while box-a is off. 16 MiB of them queue; box-a, back, gets them,
// and then what the cloud sends next.
func TestQueueBoundForOfflineBox(t *testing.T) {
	b := queueBroker(t, "")
	aRecords := wire.Topic("box-a", wire.LeafRecords)
	in := make(seqs, 100)
	boxA := dialPersistent(t, b, "box-a", "box-a", in)
	subscribeOK(t, boxA, aRecords, in)
	boxA.Disconnect(100)

	cloud := dialPersistent(t, b, "cloud", "smartbox-cloud", nil)
	const n = 40
	for seq := range n {
		publishOK(t, cloud, aRecords, payload(seq, bigEvent))
	}
	queued := queuedOf(16<<20, bigEvent, aRecords)
	waitDropped(t, b, n-queued)

	dialPersistent(t, b, "box-a", "box-a", in)
	require.Equal(t, upTo(queued), in.set(t, queued))
	in.none(t)
	publishOK(t, cloud, aRecords, payload(n, 100))
	require.Equal(t, n, in.next(t), "the box reads again once its queue drained")
}

// Messages queued across a restart count against the bound: a broker
// restarted often must not hold one more full queue per restart.
func TestQueueBoundAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b := queueBroker(t, dir)
	aEvents := wire.Topic("box-a", wire.LeafEvents)
	cl := dialPersistent(t, b, "cloud", "smartbox-cloud", nil)
	subscribeOK(t, cl, wire.CloudFilter(wire.LeafEvents), make(seqs, 1))
	cl.Disconnect(100)
	queued := queuedOf(8<<20, bigEvent, aEvents)
	boxA := dialPersistent(t, b, "box-a", "box-a", nil)
	for seq := range queued {
		publishOK(t, boxA, aEvents, payload(seq, bigEvent))
	}
	require.Zero(t, b.QueueDropped())
	boxA.Disconnect(100)
	require.NoError(t, b.Close())

	b = queueBroker(t, dir)
	boxA = dialPersistent(t, b, "box-a", "box-a", nil)
	publishOK(t, boxA, aEvents, payload(queued, bigEvent))
	waitDropped(t, b, 1) // the queue loaded from the store is full already

	in := make(seqs, 100)
	dialPersistent(t, b, "cloud", "smartbox-cloud", in)
	require.Equal(t, upTo(queued), in.set(t, queued), "the queue survived the restart")
}

// A QoS 0 publish is dropped and counted: the queue bounds see only QoS 1
// and 2 messages, and mochi would hold QoS 0 deliveries to a slow reader in
// a write queue bounded by count alone. Link and cloud send QoS 1 only.
func TestQoS0Dropped(t *testing.T) {
	b := queueBroker(t, "")
	in := make(seqs, 10)
	cl := dialPersistent(t, b, "cloud", "smartbox-cloud", in)
	subscribeOK(t, cl, wire.CloudFilter(wire.LeafEvents), in)
	boxA := dialPersistent(t, b, "box-a", "box-a", nil)
	denied := b.Denied()
	tok := boxA.Publish(wire.Topic("box-a", wire.LeafEvents), 0, false, payload(1, 100))
	require.True(t, tok.WaitTimeout(wait))
	publishOK(t, boxA, wire.Topic("box-a", wire.LeafEvents), payload(2, 100))
	require.Equal(t, 2, in.next(t), "the QoS 1 one only")
	require.Equal(t, denied+1, b.Denied())
}
