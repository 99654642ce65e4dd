package link_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/link"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// The test binary doubles as a box daemon for the SIGKILL tests (see
// kill_test.go).
const childEnv = "SMARTBOX_LINK_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	if os.Getenv("SMARTBOX_TEST_LOG") == "" {
		slog.SetDefault(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}

const boxID = "box-a"

// waitFor bounds waiting for what must happen (a sync to converge, a log
// line, a connection). The tests wait on conditions, never on the clock, so
// the bound is only there to end a hung test: generous, because the suite
// runs with -race on 2 cores shared with other packages' tests, where a
// step that takes a second idle can take tens.
const waitFor = 2 * time.Minute

var signingKey = func() wire.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return wire.Signer{KeyID: "k1", Key: priv}
}()

// openBox makes (or opens) the box's store at path, provisioned with the
// test cloud's key.
func openBox(t testing.TB, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{BoxID: boxID, Slots: 12, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.SetProvision(store.Provision{
		CloudKeys: map[string]ed25519.PublicKey{signingKey.KeyID: signingKey.Key.Public().(ed25519.PublicKey)}}))
	return st
}

// testCloud is a real sync/cloud with the MQTT glue of a bridge: it answers
// sync requests with Cloud.AnswerRequest and event batches with IngestEvents.
type testCloud struct {
	*cloud.Cloud
	t      testing.TB
	client mqtt.Client
	boxPub []byte

	mu       sync.Mutex
	requests []wire.SyncRequest
	// requestTimes is when each of requests came.
	requestTimes []time.Time
	statuses     []wire.Status
	results      []wire.CommandResult
	// budget, when >= 0, is how many more record messages the cloud
	// publishes; the rest are dropped (lost on the way). -1: no limit.
	budget int
	// holdEvents makes the cloud take no event batch (no ack), as a cloud
	// that is down or holding the box back.
	holdEvents atomic.Bool
	// holdEventsFrom, when > 0, sets holdEvents once the cloud holds the
	// box's events through this seq: the box's drain stops there whatever
	// the machine's load (the kill test kills it mid-drain).
	holdEventsFrom atomic.Uint64
	// eventBatches counts the event batches the cloud was sent.
	eventBatches atomic.Int64
	// dropRequests is how many more sync requests the cloud takes and
	// never answers (the replica that got them was killed).
	dropRequests atomic.Int32
}

func startCloud(t testing.TB, b brokertest.Broker, boxPub []byte) *testCloud {
	return startCloudWith(t, b, boxPub, nil)
}

// startCloudWith is startCloud with the cloud's options changed by tweak.
func startCloudWith(t testing.TB, b brokertest.Broker, boxPub []byte, tweak func(*cloud.Options)) *testCloud {
	t.Helper()
	opts := cloud.Options{Path: filepath.Join(t.TempDir(), "cloud.db"), Signer: signingKey,
		ChunkRecords: 2000, EventRate: cloud.Rate{PerSecond: 1000, Burst: 1000}, SyncRate: cloud.Rate{PerSecond: 100, Burst: 100}}
	if tweak != nil {
		tweak(&opts)
	}
	c, err := cloud.Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.RegisterBox(boxID, boxPub))
	tc := &testCloud{Cloud: c, t: t, budget: -1, boxPub: boxPub}

	work := make(chan mqtt.Message, 10000)
	o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("smartbox-cloud-1").
		SetUsername(brokertest.CloudUser).SetPassword(brokertest.Password(brokertest.CloudUser)).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).SetStore(link.NewMemoryStore()).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { work <- m }).
		SetOnConnectHandler(func(cl mqtt.Client) {
			cl.SubscribeMultiple(map[string]byte{
				wire.CloudFilter(wire.LeafSyncRequest):   1,
				wire.CloudFilter(wire.LeafEvents):        1,
				wire.CloudFilter(wire.LeafStatus):        1,
				wire.CloudFilter(wire.LeafCommandResult): 1,
			}, nil)
		})
	tc.client = mqtt.NewClient(o)
	tok := tc.client.Connect()
	require.True(t, tok.WaitTimeout(waitFor))
	require.NoError(t, tok.Error())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range work {
			tc.serve(m)
		}
	}()
	t.Cleanup(func() {
		tc.client.Disconnect(100)
		close(work)
		<-done
	})
	return tc
}

func (tc *testCloud) serve(m mqtt.Message) {
	id, leaf, err := wire.ParseTopic(m.Topic())
	if err != nil {
		return
	}
	switch leaf {
	case wire.LeafSyncRequest:
		var req wire.SyncRequest
		if wire.Decode(m.Payload(), id, &req) != nil {
			return
		}
		tc.mu.Lock()
		tc.requests = append(tc.requests, req)
		tc.requestTimes = append(tc.requestTimes, time.Now())
		tc.mu.Unlock()
		if tc.dropRequests.Add(-1) >= 0 {
			return // a replica killed before it answered
		}
		msgs, err := tc.AnswerRequest(req)
		if err != nil {
			return
		}
		tc.send(msgs)
	case wire.LeafEvents:
		tc.eventBatches.Add(1)
		if tc.holdEvents.Load() {
			return
		}
		var batch wire.EventBatch
		if wire.Decode(m.Payload(), id, &batch) != nil {
			return
		}
		ack, _, err := tc.IngestEvents(id, batch)
		if err == nil && ack != nil {
			tc.client.Publish(wire.Topic(id, wire.LeafEventsAck), 1, false, ack)
		}
		if from := tc.holdEventsFrom.Load(); from > 0 {
			if hi, err := tc.HighestSeq(id); err == nil && hi >= from {
				tc.holdEvents.Store(true)
			}
		}
	case wire.LeafStatus:
		var st wire.Status
		if wire.Decode(m.Payload(), id, &st) == nil {
			tc.mu.Lock()
			tc.statuses = append(tc.statuses, st)
			tc.mu.Unlock()
		}
	case wire.LeafCommandResult:
		var res wire.CommandResult
		if wire.Decode(m.Payload(), id, &res) == nil {
			tc.mu.Lock()
			tc.results = append(tc.results, res)
			tc.mu.Unlock()
		}
	}
}

// send publishes record messages to the box, within the budget.
func (tc *testCloud) send(msgs [][]byte) {
	for _, msg := range msgs {
		tc.mu.Lock()
		ok := tc.budget != 0
		if tc.budget > 0 {
			tc.budget--
		}
		tc.mu.Unlock()
		if ok {
			tc.client.Publish(wire.Topic(boxID, wire.LeafRecords), 1, false, msg)
		}
	}
}

// push sends the changes since revision have, as a bridge does after a
// change.
func (tc *testCloud) push(have uint64) [][]byte {
	msgs, err := tc.Answer(wire.SyncRequest{V: wire.Version, Box: boxID, Have: have})
	require.NoError(tc.t, err)
	tc.send(msgs)
	return msgs
}

func (tc *testCloud) setBudget(n int) {
	tc.mu.Lock()
	tc.budget = n
	tc.mu.Unlock()
}

func (tc *testCloud) syncRequests() []wire.SyncRequest {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]wire.SyncRequest(nil), tc.requests...)
}

func (tc *testCloud) syncRequestTimes() []time.Time {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]time.Time(nil), tc.requestTimes...)
}

func (tc *testCloud) commandResults() []wire.CommandResult {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]wire.CommandResult(nil), tc.results...)
}

// publish sends raw bytes to the box's leaf as the cloud.
func (tc *testCloud) publish(leaf string, msg []byte) {
	tok := tc.client.Publish(wire.Topic(boxID, leaf), 1, false, msg)
	require.True(tc.t, tok.WaitTimeout(waitFor))
	require.NoError(tc.t, tok.Error())
}

func (tc *testCloud) lastStatus() (wire.Status, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.statuses) == 0 {
		return wire.Status{}, false
	}
	return tc.statuses[len(tc.statuses)-1], true
}

// startLink runs a link for st on the broker until the test ends.
func startLink(t testing.TB, b brokertest.Broker, st *store.Store, mod func(*link.Options)) *link.Link {
	t.Helper()
	opts := link.Options{BoxID: boxID, BrokerURL: b.URL(), Username: boxID, Password: brokertest.Password(boxID),
		Software: "test", Store: st, AckTimeout: 2 * time.Second, MaxReconnectInterval: 500 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	l, err := link.New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitFor):
			t.Error("link did not stop")
		}
	})
	return l
}

// grants makes n bookings on the keys, with distinct codes.
func grants(from, n int, keyIDs ...string) []box.GrantPut {
	out := make([]box.GrantPut, n)
	for i := range out {
		out[i] = box.GrantPut{Grant: box.Grant{ID: fmt.Sprintf("g-%06d", from+i), Kind: box.KindBooking,
			KeyIDs: keyIDs, Source: "test"}, Code: fmt.Sprintf("%08d", 10000000+from+i)}
	}
	return out
}

func testKeys() []box.Key {
	return []box.Key{{ID: "k1", FobUID: "01000734E0", Slot: 1}, {ID: "k2", FobUID: "01000734E1", Slot: 2}}
}

// requireSameRecords waits until the box holds exactly the cloud's records
// at the cloud's revision.
func requireSameRecords(t testing.TB, tc *testCloud, st *store.Store, within time.Duration) {
	t.Helper()
	var last string
	ok := assertEventually(within, func() bool {
		crev, err := tc.Revision(boxID)
		require.NoError(t, err)
		brev, err := st.Revision()
		require.NoError(t, err)
		if crev != brev {
			last = fmt.Sprintf("cloud at %d, box at %d", crev, brev)
			return false
		}
		return true
	})
	require.True(t, ok, "records did not converge: %s", last)
	ckeys, cgrants, err := tc.Records(boxID)
	require.NoError(t, err)
	bkeys, err := st.Keys()
	require.NoError(t, err)
	bgrants, err := st.Grants()
	require.NoError(t, err)
	sortKeys(ckeys)
	sortKeys(bkeys)
	require.Equal(t, ckeys, bkeys)
	sortGrants(cgrants)
	sortGrants(bgrants)
	require.Equal(t, len(cgrants), len(bgrants))
	for i := range cgrants {
		c, b := cgrants[i], bgrants[i]
		c.Uses, b.Uses = 0, 0
		require.Equal(t, c, b)
	}
}

func sortKeys(ks []box.Key) { sort.Slice(ks, func(i, j int) bool { return ks[i].ID < ks[j].ID }) }
func sortGrants(gs []box.Grant) {
	sort.Slice(gs, func(i, j int) bool { return gs[i].ID < gs[j].ID })
	for i := range gs {
		if len(gs[i].KeyIDs) == 0 {
			gs[i].KeyIDs = nil
		}
	}
}

// requireEventsOnce waits until the cloud holds events 1..last of the box,
// each once and in order, and the box's outbox is empty.
func requireEventsOnce(t testing.TB, tc *testCloud, st *store.Store, within time.Duration) []box.Event {
	t.Helper()
	last, err := st.LastSeq()
	require.NoError(t, err)
	ok := assertEventually(within, func() bool {
		hi, err := tc.HighestSeq(boxID)
		require.NoError(t, err)
		depth, err := st.OutboxDepth()
		require.NoError(t, err)
		return hi == last && depth == 0
	})
	hi, _ := tc.HighestSeq(boxID)
	depth, _ := st.OutboxDepth()
	require.True(t, ok, "cloud has events through %d of %d, box outbox depth %d", hi, last, depth)
	evs, err := tc.Events(boxID, 0, int(last)+10)
	require.NoError(t, err)
	require.Len(t, evs, int(last))
	for i, e := range evs {
		require.Equal(t, uint64(i+1), e.Seq, "events in order, each once")
	}
	return evs
}

func assertEventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// commit records n events on the box, as the controller would.
func commit(t testing.TB, st *store.Store, n int, detail string) {
	t.Helper()
	for i := 0; i < n; i++ {
		_, err := st.Commit(box.Change{Events: []box.Event{{Type: box.EventCodeRefused, Reason: box.ReasonUnknownCode,
			Detail: fmt.Sprintf("%s %d", detail, i)}}})
		require.NoError(t, err)
	}
}

func eventsOfType(t testing.TB, st *store.Store, typ box.EventType) []box.Event {
	t.Helper()
	evs, err := st.Events(0, 0)
	require.NoError(t, err)
	var out []box.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// commitBatch records n events in one transaction (a fast way to fill an
// outbox for benchmarks).
func commitBatch(t testing.TB, st *store.Store, n int) {
	t.Helper()
	evs := make([]box.Event, n)
	for i := range evs {
		evs[i] = box.Event{Type: box.EventCodeRefused, Reason: box.ReasonUnknownCode, Detail: fmt.Sprintf("bench %d", i)}
	}
	_, err := st.Commit(box.Change{Events: evs})
	require.NoError(t, err)
}
