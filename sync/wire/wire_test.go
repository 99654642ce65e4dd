package wire_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

func TestTopics(t *testing.T) {
	require.Equal(t, "smartbox/v1/box-7/records", wire.Topic("box-7", wire.LeafRecords))
	require.Equal(t, "smartbox/v1/box-7/#", wire.BoxFilter("box-7"))
	require.Equal(t, "smartbox/v1/+/events", wire.CloudFilter(wire.LeafEvents))

	b, leaf, err := wire.ParseTopic("smartbox/v1/box-7/events/ack")
	require.NoError(t, err)
	require.Equal(t, "box-7", b)
	require.Equal(t, wire.LeafEventsAck, leaf)

	for _, bad := range []string{"", "smartbox/v2/a/status", "smartbox/v1/a", "smartbox/v1/a/nope",
		"smartbox/v1/+/status", "smartbox/v1//status", "other/a/status"} {
		_, _, err := wire.ParseTopic(bad)
		require.ErrorIs(t, err, wire.ErrMalformed, bad)
	}
}

func newSigner(t testing.TB) (wire.Signer, wire.Verifier) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return wire.Signer{KeyID: "k1", Key: priv}, wire.Verifier{Keys: map[string]ed25519.PublicKey{"k1": pub}, BoxKey: testBoxKey}
}

// testBoxKey stands for a box store's X25519 sync public key.
var testBoxKey = bytes.Repeat([]byte{7}, 32)

func TestSignVerify(t *testing.T) {
	s, v := newSigner(t)
	batch := wire.RecordBatch{V: wire.Version, Box: "box-a", From: 3, To: 4, IssuedAt: time.Unix(1e9, 0).UTC(),
		Keys: []box.Key{{ID: "k1", FobUID: "01000734E0", Slot: 1}}}
	msg, err := s.Sign(wire.KindRecords, "box-a", testBoxKey, batch)
	require.NoError(t, err)

	var got wire.RecordBatch
	require.NoError(t, v.Open(msg, wire.KindRecords, "box-a", &got))
	require.Equal(t, batch, got)

	t.Run("another box", func(t *testing.T) {
		require.ErrorIs(t, v.Open(msg, wire.KindRecords, "box-b", &got), wire.ErrWrongBox)
	})
	t.Run("another kind", func(t *testing.T) {
		require.ErrorIs(t, v.Open(msg, wire.KindCommand, "box-a", &got), wire.ErrMalformed)
	})
	t.Run("signed for another store of the same box", func(t *testing.T) {
		// An old SD card's ack or batch, replayed to the re-flashed card.
		old, err := s.Sign(wire.KindRecords, "box-a", bytes.Repeat([]byte{8}, 32), batch)
		require.NoError(t, err)
		require.ErrorIs(t, v.Open(old, wire.KindRecords, "box-a", &got), wire.ErrWrongAudience)
		// Relabelling its audience does not help: the signature covers it.
		var env wire.Envelope
		require.NoError(t, json.Unmarshal(old, &env))
		env.Aud = wire.Audience(testBoxKey)
		forged, _ := json.Marshal(env)
		require.ErrorIs(t, v.Open(forged, wire.KindRecords, "box-a", &got), wire.ErrBadSignature)
	})
	t.Run("v1 envelope (no audience)", func(t *testing.T) {
		var env wire.Envelope
		require.NoError(t, json.Unmarshal(msg, &env))
		env.V = 1
		old, _ := json.Marshal(env)
		require.ErrorIs(t, v.Open(old, wire.KindRecords, "box-a", &got), wire.ErrVersion)
	})
	t.Run("re-addressed envelope", func(t *testing.T) {
		var env wire.Envelope
		require.NoError(t, json.Unmarshal(msg, &env))
		env.Box = "box-b" // a neighbour tries to pass A's batch to B
		forged, _ := json.Marshal(env)
		require.ErrorIs(t, v.Open(forged, wire.KindRecords, "box-b", &got), wire.ErrBadSignature)
	})
	t.Run("body changed", func(t *testing.T) {
		forged := bytes.Replace(msg, []byte(`"to":4`), []byte(`"to":9`), 1)
		require.NotEqual(t, msg, forged)
		require.ErrorIs(t, v.Open(forged, wire.KindRecords, "box-a", &got), wire.ErrBadSignature)
	})
	t.Run("signed by another key", func(t *testing.T) {
		other, _ := newSigner(t)
		forged, err := other.Sign(wire.KindRecords, "box-a", testBoxKey, batch)
		require.NoError(t, err)
		require.ErrorIs(t, v.Open(forged, wire.KindRecords, "box-a", &got), wire.ErrBadSignature)
	})
	t.Run("unknown key id", func(t *testing.T) {
		s2 := s
		s2.KeyID = "k9"
		forged, err := s2.Sign(wire.KindRecords, "box-a", testBoxKey, batch)
		require.NoError(t, err)
		require.ErrorIs(t, v.Open(forged, wire.KindRecords, "box-a", &got), wire.ErrBadSignature)
	})
	t.Run("no signature", func(t *testing.T) {
		var env wire.Envelope
		require.NoError(t, json.Unmarshal(msg, &env))
		env.Sig = nil
		forged, _ := json.Marshal(env)
		require.ErrorIs(t, v.Open(forged, wire.KindRecords, "box-a", &got), wire.ErrBadSignature)
	})
	t.Run("body says another box", func(t *testing.T) {
		b := batch
		b.Box = "box-b"
		inner, err := s.Sign(wire.KindRecords, "box-a", testBoxKey, b)
		require.NoError(t, err)
		require.ErrorIs(t, v.Open(inner, wire.KindRecords, "box-a", &got), wire.ErrWrongBox)
	})
	t.Run("unknown version", func(t *testing.T) {
		b := batch
		b.V = 2
		m, err := s.Sign(wire.KindRecords, "box-a", testBoxKey, b)
		require.NoError(t, err)
		require.ErrorIs(t, v.Open(m, wire.KindRecords, "box-a", &got), wire.ErrVersion)
	})
	t.Run("garbage", func(t *testing.T) {
		require.ErrorIs(t, v.Open([]byte("{not json"), wire.KindRecords, "box-a", &got), wire.ErrMalformed)
		require.ErrorIs(t, v.Open(make([]byte, wire.MaxMessageSize+1), wire.KindRecords, "box-a", &got), wire.ErrTooLarge)
	})
}

func TestDecode(t *testing.T) {
	var st wire.Status
	require.NoError(t, wire.Decode([]byte(`{"v":1,"box":"a","online":true,"revision":7}`), "a", &st))
	require.True(t, st.Online)
	require.EqualValues(t, 7, st.Revision)
	require.ErrorIs(t, wire.Decode([]byte(`{"v":1,"box":"b"}`), "a", &st), wire.ErrWrongBox)
	require.ErrorIs(t, wire.Decode([]byte(`{"v":0,"box":"a"}`), "a", &st), wire.ErrVersion)
	require.ErrorIs(t, wire.Decode([]byte(`{"v":1,"box":"a","revision":"x"}`), "a", &st), wire.ErrMalformed)
}

func TestSealCodes(t *testing.T) {
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := wire.NewCodeSealer(boxKey.PublicKey().Bytes(), "box-a", 42)
	require.NoError(t, err)
	sealed := s.Seal("g1", "123456")
	require.NotContains(t, string(sealed), "123456")

	o, err := wire.NewCodeOpener(boxKey, s.Ephemeral(), "box-a", 42)
	require.NoError(t, err)
	code, err := o.Open("g1", sealed)
	require.NoError(t, err)
	require.Equal(t, "123456", code)

	_, err = o.Open("g2", sealed) // moved to another grant
	require.ErrorIs(t, err, wire.ErrBadSignature)
	_, err = o.Open("g1", sealed[:5])
	require.ErrorIs(t, err, wire.ErrMalformed)

	for name, mk := range map[string]func() (*wire.CodeOpener, error){
		"other revision": func() (*wire.CodeOpener, error) { return wire.NewCodeOpener(boxKey, s.Ephemeral(), "box-a", 43) },
		"other box":      func() (*wire.CodeOpener, error) { return wire.NewCodeOpener(boxKey, s.Ephemeral(), "box-b", 42) },
	} {
		o2, err := mk()
		require.NoError(t, err, name)
		_, err = o2.Open("g1", sealed)
		require.ErrorIs(t, err, wire.ErrBadSignature, name)
	}
	_, err = wire.NewCodeOpener(boxKey, []byte{1, 2, 3}, "box-a", 42)
	require.ErrorIs(t, err, wire.ErrMalformed)
}

func FuzzOpen(f *testing.F) {
	s, v := newSigner(f)
	good, _ := s.Sign(wire.KindRecords, "box-a", testBoxKey, wire.RecordBatch{V: 1, Box: "box-a", To: 1})
	f.Add(good)
	f.Add([]byte(`{"v":2,"kind":"records","box":"box-a","aud":"","body":{},"sig":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b wire.RecordBatch
		err := v.Open(data, wire.KindRecords, "box-a", &b)
		if err == nil && !bytes.Equal(data, good) {
			// Only the cloud's own bytes (or a re-encoding of the same
			// envelope) may verify.
			var env wire.Envelope
			require.NoError(t, json.Unmarshal(data, &env))
			require.Equal(t, "box-a", b.Box)
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	f.Add("smartbox/v1/box-7/events/ack")
	f.Add("smartbox/v1/a/status")
	f.Fuzz(func(t *testing.T, topic string) {
		b, leaf, err := wire.ParseTopic(topic)
		if err == nil {
			require.Equal(t, topic, wire.Topic(b, leaf))
		}
	})
}

// TestCheckCommandText: the commands that change a box say who and why, in
// at most MaxCommandText bytes each; a resync needs neither.
func TestCheckCommandText(t *testing.T) {
	long := string(make([]byte, wire.MaxCommandText+1))
	for _, tc := range []struct {
		kind, by, reason string
		want             string // "" passes
	}{
		{wire.CommandRestoreKeypad, "ops@depot", "guessing stopped", ""},
		{wire.CommandRestoreKeypad, "", "guessing stopped", "restore_keypad needs who asked (by) and why (reason)"},
		{wire.CommandRestoreKeypad, "ops@depot", "", "restore_keypad needs who asked (by) and why (reason)"},
		{wire.CommandReleaseSlot, "", "", "release_slot needs who asked"},
		{wire.CommandRestoreKeypad, long, "why", "restore_keypad: by is 201 bytes, at most 200"},
		{wire.CommandReleaseSlot, "tech", long, "release_slot: reason is 201 bytes, at most 200"},
		{wire.CommandRestoreKeypad, long[:wire.MaxCommandText], long[:wire.MaxCommandText], ""},
		{wire.CommandResync, "", "", ""},
		{wire.CommandResync, long, "", "resync: by is 201 bytes"},
	} {
		err := wire.CheckCommandText(tc.kind, tc.by, tc.reason)
		if tc.want == "" {
			require.NoError(t, err, "%s by %d bytes, reason %d", tc.kind, len(tc.by), len(tc.reason))
			continue
		}
		require.ErrorIs(t, err, wire.ErrMalformed)
		require.ErrorContains(t, err, tc.want)
	}
}
