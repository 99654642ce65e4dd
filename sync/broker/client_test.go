package broker_test

import (
	"crypto/tls"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// wait is how long a test waits for something that should happen. The
// tests wait on the thing itself, so the bound only ends a hung test: long,
// because packages run in parallel with -race on two busy cores.
const wait = time.Minute

// quiet is how long a test keeps listening for a message that must not
// come, after a later control message has already arrived.
const quiet = 300 * time.Millisecond

type msg struct {
	topic    string
	payload  string
	retained bool
}

// inbox receives a client's messages. The paho handler only hands them over
// to a buffered channel: a handler that blocks stalls paho's keepalive.
type inbox chan msg

func (in inbox) handler(_ paho.Client, m paho.Message) {
	select {
	case in <- msg{m.Topic(), string(m.Payload()), m.Retained()}:
	default: // the test stopped reading; drop
	}
}

// next returns the next message, failing the test after wait.
func (in inbox) next(t *testing.T) msg {
	t.Helper()
	select {
	case m := <-in:
		return m
	case <-time.After(wait):
		t.Fatalf("no message within %v", wait)
		return msg{}
	}
}

// until returns every message up to and including the first on topic with
// payload.
func (in inbox) until(t *testing.T, topic, payload string) []msg {
	t.Helper()
	var got []msg
	for {
		m := in.next(t)
		got = append(got, m)
		if m.topic == topic && m.payload == payload {
			return got
		}
	}
}

// none fails if a message arrives within quiet.
func (in inbox) none(t *testing.T) {
	t.Helper()
	select {
	case m := <-in:
		t.Fatalf("unexpected message on %s: %q", m.topic, m.payload)
	case <-time.After(quiet):
	}
}

type conn struct {
	url, user, pass, id string
	tls                 *tls.Config
	persistent          bool // CleanSession=false
	willTopic, will     string
	rawConn             *net.Conn    // set: dial plain TCP ourselves, to cut it later
	lost                chan<- error // set: told when the broker drops the connection
}

// dial connects; the client disconnects on test cleanup.
func (c conn) dial(t *testing.T) (paho.Client, inbox, error) {
	t.Helper()
	in := make(inbox, 100)
	id := c.id
	if id == "" {
		id = c.user
	}
	o := paho.NewClientOptions().AddBroker(c.url).SetClientID(id).
		SetUsername(c.user).SetPassword(c.pass).SetCleanSession(!c.persistent).
		SetAutoReconnect(false).SetConnectTimeout(wait).SetOrderMatters(false).
		// 3.1.1 only: paho would retry a refused connect as MQTT 3.1, a
		// second wrong password that the broker's back-off counts.
		SetProtocolVersion(4).
		SetDefaultPublishHandler(in.handler) // before Connect: queued messages come at once
	if c.tls != nil {
		o.SetTLSConfig(c.tls)
	}
	if c.willTopic != "" {
		o.SetWill(c.willTopic, c.will, 1, true)
	}
	if c.lost != nil {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case c.lost <- err:
			default:
			}
		})
	}
	if c.rawConn != nil {
		var mu sync.Mutex
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			nc, err := net.DialTimeout("tcp", u.Host, wait)
			mu.Lock()
			*c.rawConn = nc
			mu.Unlock()
			return nc, err
		})
	}
	cl := paho.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatalf("connect to %s as %s: no answer within %v", c.url, c.user, wait)
	}
	if err := tok.Error(); err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	return cl, in, nil
}

func (c conn) mustDial(t *testing.T) (paho.Client, inbox) {
	t.Helper()
	cl, in, err := c.dial(t)
	require.NoError(t, err, "connect to %s as %s (client %s)", c.url, c.user, c.id)
	return cl, in
}

// subscribe subscribes with QoS 1 and returns the SUBACK code (0x80 and above
// is a refusal).
func subscribe(t *testing.T, cl paho.Client, filter string) byte {
	t.Helper()
	tok := cl.Subscribe(filter, 1, nil)
	require.True(t, tok.WaitTimeout(wait), "subscribe %s", filter)
	require.NoError(t, tok.Error(), "subscribe %s", filter)
	// paho keys the result by the filter without a "$share/<group>/"
	// prefix; there is one filter per call.
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		return code
	}
	t.Fatalf("subscribe %s: no result", filter)
	return 0
}

// tryPublish publishes with QoS 1 and reports paho's outcome. A broker may
// answer a refused publish with a PUBACK (mosquitto) or, for MQTT 3.1.1, by
// closing the connection (mochi); either way nothing is delivered.
func tryPublish(t *testing.T, cl paho.Client, topic, payload string) error {
	t.Helper()
	tok := cl.Publish(topic, 1, false, payload)
	require.True(t, tok.WaitTimeout(wait), "publish %s", topic)
	return tok.Error()
}

func publish(t *testing.T, cl paho.Client, topic, payload string, retained bool) {
	t.Helper()
	tok := cl.Publish(topic, 1, retained, payload)
	require.True(t, tok.WaitTimeout(wait), "publish %s", topic)
	require.NoError(t, tok.Error(), "publish %s", topic)
}
