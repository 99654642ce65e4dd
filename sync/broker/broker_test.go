package broker_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

var (
	aRecords = wire.Topic("box-a", wire.LeafRecords)
	bRecords = wire.Topic("box-b", wire.LeafRecords)
	aEvents  = wire.Topic("box-a", wire.LeafEvents)
	bEvents  = wire.Topic("box-b", wire.LeafEvents)
	aStatus  = wire.Topic("box-a", wire.LeafStatus)
	bStatus  = wire.Topic("box-b", wire.LeafStatus)
)

func pw(b brokertest.Broker, user string) conn {
	return conn{url: b.URL(), user: user, pass: brokertest.Password(user)}
}

// denied is the embedded broker's refusal count, or -1 for mosquitto.
func denied(b brokertest.Broker) int64 {
	if m, ok := b.(*brokertest.MochiBroker); ok {
		return int64(m.Embedded().Denied())
	}
	return -1
}

// boxReads are the topics box id subscribes to (as sync/link does).
func boxReads(id string) map[string]byte {
	return map[string]byte{wire.Topic(id, wire.LeafRecords): 1, wire.Topic(id, wire.LeafEventsAck): 1,
		wire.Topic(id, wire.LeafCommand): 1}
}

// subscribeBox subscribes cl to box id's read leaves; each must be granted.
func subscribeBox(t *testing.T, cl paho.Client, id string) {
	t.Helper()
	tok := cl.SubscribeMultiple(boxReads(id), nil)
	require.True(t, tok.WaitTimeout(wait))
	require.NoError(t, tok.Error())
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		require.Less(t, code, byte(0x80), "subscribe %s", f)
	}
}

// A box neither reads another box's topics, whatever filter it tries, nor
// publishes into them; nor does a wildcard give it its own tree's other
// leaves.
func TestBoxIsolation(t *testing.T) {
	for _, k := range brokertest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, k, brokertest.Options{})
			cloud, cloudIn := pw(b, "cloud").mustDial(t)
			boxB, boxBIn := pw(b, "box-b").mustDial(t)
			subscribeBox(t, boxB, "box-b")
			require.Less(t, subscribe(t, cloud, wire.CloudFilter(wire.LeafEvents)), byte(0x80))

			// One connection for every filter: mochi tidies up a closed
			// clean session asynchronously, and a quick reconnect with the
			// same client id can lose its new subscriptions to that.
			boxA, boxAIn := pw(b, "box-a").mustDial(t)
			subscribeBox(t, boxA, "box-a")
			for _, filter := range []string{"#", "smartbox/#", "smartbox/v1/#", "smartbox/v1/box-b/#",
				bRecords, "smartbox/v1/+/records", "smartbox/v1/+/#", "+/+/+/records", "$share/g/smartbox/v1/box-b/#",
				wire.BoxFilter("box-a"), "smartbox/v1/box-a/+", aEvents, aStatus, "$share/g/" + aRecords} {
				t.Run("subscribe "+filter, func(t *testing.T) {
					before := denied(b)
					code := subscribe(t, boxA, filter)
					t.Logf("SUBACK for %s: %#x", filter, code)

					publish(t, cloud, bRecords, "for b only", false)
					publish(t, boxB, bEvents, "b's event", false)
					publish(t, boxA, aEvents, "a's own event", false)
					publish(t, cloud, aRecords, "for a", false)
					got := boxAIn.until(t, aRecords, "for a")
					for _, m := range got {
						require.NotEqual(t, bRecords, m.topic, "box-a read box-b's records through %s", filter)
						require.NotEqual(t, bEvents, m.topic, "box-a read box-b's events through %s", filter)
						require.NotEqual(t, aEvents, m.topic, "box-a read its own events (the cloud's to read) through %s", filter)
					}
					boxAIn.none(t)
					require.Equal(t, msg{bRecords, "for b only", false}, boxBIn.next(t))
					require.ElementsMatch(t, []msg{{bEvents, "b's event", false}, {aEvents, "a's own event", false}},
						[]msg{cloudIn.next(t), cloudIn.next(t)})
					if before >= 0 {
						require.Greater(t, denied(b), before, "the refusal is counted")
					}
				})
			}
			boxA.Disconnect(100)

			t.Run("publish", func(t *testing.T) {
				for _, topic := range []string{bEvents, "smartbox/v1/box-b", "smartbox/v1", "elsewhere/x"} {
					before := denied(b)
					boxA, _ := pw(b, "box-a").mustDial(t)
					err := tryPublish(t, boxA, topic, "forged")
					t.Logf("forged publish on %s: %v", topic, err)
					boxA.Disconnect(100)
					if before >= 0 {
						require.Greater(t, denied(b), before, "the refusal is counted")
					}
				}
				boxA, _ := pw(b, "box-a").mustDial(t)
				publish(t, boxA, aEvents, "genuine", false)
				require.Equal(t, msg{aEvents, "genuine", false}, cloudIn.next(t))
				cloudIn.none(t)
			})

			// A will is a publish the broker makes later on the client's
			// behalf: it must not let box-a speak for box-b either.
			t.Run("will", func(t *testing.T) {
				statusIn := make(inbox, 10)
				tok := cloud.Subscribe(wire.CloudFilter(wire.LeafStatus), 1, statusIn.handler)
				require.True(t, tok.WaitTimeout(wait))
				require.NoError(t, tok.Error())

				var forged net.Conn
				c := pw(b, "box-a")
				c.willTopic, c.will, c.rawConn = bStatus, `{"online":false}`, &forged
				if _, _, err := c.dial(t); err != nil {
					t.Logf("connect with a will on another box's topic refused: %v", err)
				} else {
					forged.Close() // an abrupt end: the broker sends the will
				}
				var genuine net.Conn
				c.id = "box-a"
				c.willTopic, c.rawConn = aStatus, &genuine
				_, _, err := c.dial(t)
				require.NoError(t, err)
				genuine.Close()
				for _, m := range statusIn.until(t, aStatus, `{"online":false}`) {
					require.NotEqual(t, bStatus, m.topic, "box-a's will spoke for box-b")
				}
				statusIn.none(t)
			})
		})
	}
}

func TestAuthentication(t *testing.T) {
	for _, k := range brokertest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, k, brokertest.Options{TLS: true})
			refused := []struct {
				name string
				c    conn
			}{
				{"wrong password", conn{url: b.URL(), user: "box-a", pass: "nope"}},
				{"another box's password", conn{url: b.URL(), user: "box-a", pass: brokertest.Password("box-b")}},
				{"unknown user", conn{url: b.URL(), user: "box-z", pass: brokertest.Password("box-z")}},
				{"no password", conn{url: b.URL(), user: "box-a"}},
				{"anonymous", conn{url: b.URL(), id: "anon"}},
				{"wrong password over TLS", conn{url: b.TLSURL(), user: "box-a", pass: "nope", tls: b.Certs().ClientTLS(t, "")}},
			}
			for _, tc := range refused {
				t.Run(tc.name, func(t *testing.T) {
					before := denied(b)
					_, _, err := tc.c.dial(t)
					require.Error(t, err)
					if before >= 0 {
						require.Greater(t, denied(b), before)
					}
				})
			}

			t.Run("password", func(t *testing.T) {
				pw(b, "box-a").mustDial(t)
			})

			t.Run("TLS verifies the server", func(t *testing.T) {
				c := pw(b, "box-a")
				c.url, c.tls = b.TLSURL(), b.Certs().ClientTLS(t, "")
				c.mustDial(t)

				// A client that trusts another CA refuses the server.
				c.tls = brokertest.TestCerts(t).ClientTLS(t, "")
				_, _, err := c.dial(t)
				require.ErrorContains(t, err, "certificate")
			})

			t.Run("client certificate", func(t *testing.T) {
				certs := b.Certs()
				c := conn{url: b.CertURL(), user: "", id: "box-a", tls: certs.ClientTLS(t, "box-a")}
				boxA, in := c.mustDial(t)
				subscribeBox(t, boxA, "box-a")
				code := subscribe(t, boxA, bRecords)
				cloud, _ := pw(b, "cloud").mustDial(t)
				publish(t, cloud, bRecords, "for b", false)
				publish(t, cloud, aRecords, "for a", false)
				for _, m := range in.until(t, aRecords, "for a") {
					require.NotEqual(t, bRecords, m.topic, "SUBACK %#x", code)
				}

				// A certificate from a CA the broker does not trust.
				c.tls = certs.ClientTLS(t, "")
				c.tls.Certificates = []tls.Certificate{foreignClientCert(t)}
				_, _, err := c.dial(t)
				require.Error(t, err, "a client certificate from an unknown CA")
			})

			if k == brokertest.Mochi {
				t.Run("mochi rules", func(t *testing.T) {
					certs := b.Certs()
					for _, tc := range []struct {
						name string
						c    conn
					}{
						{"certificate of box-a, user box-b", conn{url: b.CertURL(), user: "box-b", id: "box-b", tls: certs.ClientTLS(t, "box-a")}},
						{"box with a client id not its box id", conn{url: b.URL(), user: "box-a", pass: brokertest.Password("box-a"), id: "box-b"}},
						{"certificate CN that is no box id", conn{url: b.CertURL(), id: "x", tls: certs.ClientTLS(t, "not a box/id")}},
					} {
						t.Run(tc.name, func(t *testing.T) {
							before := denied(b)
							_, _, err := tc.c.dial(t)
							require.Error(t, err)
							require.Greater(t, denied(b), before)
						})
					}
				})
			}
		})
	}
}

// foreignClientCert is a client certificate for box-a from a CA of its own.
func foreignClientCert(t *testing.T) tls.Certificate {
	_, _, c := brokertest.TestCerts(t).ClientCert(t, "box-a")
	return c
}

// A box's session must not be taken over by a user that does not own it
// (embedded broker; see doc.go).
func TestSessionOwnership(t *testing.T) {
	users := brokertest.DefaultUsers()
	users["smartbox-cloud-1"] = brokertest.Password("smartbox-cloud-1") // a box with an unlucky id
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{Users: users})
	cloud := pw(b, "cloud")
	cloud.id, cloud.persistent = "smartbox-cloud-1", true
	cl, _ := cloud.mustDial(t)
	require.Less(t, subscribe(t, cl, wire.CloudFilter(wire.LeafEvents)), byte(0x80))
	cl.Disconnect(100)

	before := denied(b)
	thief := pw(b, "smartbox-cloud-1")
	thief.persistent = true
	_, _, err := thief.dial(t)
	require.Error(t, err, "a box took over the cloud's session")
	require.Greater(t, denied(b), before)

	// The cloud gets its session back with its subscription.
	_, in := cloud.mustDial(t)
	boxA, _ := pw(b, "box-a").mustDial(t)
	publish(t, boxA, aEvents, "e1", false)
	require.Equal(t, msg{aEvents, "e1", false}, in.next(t))
}

// QoS 1 messages for an offline persistent box wait for it, also across a
// broker restart; a retained status survives the restart.
func TestPersistence(t *testing.T) {
	for _, k := range brokertest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, k, brokertest.Options{})
			box := pw(b, "box-a")
			box.persistent = true
			cl, _ := box.mustDial(t)
			require.Less(t, subscribe(t, cl, aRecords), byte(0x80))
			publish(t, cl, aStatus, `{"online":true}`, true)
			cl.Disconnect(100)

			cloud, _ := pw(b, "cloud").mustDial(t)
			publish(t, cloud, aRecords, "batch 1", false)
			cloud.Disconnect(100)

			cl, in := box.mustDial(t)
			require.Equal(t, msg{aRecords, "batch 1", false}, in.next(t))
			cl.Disconnect(100)

			cloud, _ = pw(b, "cloud").mustDial(t)
			publish(t, cloud, aRecords, "batch 2", false)
			cloud.Disconnect(100)

			b.Restart(t)

			_, in = box.mustDial(t)
			// QoS 1 is at least once: batch 1 may come again if its PUBACK
			// was still on the way when the box disconnected.
			in.until(t, aRecords, "batch 2")

			cloud, _ = pw(b, "cloud").mustDial(t)
			statusIn := make(inbox, 10)
			tok := cloud.Subscribe(wire.CloudFilter(wire.LeafStatus), 1, statusIn.handler)
			require.True(t, tok.WaitTimeout(wait))
			require.NoError(t, tok.Error())
			require.Equal(t, msg{aStatus, `{"online":true}`, true}, statusIn.next(t), "retained status lost in the restart")
		})
	}
}

func TestMessageExpiryCapability(t *testing.T) {
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	require.Greater(t, b.(*brokertest.MochiBroker).Embedded().MessageExpiry(), 24*time.Hour)
}
