package netcut_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sim/netcut"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/link"
)

// Timings of the box's client in this test, far shorter than smartboxd's so
// that a blackhole is noticed in seconds: paho pings after keepAlive idle and
// gives up pingTimeout later; it retries a connect every reconnectEvery.
const (
	keepAlive      = time.Second
	pingTimeout    = 2 * time.Second
	reconnectEvery = 100 * time.Millisecond
	connectTimeout = time.Second
)

// TestMQTTThroughProxy runs a paho client (as smartboxd's link does) through
// the proxy to the embedded broker: a Reset makes its connection-lost fire
// at once, a Blackhole once its keepalive gives up, and after Restore it
// reconnects by itself and its messages reach the cloud again.
func TestMQTTThroughProxy(t *testing.T) {
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	p := listen(t, strings.TrimPrefix(b.URL(), "tcp://"))

	// The cloud listens on the broker directly, not through the proxy.
	events := make(chan string, 16)
	cloud := connect(t, paho.NewClientOptions().AddBroker(b.URL()).SetClientID("cloud").
		SetUsername(brokertest.CloudUser).SetPassword(brokertest.Password(brokertest.CloudUser)).
		SetProtocolVersion(4).SetAutoReconnect(false))
	tok := cloud.Subscribe("smartbox/v1/+/events", 1, func(_ paho.Client, m paho.Message) { events <- string(m.Payload()) })
	require.True(t, tok.WaitTimeout(wait))
	require.NoError(t, tok.Error())

	connected := make(chan struct{}, 16)
	lost := make(chan error, 16)
	reconnecting := make(chan struct{}, 64)
	box := connect(t, paho.NewClientOptions().AddBroker("tcp://"+p.Addr()).SetClientID("box-a").
		SetUsername("box-a").SetPassword(brokertest.Password("box-a")).SetProtocolVersion(4).
		// smartboxd's store: paho's own races on a reconnect (paho#703).
		SetStore(link.NewMemoryStore()).
		SetKeepAlive(keepAlive).SetPingTimeout(pingTimeout).SetConnectTimeout(connectTimeout).
		SetAutoReconnect(true).SetMaxReconnectInterval(reconnectEvery).
		SetOnConnectHandler(func(paho.Client) { connected <- struct{}{} }).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			select {
			case reconnecting <- struct{}{}:
			default: // only the first few are looked at
			}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	recv(t, connected, "first connect")

	n := 0
	publish := func(what string) {
		t.Helper()
		n++
		msg := fmt.Sprintf("event %d", n)
		tok := box.Publish("smartbox/v1/box-a/events", 1, false, msg)
		require.True(t, tok.WaitTimeout(wait), what)
		require.NoError(t, tok.Error(), what)
		require.Equal(t, msg, recv(t, events, what))
	}
	publish("before any cut")

	for _, mode := range []netcut.Mode{netcut.Reset, netcut.Blackhole} {
		t.Run(mode.String(), func(t *testing.T) {
			require.NoError(t, p.Cut(mode))
			err := recv(t, lost, "connection lost")
			t.Logf("%s: connection lost: %v", mode, err)
			require.False(t, box.IsConnectionOpen())
			// A second attempt means the first failed: while cut, the box
			// cannot get through.
			for len(reconnecting) > 0 {
				<-reconnecting
			}
			recv(t, reconnecting, "first reconnect attempt")
			recv(t, reconnecting, "second reconnect attempt")
			require.Empty(t, connected, "no reconnect while cut")

			p.Restore()
			recv(t, connected, "reconnect after Restore")
			publish("after Restore")
		})
	}
	require.Empty(t, lost, "no other connection loss")
}

func connect(t *testing.T, o *paho.ClientOptions) paho.Client {
	t.Helper()
	c := paho.NewClient(o)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(wait), "connect")
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("%s: nothing within %v", what, wait)
		var zero T
		return zero
	}
}
