package link_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/link"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// runLink runs a link until the returned stop is called.
func runLink(b *testing.B, br brokertest.Broker, st *store.Store) (*link.Link, func()) {
	l, err := link.New(link.Options{BoxID: boxID, BrokerURL: br.URL(), Username: boxID, Password: brokertest.Password(boxID),
		Store: st, MaxReconnectInterval: 500 * time.Millisecond})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()
	require.Eventually(b, l.Connected, waitFor, time.Millisecond)
	return l, func() { cancel(); <-done }
}

const benchGrants = 100_000

// BenchmarkSync100kGrants is the time to bring an empty box to 100,000
// grants over loopback through the embedded broker: the cloud makes and
// signs the snapshot (sealing every code), the box verifies, opens, stages
// and applies it. Compare with BenchmarkPahoPublishSameBytes.
func BenchmarkSync100kGrants(b *testing.B) {
	br := brokertest.Start(b, brokertest.Mochi, brokertest.Options{})
	st0 := openBox(b, filepath.Join(b.TempDir(), "seed.db"))
	pub, err := st0.SyncPublicKey()
	require.NoError(b, err)
	tc := startCloud(b, br, pub)
	rev, err := tc.PutBatch(boxID, testKeys(), grants(0, benchGrants, "k1"))
	require.NoError(b, err)
	require.NoError(b, st0.Close())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := openBox(b, filepath.Join(b.TempDir(), "box.db"))
		pub, err := st.SyncPublicKey()
		require.NoError(b, err)
		require.NoError(b, tc.RegisterBox(boxID, pub))
		_, stop := runLink(b, br, st)
		b.StartTimer()
		tc.push(0)
		require.True(b, assertEventually(5*time.Minute, func() bool {
			r, err := st.Revision()
			return err == nil && r == rev
		}))
		b.StopTimer()
		stop()
		require.NoError(b, st.Close())
		b.StartTimer()
	}
	b.ReportMetric(float64(benchGrants)*float64(b.N)/b.Elapsed().Seconds(), "grants/s")
}

// BenchmarkPahoPublishSameBytes publishes the bytes of the same 100,000-grant
// snapshot with plain paho at QoS 1 through the same broker and waits until
// a subscriber has them all: the floor that MQTT itself sets.
func BenchmarkPahoPublishSameBytes(b *testing.B) {
	br := brokertest.Start(b, brokertest.Mochi, brokertest.Options{})
	st := openBox(b, filepath.Join(b.TempDir(), "seed.db"))
	pub, err := st.SyncPublicKey()
	require.NoError(b, err)
	tc := startCloud(b, br, pub)
	_, err = tc.PutBatch(boxID, testKeys(), grants(0, benchGrants, "k1"))
	require.NoError(b, err)
	msgs, err := tc.Answer(wire.SyncRequest{V: wire.Version, Box: boxID})
	require.NoError(b, err)
	size := 0
	for _, m := range msgs {
		size += len(m)
	}

	var got atomic.Int64
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(br.URL()).SetClientID(boxID).
		SetUsername(boxID).SetPassword(brokertest.Password(boxID)).SetCleanSession(true).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) { got.Add(1) }))
	tok := sub.Connect()
	require.True(b, tok.WaitTimeout(waitFor))
	require.NoError(b, tok.Error())
	defer sub.Disconnect(100)
	tok = sub.Subscribe(wire.Topic(boxID, wire.LeafRecords), 1, nil)
	require.True(b, tok.WaitTimeout(waitFor))
	require.NoError(b, tok.Error())

	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got.Store(0)
		for _, m := range msgs {
			tc.client.Publish(wire.Topic(boxID, wire.LeafRecords), 1, false, m)
		}
		require.True(b, assertEventually(5*time.Minute, func() bool { return got.Load() == int64(len(msgs)) }))
	}
	b.ReportMetric(float64(benchGrants)*float64(b.N)/b.Elapsed().Seconds(), "grants/s")
}

// BenchmarkDrain10k drains an outbox of 10,000 events to the cloud, end to
// end acked.
func BenchmarkDrain10k(b *testing.B) {
	const events = 10_000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// A broker per run: each run's test cloud has the same client id,
		// and the last run's (alive until the benchmark ends) would take
		// the session over and back, acking from its own store the events
		// of this run's new box (a drain stuck short of 10,000).
		br := brokertest.Start(b, brokertest.Mochi, brokertest.Options{})
		st := openBox(b, filepath.Join(b.TempDir(), "box.db"))
		pub, err := st.SyncPublicKey()
		require.NoError(b, err)
		tc := startCloud(b, br, pub)
		commitBatch(b, st, events)
		b.StartTimer()
		_, stop := runLink(b, br, st)
		require.True(b, assertEventually(5*time.Minute, func() bool {
			hi, err := tc.HighestSeq(boxID)
			return err == nil && hi == events
		}))
		b.StopTimer()
		stop()
		require.NoError(b, st.Close())
		b.StartTimer()
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
