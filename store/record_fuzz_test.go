package store

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

// FuzzApplyRecord decodes a key or a grant record (as the cloud, the bridge
// or an import sends it) from arbitrary JSON and applies it to a real store,
// as a snapshot of that one record over an emptied store, so that each
// input is judged alone. box's Validate and the store agree: a record that
// validates applies and reads back as it was sent (a key with its fob UID
// normalised); one that does not is refused with ErrInvalidRecord and
// nothing is written. The one rule of the store's own is that a new grant
// needs a code unless it is revoked (GrantPut.Validate leaves that to the
// receiver).
func FuzzApplyRecord(f *testing.F) {
	s, _ := newStore(f) // 12 slots; one file for the whole run, emptied per input
	f.Add(false, []byte(`{"id":"van-7","name":"Van 7","fob_uid":"01 00 07 34 e0","slot":3}`))
	f.Add(false, []byte(`{"id":"van-7","fob_uid":"01000734E0","slot":13}`))
	f.Add(false, []byte(`{"id":"-x","fob_uid":"01000734E0","slot":1}`))
	f.Add(true, []byte(`{"id":"booking-1","kind":"booking","key_ids":["van-7"],"from":"2026-11-01T09:00:00Z","until":"2026-11-01T17:00:00+01:00","max_uses":2,"code":"482135"}`))
	f.Add(true, []byte(`{"id":"drv-1","kind":"driver_code","driver_ref":"contact-77","code":"1234"}`))
	f.Add(true, []byte(`{"id":"drv-1","kind":"driver_code","driver_ref":"contact-77"}`))
	f.Add(true, []byte(`{"id":"g1","kind":"booking","key_ids":["k1"],"revoked":true}`))
	f.Add(true, []byte(`{"id":"g1","kind":"booking","key_ids":["k1"],"code":"12a4"}`))
	f.Add(true, []byte(`{"id":"g1","kind":"booking","key_ids":["k1"],"uses":-1,"code":"1234"}`))
	f.Fuzz(func(t *testing.T, grant bool, data []byte) {
		rev, err := s.Revision()
		require.NoError(t, err)
		_, err = s.Apply(Batch{Snapshot: true, FromRevision: rev, ToRevision: rev + 1})
		require.NoError(t, err, "emptying the store")
		rev++
		if grant {
			applyGrantRecord(t, s, rev, data)
		} else {
			applyKeyRecord(t, s, rev, data)
		}
	})
}

func applyKeyRecord(t *testing.T, s *Store, rev uint64, data []byte) {
	var k box.Key
	if json.Unmarshal(data, &k) != nil {
		return
	}
	_, err := s.Apply(Batch{Snapshot: true, FromRevision: rev, ToRevision: rev + 1, Keys: []box.Key{k}})
	want, invalid := k.Normalized(s.slots)
	if invalid != nil {
		require.ErrorIs(t, err, box.ErrInvalidRecord, "a key that fails Validate (%v)", invalid)
		requireEmpty(t, s, rev)
		return
	}
	require.NoError(t, err, "a key that validates")
	got, ok, err := s.KeyByID(k.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, want, got)
	byFob, ok, err := s.KeyByFob(k.FobUID)
	require.NoError(t, err)
	require.True(t, ok, "the key's fob finds no key")
	require.Equal(t, k.ID, byFob.ID)
}

func applyGrantRecord(t *testing.T, s *Store, rev uint64, data []byte) {
	var g box.GrantPut
	if json.Unmarshal(data, &g) != nil {
		return
	}
	_, err := s.Apply(Batch{Snapshot: true, FromRevision: rev, ToRevision: rev + 1, Grants: []box.GrantPut{g}})
	if invalid := g.Validate(); invalid != nil {
		require.ErrorIs(t, err, box.ErrInvalidRecord, "a grant that fails Validate (%v)", invalid)
		requireEmpty(t, s, rev)
		return
	}
	if g.Code == "" && !g.Revoked {
		require.ErrorIs(t, err, box.ErrInvalidRecord, "a new grant with no code")
		requireEmpty(t, s, rev)
		return
	}
	require.NoError(t, err, "a grant that validates")
	gs, err := s.Grants()
	require.NoError(t, err)
	require.Len(t, gs, 1)
	// Compared as encodings: a time decoded with an offset and read back
	// as "Z" is one instant in two locations, and an empty key_ids list
	// is stored as none.
	sent, err := json.Marshal(g.Grant)
	require.NoError(t, err)
	stored, err := json.Marshal(gs[0])
	require.NoError(t, err)
	require.JSONEq(t, string(sent), string(stored))
	if g.Code != "" {
		byCode, err := s.GrantsByCode(g.Code)
		require.NoError(t, err)
		require.Len(t, byCode, 1, "the grant's code finds it")
		require.Equal(t, g.ID, byCode[0].ID)
	}
	if g.DriverRef != "" {
		byDriver, err := s.GrantsByDriver(g.DriverRef)
		require.NoError(t, err)
		require.Len(t, byDriver, 1, "the grant's driver ref finds it")
		require.Equal(t, g.ID, byDriver[0].ID)
	}
}

// requireEmpty checks that a refused batch wrote nothing: the store is as
// the emptying snapshot left it, at revision rev.
func requireEmpty(t *testing.T, s *Store, rev uint64) {
	got, err := s.Revision()
	require.NoError(t, err)
	require.Equal(t, rev, got, "a refused batch moved the revision")
	keys, err := s.Keys()
	require.NoError(t, err)
	require.Empty(t, keys)
	gs, err := s.Grants()
	require.NoError(t, err)
	require.Empty(t, gs)
}
