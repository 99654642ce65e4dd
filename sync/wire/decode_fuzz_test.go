package wire_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// decodeTargets are the message types a side decodes from outside bytes:
// the box's plain messages the cloud reads (status, sync request, events,
// command result) and the bodies of the signed ones the box reads
// (records, events ack, command), which Open hands to Decode once the
// signature holds.
var decodeTargets = []func() any{
	func() any { return new(wire.Status) },
	func() any { return new(wire.SyncRequest) },
	func() any { return new(wire.EventBatch) },
	func() any { return new(wire.CommandResult) },
	func() any { return new(wire.RecordBatch) },
	func() any { return new(wire.EventAck) },
	func() any { return new(wire.Command) },
}

// FuzzDecode: Decode never panics; it refuses with one of the package's
// errors, or it gives a message of our version and box that encodes and
// decodes back to the same message.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), []byte(`{"v":1,"box":"box-a","online":true,"revision":7,"clock":"2026-11-02T09:00:00+01:00"}`))
	f.Add(uint8(1), []byte(`{"v":1,"box":"box-a","have":3,"reason":"probe","probe":"abc-123"}`))
	f.Add(uint8(2), []byte(`{"v":1,"box":"box-a","events":[{"seq":1,"type":"box_started","time":"2026-11-02T09:00:00Z"}]}`))
	f.Add(uint8(3), []byte(`{"v":1,"box":"box-a","id":"c1","ok":false,"error":"slot busy","at":"2026-11-02T09:00:00Z"}`))
	f.Add(uint8(4), []byte(`{"v":1,"box":"box-a","from":0,"to":2,"snapshot":true,"chunk":1,"chunks":1,`+
		`"keys":[{"id":"k1","fob_uid":"01000734E0","slot":1}],"grants":[{"id":"g1","kind":"booking","key_ids":["k1"],"code_sealed":"AAEC"}],`+
		`"ephemeral":"AAEC","issued_at":"2026-11-02T09:00:00Z"}`))
	f.Add(uint8(5), []byte(`{"v":1,"box":"box-a","through":18446744073709551615}`))
	f.Add(uint8(6), []byte(`{"v":1,"box":"box-a","id":"c1","kind":"release_slot","slot":3,"by":"ann","reason":"lost pin",`+
		`"issued_at":"2026-11-02T09:00:00Z","expires":"2026-11-02T09:10:00Z"}`))
	f.Add(uint8(0), []byte(`{"v":1,"box":"box-b"}`))
	f.Add(uint8(4), []byte(`{"v":1,"box":"box-a","to":"x"}`))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		mk := decodeTargets[int(kind)%len(decodeTargets)]
		out := mk()
		err := wire.Decode(data, "box-a", out)
		if err != nil {
			require.True(t, errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrVersion) ||
				errors.Is(err, wire.ErrWrongBox) || errors.Is(err, wire.ErrTooLarge), "an error of no kind: %v", err)
			return
		}
		// What was accepted is of our version and for our box.
		var h struct {
			V   int    `json:"v"`
			Box string `json:"box"`
		}
		enc, err := json.Marshal(out)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(enc, &h))
		require.Equal(t, wire.Version, h.V)
		require.Equal(t, "box-a", h.Box)
		// It round-trips: compared as encodings, since a time decoded
		// with an offset and the same time decoded with "Z" are one
		// instant in two locations.
		again := mk()
		require.NoError(t, wire.Decode(enc, "box-a", again))
		enc2, err := json.Marshal(again)
		require.NoError(t, err)
		require.Equal(t, string(enc), string(enc2))
	})
}

// fixedSigner is a cloud key made from a fixed seed, so that the valid
// envelopes below (and the seed corpus made from them) are the same bytes
// in every run: ed25519 signatures are deterministic.
func fixedSigner() (wire.Signer, wire.Verifier) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
	return wire.Signer{KeyID: "k1", Key: priv},
		wire.Verifier{Keys: map[string]ed25519.PublicKey{"k1": priv.Public().(ed25519.PublicKey)}, BoxKey: testBoxKey}
}

// FuzzOpenTampered takes a valid envelope of each signed kind and changes
// one byte of it (replaced, deleted or inserted). The verifier may accept
// the result only if it is the same signed message written another way
// (JSON allows a few: whitespace between the envelope's fields, a field
// name's case, base64 padding bits), so: same kind, box, audience, body
// bytes and signature, decoding to the same value. Anything else it refuses
// with one of the package's errors.
func FuzzOpenTampered(f *testing.F) {
	s, v := fixedSigner()
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	type signed struct {
		kind string
		body any
		out  func() any
	}
	kinds := []signed{
		{wire.KindRecords, wire.RecordBatch{V: wire.Version, Box: "box-a", From: 3, To: 4, IssuedAt: at,
			Keys:   []box.Key{{ID: "k1", FobUID: "01000734E0", Slot: 1}},
			Grants: []wire.GrantRecord{{Grant: box.Grant{ID: "g1", Kind: box.KindBooking, KeyIDs: []string{"k1"}}, CodeSealed: []byte{1, 2, 3}}}},
			func() any { return new(wire.RecordBatch) }},
		{wire.KindEventsAck, wire.EventAck{V: wire.Version, Box: "box-a", Through: 17}, func() any { return new(wire.EventAck) }},
		{wire.KindCommand, wire.Command{V: wire.Version, Box: "box-a", ID: "c1", Kind: wire.CommandReleaseSlot, Slot: 2,
			By: "ann", Reason: "lost pin", IssuedAt: at, Expires: at.Add(10 * time.Minute)}, func() any { return new(wire.Command) }},
	}
	goods := make([][]byte, len(kinds))
	for i, k := range kinds {
		msg, err := s.Sign(k.kind, "box-a", testBoxKey, k.body)
		require.NoError(f, err)
		goods[i] = msg
		// Each good envelope verifies as it is, and decodes to what was signed.
		out := k.out()
		require.NoError(f, v.Open(msg, k.kind, "box-a", out))
	}
	for i := range kinds {
		f.Add(uint8(i), uint8(0), uint32(10), byte('X'))
		f.Add(uint8(i), uint8(0), uint32(len(goods[i])-5), byte('A'))
		f.Add(uint8(i), uint8(1), uint32(len(goods[i])/2), byte(0))
		f.Add(uint8(i), uint8(2), uint32(1), byte(' '))
	}
	f.Fuzz(func(t *testing.T, which, op uint8, pos uint32, c byte) {
		i := int(which) % len(kinds)
		good := goods[i]
		p := int(pos % uint32(len(good)))
		var data []byte
		switch op % 3 {
		case 0:
			data = bytes.Clone(good)
			data[p] = c
		case 1:
			data = append(bytes.Clone(good[:p]), good[p+1:]...)
		default:
			data = append(append(bytes.Clone(good[:p]), c), good[p:]...)
		}
		out := kinds[i].out()
		err := v.Open(data, kinds[i].kind, "box-a", out)
		if err != nil {
			require.True(t, errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrVersion) ||
				errors.Is(err, wire.ErrBadSignature) || errors.Is(err, wire.ErrWrongBox) ||
				errors.Is(err, wire.ErrWrongAudience), "an error of no kind: %v", err)
			return
		}
		var want, got wire.Envelope
		require.NoError(t, json.Unmarshal(good, &want))
		require.NoError(t, json.Unmarshal(data, &got))
		require.Equal(t, want.Kind, got.Kind)
		require.Equal(t, want.Box, got.Box)
		require.Equal(t, want.Aud, got.Aud)
		require.Equal(t, string(want.Body), string(got.Body), "a changed body verified")
		require.Equal(t, want.Sig, got.Sig)
		wantOut := kinds[i].out()
		require.NoError(t, wire.Decode(want.Body, "box-a", wantOut))
		require.Equal(t, wantOut, out)
	})
}

// FuzzCodeOpen: a sealed code opens to the code for its grant only; one
// changed bit, another grant id or another batch key and it does not open;
// arbitrary bytes never open and never panic, nor does an arbitrary batch
// ephemeral key.
func FuzzCodeOpen(f *testing.F) {
	boxKey, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{9}, 32))
	require.NoError(f, err)
	s, err := wire.NewCodeSealer(boxKey.PublicKey().Bytes(), "box-a", 42)
	require.NoError(f, err)
	o, err := wire.NewCodeOpener(boxKey, s.Ephemeral(), "box-a", 42)
	require.NoError(f, err)
	f.Add("g1", "123456", uint16(0), byte(1), []byte("not a seal"), bytes.Repeat([]byte{9}, 32))
	f.Add("booking-77", "0000", uint16(12), byte(0x80), make([]byte, 28), make([]byte, 32))
	f.Add("", "", uint16(5), byte(0), []byte{}, []byte{1, 2, 3})
	f.Add("g1", "1234567890123456", uint16(40), byte(0xff), make([]byte, 64), boxKey.PublicKey().Bytes())
	f.Fuzz(func(t *testing.T, grantID, code string, pos uint16, flip byte, junk, ephemeral []byte) {
		sealed := s.Seal(grantID, code)
		if len(code) >= 8 { // a shorter one may turn up in random bytes by chance
			require.NotContains(t, string(sealed), code, "a code in clear")
		}
		got, err := o.Open(grantID, sealed)
		require.NoError(t, err)
		require.Equal(t, code, got)

		if flip != 0 {
			tampered := bytes.Clone(sealed)
			tampered[int(pos)%len(tampered)] ^= flip
			_, err := o.Open(grantID, tampered)
			require.ErrorIs(t, err, wire.ErrBadSignature)
		}
		_, err = o.Open(grantID+"x", sealed) // lifted onto another grant
		require.ErrorIs(t, err, wire.ErrBadSignature)
		_, err = o.Open(grantID, sealed[:len(sealed)-1])
		require.Error(t, err)

		if _, err := o.Open(grantID, junk); !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrBadSignature) {
			t.Fatalf("arbitrary bytes opened (or an error of no kind: %v)", err)
		}
		o2, err := wire.NewCodeOpener(boxKey, ephemeral, "box-a", 42)
		if err != nil {
			require.ErrorIs(t, err, wire.ErrMalformed)
			return
		}
		// X25519 ignores a point's top bit (RFC 7748), so a key that
		// differs from the batch's only there is the same key.
		eph := s.Ephemeral()
		if !bytes.Equal(ephemeral[:31], eph[:31]) || ephemeral[31]&0x7f != eph[31]&0x7f {
			_, err := o2.Open(grantID, sealed)
			require.ErrorIs(t, err, wire.ErrBadSignature, "opened with another batch's key")
		}
	})
}
