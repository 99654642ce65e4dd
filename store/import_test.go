package store

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

const goodImport = `{
  "keys": [
    {"id": "van-12", "name": "Van 12", "fob_uid": "01 00 07 34 e0", "slot": 3},
    {"id": "van-14", "fob_uid": "0100073500", "slot": 4}
  ],
  "grants": [
    {"id": "g-1", "kind": "booking", "key_ids": ["van-12"], "code": "482913",
     "from": "2026-11-01T08:00:00Z", "until": "2026-11-02T08:00:00Z", "max_uses": 2},
    {"id": "d-7", "kind": "driver_code", "driver_ref": "contact-7", "code": "7777", "source": "fleetio"},
    {"id": "g-old", "kind": "booking", "key_ids": ["van-14"], "revoked": true}
  ]
}`

func TestParseImport(t *testing.T) {
	b, err := ParseImport(strings.NewReader(goodImport), 12)
	require.NoError(t, err)
	require.Zero(t, b.FromRevision)
	require.Zero(t, b.ToRevision)
	require.False(t, b.Snapshot)
	require.Equal(t, []box.Key{
		{ID: "van-12", Name: "Van 12", FobUID: "01000734E0", Slot: 3},
		{ID: "van-14", FobUID: "0100073500", Slot: 4},
	}, b.Keys)
	require.Len(t, b.Grants, 3)
	require.Equal(t, "482913", b.Grants[0].Code)
	require.Equal(t, 2, b.Grants[0].MaxUses)
	require.Equal(t, "import", b.Grants[0].Source)
	require.Equal(t, "fleetio", b.Grants[1].Source)
	require.Equal(t, "contact-7", b.Grants[1].DriverRef)
	require.True(t, b.Grants[2].Revoked)

	// And it applies.
	s, clock := newStore(t)
	clock.Set(t0.Add(-2 * 60 * 60 * 1e9)) // before the booking's window
	_, err = s.Apply(b)
	require.NoError(t, err)
	rev, err := s.Revision()
	require.NoError(t, err)
	require.Equal(t, uint64(1), rev)
	gs, err := s.GrantsByCode("482913")
	require.NoError(t, err)
	require.Equal(t, []string{"g-1"}, grantIDs(gs))
	k, ok, err := s.KeyByFob("01000734E0")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "van-12", k.ID)
}

func TestParseImportErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		slots   int
		wantErr string
	}{
		{"not JSON", `keys: []`, 0, "line 1, column 1: invalid character 'k'"},
		{"syntax error on line 3", "{\n\"keys\": [\n  {\"id\": \"k1\",, }]}", 0, "line 3, column 15: invalid character ','"},
		{"unknown field", `{"keys": [], "grant": []}`, 0, `unknown field "grant"`},
		{"unknown field in a key", `{"keys": [{"id": "k1", "fob_uid": "0000000001", "slot": 1, "colour": "red"}]}`, 0, `unknown field "colour"`},
		{"wrong type", `{"keys": [{"id": "k1", "fob_uid": "0000000001", "slot": "one"}]}`, 0, "line 1, column"},
		{"trailing data", `{"keys": []} {"keys": []}`, 0, "unexpected data after the JSON object"},
		{"trailing junk", `{"keys": []} x`, 0, "unexpected data after the JSON object"},
		{"bad fob", `{"keys": [{"id": "k1", "fob_uid": "12", "slot": 1}]}`, 0, `keys[0] (id "k1"): invalid record: key k1: fob_uid "12" is not 10 hex digits`},
		{"slot over the box's", `{"keys": [{"id": "k1", "fob_uid": "0000000001", "slot": 13}]}`, 12, `keys[0] (id "k1"): invalid record: key k1: slot 13 is not in 1..12`},
		{"duplicate key", `{"keys": [{"id": "k1", "fob_uid": "0000000001", "slot": 1}, {"id": "k1", "fob_uid": "0000000002", "slot": 2}]}`, 0, `keys[1] (id "k1"): invalid record: duplicate id, first at keys[0]`},
		{"duplicate fob", `{"keys": [{"id": "k1", "fob_uid": "0000000001", "slot": 1}, {"id": "k2", "fob_uid": "00:00:00:00:01", "slot": 2}]}`, 0, `keys[1] (id "k2"): invalid record: fob 0000000001 is also keys[0] (id "k1")`},
		{"missing code", `{"grants": [{"id": "g-17", "kind": "booking", "key_ids": ["k1"]}]}`, 0, `grants[0] (id "g-17"): invalid record: grant g-17: a booking grant needs a code unless revoked`},
		{"short code", `{"grants": [{"id": "g-17", "kind": "booking", "key_ids": ["k1"], "code": "12"}]}`, 0, `grants[0] (id "g-17"): grant g-17: invalid record: code must be 4 to 16 digits`},
		{"bad kind", `{"grants": [{"id": "g-1", "kind": "master", "code": "1234"}]}`, 0, `grants[0] (id "g-1"): invalid record: grant g-1: kind "master"`},
		{"bad window", `{"grants": [{"id": "g-1", "kind": "booking", "key_ids": ["k1"], "code": "1234", "from": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}]}`, 0, "is not before until"},
		{"duplicate grant", `{"grants": [{"id": "g-1", "kind": "driver_code", "driver_ref": "7", "code": "1234"}, {"id": "g-1", "kind": "driver_code", "driver_ref": "7", "code": "5678"}]}`, 0, `grants[1] (id "g-1"): invalid record: duplicate id, first at grants[0]`},
		{"fourth grant", `{"grants": [{"id": "g-1", "kind": "booking", "key_ids": ["k"], "code": "1234"}, {"id": "g-2", "kind": "booking", "key_ids": ["k"], "code": "1235"}, {"id": "g-3", "kind": "booking", "key_ids": ["k"], "code": "1236"}, {"id": "g-17", "kind": "booking", "key_ids": ["k"]}]}`, 0,
			`grants[3] (id "g-17"): `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseImport(strings.NewReader(tt.in), tt.slots)
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), `"code"`)
		})
	}
}

func TestParseImportSizeBound(t *testing.T) {
	// An endless stream of spaces: the bound stops the read.
	endless := io.MultiReader(strings.NewReader("{"), &repeatReader{b: ' '})
	_, err := ParseImport(endless, 0)
	require.ErrorContains(t, err, "larger than 64 MiB")
}

type repeatReader struct{ b byte }

func (r *repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b
	}
	return len(p), nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseImportReadError(t *testing.T) {
	_, err := ParseImport(failingReader{}, 0)
	require.ErrorContains(t, err, "disk on fire")
}

func FuzzParseImport(f *testing.F) {
	f.Add([]byte(goodImport), 12)
	f.Add([]byte(`{"keys": [], "grants": []}`), 0)
	f.Add([]byte(`{"grants": [{"id": "g-1", "kind": "driver_code", "driver_ref": "7", "code": "1234"}]}`), 0)
	f.Add([]byte(`{"keys": [{"id": "k1", "fob_uid": "00:00:00:00:01", "slot": 1}]}`), 1)
	f.Add([]byte(`null`), 0)
	f.Add([]byte(`{"keys": [{"id": "k1", "fob_uid": "0000000001", "slot": 1}]} {}`), 0)
	f.Fuzz(func(t *testing.T, data []byte, slots int) {
		b, err := ParseImport(bytes.NewReader(data), slots)
		if err != nil {
			return
		}
		fobs := map[string]bool{}
		for i, k := range b.Keys {
			if err := k.Validate(slots); err != nil {
				t.Fatalf("keys[%d] parsed but does not validate: %v", i, err)
			}
			norm, _ := box.NormalizeFobUID(k.FobUID)
			if norm != k.FobUID {
				t.Fatalf("keys[%d]: fob %q not normalised", i, k.FobUID)
			}
			if fobs[k.FobUID] {
				t.Fatalf("keys[%d]: fob %q twice", i, k.FobUID)
			}
			fobs[k.FobUID] = true
		}
		ids := map[string]bool{}
		for i, g := range b.Grants {
			if err := g.Validate(); err != nil {
				t.Fatalf("grants[%d] parsed but does not validate: %v", i, err)
			}
			if g.Code == "" && !g.Revoked {
				t.Fatalf("grants[%d]: no code and not revoked", i)
			}
			if g.Code != "" {
				if err := box.ValidCode(g.Code); err != nil {
					t.Fatalf("grants[%d]: code does not validate: %v", i, err)
				}
			}
			if ids[g.ID] {
				t.Fatalf("grants[%d]: id %q twice", i, g.ID)
			}
			ids[g.ID] = true
		}
	})
}
