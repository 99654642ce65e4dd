package cloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// waitFor bounds waiting for what must happen. The tests wait on the thing
// itself, so the bound only ends a hung test: long, because packages run in
// parallel with -race on two busy cores.
const waitFor = time.Minute

// TestServe runs the cloud against each broker over TLS with passwords,
// and plays box-a by hand with a plain paho client: status, sync request,
// pushed revisions, events and acks, commands, and what gets dropped.
func TestServe(t *testing.T) {
	for _, kind := range brokertest.Kinds(t) {
		t.Run(string(kind), func(t *testing.T) {
			br := brokertest.Start(t, kind, brokertest.Options{TLS: true})
			e := newEnv(t, nil)
			c := e.c
			_, err := c.PutKey("box-a", key(1))
			require.NoError(t, err)
			_, err = c.PutGrant("box-a", booking("g1", "k1"), "123456")
			require.NoError(t, err)

			serveUntilCleanup(t, c, br.TLSURL(), func(o *mqtt.ClientOptions) {
				o.SetUsername(brokertest.CloudUser).SetPassword(brokertest.Password(brokertest.CloudUser)).
					SetTLSConfig(br.Certs().ClientTLS(t, "")).SetClientID("smartbox-cloud-" + string(kind))
			})

			// The box: its own topics only, as its ACL allows.
			got := make(chan mqtt.Message, 64)
			bo := mqtt.NewClientOptions().AddBroker(br.TLSURL()).SetClientID("box-a").
				SetUsername("box-a").SetPassword(brokertest.Password("box-a")).
				SetTLSConfig(br.Certs().ClientTLS(t, "")).SetCleanSession(true).
				SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- m })
			bx := mqtt.NewClient(bo)
			tok := bx.Connect()
			require.True(t, tok.WaitTimeout(waitFor))
			require.NoError(t, tok.Error())
			t.Cleanup(func() { bx.Disconnect(100) })
			tok = bx.SubscribeMultiple(map[string]byte{
				wire.Topic("box-a", wire.LeafRecords): 1, wire.Topic("box-a", wire.LeafEventsAck): 1,
				wire.Topic("box-a", wire.LeafCommand): 1}, nil)
			require.True(t, tok.WaitTimeout(waitFor))
			require.NoError(t, tok.Error())
			publish := func(leaf string, retained bool, body any) {
				t.Helper()
				b, ok := body.([]byte)
				if !ok {
					var err error
					b, err = json.Marshal(body)
					require.NoError(t, err)
				}
				tok := bx.Publish(wire.Topic("box-a", leaf), 1, retained, b)
				require.True(t, tok.WaitTimeout(waitFor))
				require.NoError(t, tok.Error())
			}
			next := func(leaf string) []byte {
				t.Helper()
				for {
					select {
					case m := <-got:
						if leaf != wire.LeafRecords && m.Topic() == wire.Topic("box-a", wire.LeafRecords) {
							continue // a late duplicate of records the box has
						}
						require.Equal(t, wire.Topic("box-a", leaf), m.Topic())
						return m.Payload()
					case <-time.After(waitFor):
						t.Fatalf("nothing on %s within %v", leaf, waitFor)
						return nil
					}
				}
			}
			r := e.replica(t)
			// MQTT may deliver a message twice (a retained status seen live
			// and on subscribe): apply records until the box is at rev.
			recordsUntil := func(rev uint64) {
				t.Helper()
				for r.rev < rev {
					r.apply([][]byte{next(wire.LeafRecords)})
				}
			}

			// Online at revision 0 while the cloud is at 2: the cloud sends
			// a snapshot without being asked.
			publish(wire.LeafStatus, true, wire.Status{V: 1, Box: "box-a", Online: true})
			recordsUntil(2)
			r.requireSame()
			require.Equal(t, "123456", r.codes["g1"])

			// A new grant is pushed at once to the online box.
			_, err = c.PutGrant("box-a", booking("g2", "k1"), "654321")
			require.NoError(t, err)
			recordsUntil(3)
			r.requireSame()
			require.Equal(t, "654321", r.codes["g2"])

			// Asking from an older revision gets the delta from there.
			publish(wire.LeafSyncRequest, false, wire.SyncRequest{V: 1, Box: "box-a", Have: 2, Reason: "test"})
			for {
				b, _ := e.open(t, next(wire.LeafRecords))
				if b.From == 2 {
					require.EqualValues(t, 3, b.To)
					require.False(t, b.Snapshot)
					break
				}
				require.LessOrEqual(t, b.To, r.rev, "only a duplicate of what the box has may come first")
			}

			// Events are stored and acked, signed.
			publish(wire.LeafEvents, false, events(1, 2, 3))
			var ack wire.EventAck
			require.NoError(t, e.verifier.Open(next(wire.LeafEventsAck), wire.KindEventsAck, "box-a", &ack))
			require.EqualValues(t, 3, ack.Through)
			evs, err := c.Events("box-a", 0, 0)
			require.NoError(t, err)
			require.Len(t, evs, 3)

			// A body speaking for another box, and garbage: dropped, counted,
			// nothing answered.
			other := events(4)
			other.Box = "box-b"
			publish(wire.LeafEvents, false, other)
			publish(wire.LeafSyncRequest, false, []byte("{not json"))
			publish(wire.LeafSyncRequest, false, []byte(`{"v":7,"box":"box-a"}`))
			require.Eventually(t, func() bool {
				s := c.Stats()
				return s.WrongBox == 1 && s.Malformed == 2
			}, waitFor, 10*time.Millisecond)
			high, err := c.HighestSeq("box-a")
			require.NoError(t, err)
			require.EqualValues(t, 3, high)

			// A command reaches the box, signed, and its result is kept.
			_, cmd, err := c.Command("box-a", wire.CommandReleaseSlot, 2, "tech", "test", time.Minute)
			require.NoError(t, err)
			var gotCmd wire.Command
			require.NoError(t, e.verifier.Open(next(wire.LeafCommand), wire.KindCommand, "box-a", &gotCmd))
			require.Equal(t, cmd.ID, gotCmd.ID)
			publish(wire.LeafCommandResult, false, wire.CommandResult{V: 1, Box: "box-a", ID: cmd.ID, OK: true, At: time.Now()})
			require.Eventually(t, func() bool {
				_, ok, err := c.CommandResult("box-a", cmd.ID)
				return err == nil && ok
			}, waitFor, 10*time.Millisecond)

			// Offline: no more pushes.
			publish(wire.LeafStatus, true, wire.Status{V: 1, Box: "box-a", Online: false, Revision: 3})
			require.Eventually(t, func() bool {
				st, _, err := c.Status("box-a")
				return err == nil && !st.Online
			}, waitFor, 10*time.Millisecond)
			_, err = c.PutGrant("box-a", booking("g3", "k1"), "777777")
			require.NoError(t, err)
			select {
			case m := <-got:
				t.Fatalf("pushed to an offline box: %s", m.Topic())
			case <-time.After(200 * time.Millisecond):
			}
			require.Zero(t, c.Stats().QueueFull)
		})
	}
}

// TestServeBadBroker: the first connection failing is an error, not a hang.
func TestServeBadBroker(t *testing.T) {
	e := newEnv(t, nil)
	port := brokertest.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := e.c.Serve(ctx, fmt.Sprintf("tcp://127.0.0.1:%d", port), func(o *mqtt.ClientOptions) { o.SetConnectTimeout(time.Second) })
	require.Error(t, err)
	require.NoError(t, ctx.Err())
}

// TestServeRetriesBrokerShedding: the embedded broker refuses connections
// past its bound on those not logged in yet from one address, as a box
// fleet reconnecting after a restart fills it from the address the
// in-process cloud connects from. Serve's first connection is refused,
// tried again, and gets in once the bound frees; it does not give up.
func TestServeRetriesBrokerShedding(t *testing.T) {
	br := brokertest.Start(t, brokertest.Mochi, brokertest.Options{}).(*brokertest.MochiBroker)
	embedded := br.Embedded()
	addr := strings.TrimPrefix(br.URL(), "tcp://")
	// Hold connections open without a CONNECT until the broker refuses one.
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for embedded.RefusedConnections() == 0 {
		require.Less(t, len(held), 1000, "the broker never refused a connection")
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		held = append(held, c)
		// The refusal is counted once the broker has accepted the
		// connection; give the accept loop a moment by a read that ends
		// at once if the broker closed it.
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, _ = c.Read(make([]byte, 1))
	}
	refused := embedded.RefusedConnections()

	e := newEnv(t, nil)
	served := serveUntilCleanup(t, e.c, br.URL(), func(o *mqtt.ClientOptions) {
		o.SetUsername(brokertest.CloudUser).SetPassword(brokertest.Password(brokertest.CloudUser))
	})
	require.Eventually(t, func() bool { return embedded.RefusedConnections() > refused },
		waitFor, 10*time.Millisecond, "the cloud's connection was not refused")
	select {
	case err := <-served:
		t.Fatalf("Serve gave up on a broker shedding load: %v", err)
	default:
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	select {
	case <-e.c.Subscribed():
	case err := <-served:
		t.Fatalf("Serve returned before subscribing: %v", err)
	case <-time.After(waitFor):
		t.Fatal("the cloud did not subscribe once the broker took connections again")
	}
}

// serveUntilCleanup runs c.Serve in the background until the test ends,
// then requires it to return nil. The channel gets Serve's error if it
// returns before that (read it, and the cleanup waits no more).
func serveUntilCleanup(t *testing.T, c *cloud.Cloud, url string, opts func(*mqtt.ClientOptions)) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		served <- c.Serve(ctx, url, opts)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-returned:
			select {
			case err := <-served:
				require.NoError(t, err)
			default: // the test read it
			}
		case <-time.After(waitFor):
			t.Error("Serve did not return after cancel")
		}
	})
	return served
}
