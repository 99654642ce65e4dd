package broker

import (
	"bytes"
	"log/slog"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

func queueHook(log *slog.Logger) *authHook {
	return &authHook{cloud: "cloud", queues: newQueueBound("cloud", log), log: log,
		subscribing: map[*mqtt.Client]map[string]bool{}}
}

func delivery(topic string, id uint16, size int) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: topic,
		PacketID: id, Payload: make([]byte, size)}
}

// A full queue refuses deliveries, but not the read check of a SUBSCRIBE to
// the same topic name (a box subscribes to its leaves by name, mochi makes
// the same call for both), and deliveries resume once the queue drained to
// half its bound; each episode is logged once at its start and its end.
func TestQueueBoundRefusesDeliveriesNotSubscriptions(t *testing.T) {
	var logs bytes.Buffer
	h := queueHook(slog.New(slog.NewTextHandler(&logs, nil)))
	box := &mqtt.Client{ID: "box-a"}
	box.Properties.Username = []byte("box-a")
	records := wire.Topic("box-a", wire.LeafRecords)

	const size = 1 << 20
	id := uint16(0)
	for h.OnACLCheck(box, records, false) {
		id++
		h.OnQosPublish(box, delivery(records, id, size-len(records)), 0, 0)
	}
	require.EqualValues(t, maxQueuedForBox/size, id, "queued up to the box session's bound")
	require.False(t, h.OnACLCheck(box, records, false))
	require.EqualValues(t, 2, h.queues.dropped.Load())
	require.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("delivery dropped")), "one line per episode")

	sub := packets.Packet{Filters: packets.Subscriptions{{Filter: records, Qos: 1}}}
	h.OnSubscribe(box, sub)
	require.True(t, h.OnACLCheck(box, records, false), "the subscribe check is not a delivery")
	h.OnSubscribed(box, sub, []byte{1})
	require.False(t, h.OnACLCheck(box, records, false))

	// An ack (PUBACK) and an expiry each free one; once the queue is below
	// half its bound, the episode ends.
	for ; id > maxQueuedForBox/size/2; id-- {
		if id%2 == 0 {
			h.OnQosComplete(box, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
		} else {
			h.OnQosDropped(box, delivery(records, id, 0))
		}
	}
	require.Zero(t, bytes.Count(logs.Bytes(), []byte("queue drained")), "not drained below half yet")
	h.OnQosComplete(box, packets.Packet{PacketID: id})
	require.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("queue drained")))
	require.True(t, h.OnACLCheck(box, records, false), "deliveries resume")

	// Inbound ack states (a QoS 2 flow from the client) are not queued
	// messages.
	h.OnQosPublish(box, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: 999}, 0, 0)
	h.queues.mu.Lock()
	defer h.queues.mu.Unlock()
	require.Len(t, h.queues.sessions["box-a"].msgs, int(id-1))
}

// The cloud's session has a share per box: one box over its share does not
// stop another's deliveries, until the session's total bound.
func TestQueueBoundPerBoxInCloudSession(t *testing.T) {
	h := queueHook(slog.New(slog.DiscardHandler))
	cloud := &mqtt.Client{ID: "smartbox-cloud"}
	cloud.Properties.Username = []byte("cloud")
	const size = 1 << 20
	id := uint16(0)
	for _, boxID := range []string{"box-a", "box-b", "box-c", "box-d", "box-e", "box-f", "box-g", "box-h"} {
		events := wire.Topic(boxID, wire.LeafEvents)
		n := 0
		for h.OnACLCheck(cloud, events, false) {
			id++
			n++
			h.OnQosPublish(cloud, delivery(events, id, size-len(events)), 0, 0)
		}
		require.Equal(t, maxQueuedFromBox/size, n, "%s's share", boxID)
	}
	require.False(t, h.OnACLCheck(cloud, wire.Topic("box-i", wire.LeafEvents), false), "the session's total bound")
	require.True(t, h.OnACLCheck(cloud, wire.Topic("box-i", wire.LeafRecords), true), "publishing is not delivering")
}
