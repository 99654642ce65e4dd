package broker

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// A box publishes exactly its four leaves and reads exactly the cloud's
// three, by name: no wildcard, no other box, no leaf of the other side.
func TestBoxAllowed(t *testing.T) {
	const r, w = false, true
	for _, tc := range []struct {
		topic string
		write bool
		want  bool
	}{
		{"smartbox/v1/box-a/status", w, true},
		{"smartbox/v1/box-a/sync/request", w, true},
		{"smartbox/v1/box-a/events", w, true},
		{"smartbox/v1/box-a/command/result", w, true},
		{"smartbox/v1/box-a/records", r, true},
		{"smartbox/v1/box-a/events/ack", r, true},
		{"smartbox/v1/box-a/command", r, true},
		// the cloud's leaves are not the box's to write, nor its own to read
		{"smartbox/v1/box-a/records", w, false},
		{"smartbox/v1/box-a/events/ack", w, false},
		{"smartbox/v1/box-a/command", w, false},
		{"smartbox/v1/box-a/status", r, false},
		{"smartbox/v1/box-a/events", r, false},
		{"smartbox/v1/box-a/command/result", r, false},
		// no wildcard, even one that stays in the box's tree
		{"smartbox/v1/box-a/#", r, false},
		{"smartbox/v1/box-a/+", r, false},
		{"smartbox/v1/box-a/events/+", r, false},
		{"smartbox/v1/box-a/command/#", r, false},
		// nothing else in or out of the tree
		{"smartbox/v1/box-a", w, false},
		{"smartbox/v1/box-a/x", w, false},
		{"smartbox/v1/box-a/status/x", w, false},
		{"smartbox/v1/box-a/records/x", r, false},
		{"smartbox/v1/box-b/records", r, false},
		{"smartbox/v1/box-b/events", w, false},
		{"smartbox/v1/box-ab/records", r, false},
		{"smartbox/v1/+/records", r, false},
		{"smartbox/v1/#", r, false},
		{"#", r, false},
		{"+/v1/box-a/records", r, false},
		{"$share/g/smartbox/v1/box-a/records", r, false},
		{"$SYS/broker/uptime", r, false},
		{"", w, false},
	} {
		t.Run(fmt.Sprintf("%s write=%v", tc.topic, tc.write), func(t *testing.T) {
			require.Equal(t, tc.want, BoxAllowed("box-a", tc.topic, tc.write))
		})
	}
}

func TestCloudAllowed(t *testing.T) {
	h := &authHook{cloud: "cloud"}
	const r, w = false, true
	for _, tc := range []struct {
		user, topic string
		write       bool
		want        bool
	}{
		{"cloud", "smartbox/v1/+/status", r, true},
		{"cloud", "smartbox/v1/+/sync/request", r, true},
		{"cloud", "smartbox/v1/+/events", r, true},
		{"cloud", "smartbox/v1/+/command/result", r, true},
		{"cloud", "smartbox/v1/box-a/events", r, true},
		{"cloud", "$share/bridge/smartbox/v1/+/events", r, true},
		{"cloud", "smartbox/v1/box-a/records", w, true},
		{"cloud", "smartbox/v1/box-a/events/ack", w, true},
		{"cloud", "smartbox/v1/box-a/command", w, true},
		// the reverse of each is refused
		{"cloud", "smartbox/v1/box-a/status", w, false},
		{"cloud", "smartbox/v1/box-a/events", w, false},
		{"cloud", "smartbox/v1/+/records", r, false},
		{"cloud", "$share/bridge/smartbox/v1/box-a/records", w, false},
		{"cloud", "smartbox/v1/+/records", w, false},
		// wildcards reaching other leaves, and anything outside the tree
		{"cloud", "smartbox/v1/#", r, false},
		{"cloud", "smartbox/v1/+/#", r, false},
		{"cloud", "smartbox/v1/+/+", r, false},
		{"cloud", "smartbox/v1/+/events/#", r, false},
		{"cloud", "$share/bridge", r, false},
		{"cloud", "$share//smartbox/v1/+/events", r, false},
		{"cloud", "$share/+/smartbox/v1/+/events", r, false},
		{"cloud", "#", r, false},
		{"cloud", "$SYS/#", r, false},
		{"cloud", "smartbox/v2/x", r, false},
		{"", "smartbox/v1/box-a/records", r, false},
		{"not a box", "not a box", w, false},
		{"box-a", "smartbox/v1/box-a/events", w, true},
	} {
		t.Run(fmt.Sprintf("%s %s write=%v", tc.user, tc.topic, tc.write), func(t *testing.T) {
			require.Equal(t, tc.want, h.allowed(tc.user, tc.topic, tc.write))
		})
	}
}

func TestRetainAllowed(t *testing.T) {
	require.True(t, retainAllowed("box-a", wire.Topic("box-a", wire.LeafStatus)))
	for leaf := range leafRules {
		if leaf != wire.LeafStatus {
			require.False(t, retainAllowed("box-a", wire.Topic("box-a", leaf)), leaf)
		}
	}
	require.False(t, retainAllowed("box-a", wire.Topic("box-b", wire.LeafStatus)))
	require.False(t, retainAllowed("not a box", "smartbox/v1/not a box/status"))
}

// matches is MQTT filter matching, enough for the fuzz property.
func matches(filter, topic string) bool {
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, p := range f {
		if p == "#" {
			return true
		}
		if i >= len(tp) || (p != "+" && p != tp[i]) {
			return false
		}
	}
	return len(f) == len(tp)
}

// Whatever a box sends as a filter, if it is allowed it matches no topic of
// another box, and no topic of its own tree but its seven leaves.
func FuzzBoxAllowed(f *testing.F) {
	for _, s := range []string{"#", "smartbox/v1/+/records", "smartbox/v1/box-a/#", "smartbox/v1/box-a", "+/+/+/+"} {
		f.Add(s)
	}
	others := []string{wire.Topic("box-b", wire.LeafRecords), wire.Topic("box-a-2", wire.LeafEvents),
		"smartbox/v1/box-b", "smartbox/v1", "smartbox/v1/box-a", "smartbox/v1/box-a/other",
		"smartbox/v1/box-a/events/other", "$SYS/broker/uptime", "other/thing"}
	f.Fuzz(func(t *testing.T, filter string) {
		if !BoxAllowed("box-a", filter, false) && !BoxAllowed("box-a", filter, true) {
			return
		}
		for _, o := range others {
			if matches(filter, o) {
				t.Fatalf("filter %q allowed for box-a matches %q", filter, o)
			}
		}
	})
}

func TestPacketIDFromKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		id   uint16
		okay bool
	}{
		{"IFM_box-a:7", 7, true},
		{"IFM_a:b:65535", 65535, true},
		{"IFM_box-a:0", 0, false},
		{"IFM_box-a:65536", 0, false},
		{"IFM_box-a", 0, false},
		{"IFM_box-a:x", 0, false},
	} {
		t.Run(tc.key, func(t *testing.T) {
			id, ok := packetIDFromKey(tc.key)
			require.Equal(t, tc.okay, ok)
			require.Equal(t, tc.id, id)
		})
	}
}

func TestPassword(t *testing.T) {
	h, err := HashPassword("s3cret")
	require.NoError(t, err)
	require.True(t, CheckPassword(h, "s3cret"))
	require.False(t, CheckPassword(h, "s3cret "))
	require.False(t, CheckPassword(h, ""))
	require.False(t, CheckPassword("s3cret", "s3cret"), "a plain password is no hash")
	_, err = HashPassword("")
	require.Error(t, err)
	_, err = HashPassword(strings.Repeat("x", 73))
	require.Error(t, err, "bcrypt refuses more than 72 bytes")
}

func TestStartConfigErrors(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	require.NoError(t, err)
	users := []User{{Name: "cloud", PasswordHash: string(h)}}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no listener", Config{CloudUser: "cloud", StaticUsers: users}, "no listener"},
		{"TLS without cert", Config{ListenTLS: "127.0.0.1:0", CloudUser: "cloud", StaticUsers: users}, "server certificate"},
		{"no cloud user", Config{Listen: "127.0.0.1:0", StaticUsers: users}, "CloudUser"},
		{"no users", Config{Listen: "127.0.0.1:0", CloudUser: "cloud"}, "no users"},
		{"plain password", Config{Listen: "127.0.0.1:0", CloudUser: "cloud",
			StaticUsers: []User{{Name: "cloud", PasswordHash: "pw"}}}, "bcrypt"},
		{"tiny expiry", Config{Listen: "127.0.0.1:0", CloudUser: "cloud", StaticUsers: users,
			MessageExpiry: time.Millisecond}, "MessageExpiry"},
		{"bad address", Config{Listen: "127.0.0.1:99999", CloudUser: "cloud", StaticUsers: users}, "127.0.0.1:99999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Start(tc.cfg)
			if b != nil {
				b.Close()
			}
			require.ErrorContains(t, err, tc.want)
		})
	}

	// A second broker on the same data dir fails instead of hanging.
	dir := t.TempDir()
	b, err := Start(Config{Listen: "127.0.0.1:0", CloudUser: "cloud", StaticUsers: users, DataDir: dir})
	require.NoError(t, err)
	defer b.Close()
	_, err = Start(Config{Listen: "127.0.0.1:0", CloudUser: "cloud", StaticUsers: users, DataDir: dir})
	require.ErrorContains(t, err, "store")
}

// mochi drops retained messages older than MaximumMessageExpiryInterval
// (by their Created time, every second, for MQTT 3.1.1 too). A retained
// message two days old must still be served; one older than the configured
// expiry must go, which also shows the expiry sweep ran in between.
func TestRetainedOlderThanADayIsKept(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	require.NoError(t, err)
	b, err := Start(Config{Listen: "127.0.0.1:0", CloudUser: "cloud",
		StaticUsers: []User{{Name: "cloud", PasswordHash: string(h)}}})
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, DefaultMessageExpiry, b.MessageExpiry())
	require.Greater(t, b.srv.Options.Capabilities.MaximumMessageExpiryInterval, int64(24*3600))

	now := time.Now()
	retain := func(topic string, age time.Duration) {
		b.srv.Topics.RetainMessage(packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
			TopicName:       topic,
			Payload:         []byte(age.String()),
			Created:         now.Add(-age).Unix(),
			ProtocolVersion: 4,
		})
	}
	weekend, stale := wire.Topic("box-a", wire.LeafStatus), wire.Topic("box-z", wire.LeafStatus)
	retain(weekend, 48*time.Hour)
	retain(stale, DefaultMessageExpiry+time.Hour)
	require.Eventually(t, func() bool {
		_, ok := b.srv.Topics.Retained.Get(stale)
		return !ok
	}, internalWait, 50*time.Millisecond, "the sweep removes a message older than the expiry")

	got := make(chan string, 4)
	o := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("cloud-1").
		SetUsername("cloud").SetPassword("pw").SetAutoReconnect(false).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			got <- fmt.Sprintf("%s %s %v", m.Topic(), m.Payload(), m.Retained())
		})
	cl := paho.NewClient(o)
	tok := cl.Connect()
	require.True(t, tok.WaitTimeout(internalWait))
	require.NoError(t, tok.Error())
	defer cl.Disconnect(100)
	tok = cl.Subscribe(wire.CloudFilter(wire.LeafStatus), 1, nil)
	require.True(t, tok.WaitTimeout(internalWait))
	select {
	case m := <-got:
		require.Equal(t, weekend+" 48h0m0s true", m)
	case <-time.After(internalWait):
		t.Fatal("the two-day-old retained status was not served")
	}
}

// A store written before the retain rule (a box could retain anything in its
// tree) loses, at the next start, every retained message the rule forbids:
// from memory, and from the file.
func TestStoreDropsRetainedTheRulesForbid(t *testing.T) {
	path := filepath.Join(t.TempDir(), StoreFile)
	old := new(bolt.Hook)
	old.SetOpts(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	require.NoError(t, old.Init(&bolt.Options{Path: path}))
	status := wire.Topic("box-a", wire.LeafStatus)
	forbidden := []string{wire.Topic("box-a", wire.LeafRecords), wire.Topic("box-a", wire.LeafEvents),
		wire.Topic("box-a", "flood/1"), wire.Topic("box-b", wire.LeafStatus)}
	retain := func(topic string, size int) {
		old.OnRetainMessage(&mqtt.Client{ID: "box-a"}, packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
			TopicName:   topic, Payload: []byte(strings.Repeat("x", size)), Created: time.Now().Unix(),
		}, 1)
	}
	retain(status, 300)
	for _, topic := range forbidden[:3] {
		retain(topic, 100<<10)
	}
	retain(forbidden[3], maxStatusSize+1) // a status, but too large
	require.NoError(t, old.Stop())

	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	require.NoError(t, err)
	b, err := Start(Config{Listen: "127.0.0.1:0", CloudUser: "cloud", DataDir: filepath.Dir(path),
		StaticUsers: []User{{Name: "cloud", PasswordHash: string(h)}},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	_, ok := b.srv.Topics.Retained.Get(status)
	require.True(t, ok, "the status is kept")
	for _, topic := range forbidden {
		_, ok := b.srv.Topics.Retained.Get(topic)
		require.False(t, ok, topic)
	}
	require.NoError(t, b.Close())

	again := new(bolt.Hook)
	again.SetOpts(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	require.NoError(t, again.Init(&bolt.Options{Path: path}))
	defer again.Stop()
	stored, err := again.StoredRetainedMessages()
	require.NoError(t, err)
	require.Len(t, stored, 1)
	require.Equal(t, status, stored[0].TopicName)
}
