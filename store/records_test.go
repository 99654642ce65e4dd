package store

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

func TestKeys(t *testing.T) {
	tests := []struct {
		name    string
		batches []Batch
		wantErr string // substring; "" = all batches apply
		// after the batches
		byFob   map[string]string // lookup uid -> key id ("" = none)
		wantIDs []string          // Keys(), in slot order
	}{
		{
			name:    "put and get, fob normalised on write and lookup",
			batches: []Batch{{Keys: []box.Key{key("k2", 2, "01 00 07 34 e0"), key("k1", 1, "00000000AA")}}},
			byFob:   map[string]string{"01000734E0": "k2", "01:00:07:34:E0": "k2", "01 00 07 34 e0": "k2", "00000000aa": "k1", "0000000000": "", "not a fob": ""},
			wantIDs: []string{"k1", "k2"},
		},
		{
			name: "delete removes the fob entry",
			batches: []Batch{
				{Keys: []box.Key{key("k1", 1, fob(1)), key("k2", 2, fob(2))}},
				{DeleteKeys: []string{"k1", "never-there"}},
			},
			byFob:   map[string]string{fob(1): "", fob(2): "k2"},
			wantIDs: []string{"k2"},
		},
		{
			name: "fob change moves the index",
			batches: []Batch{
				{Keys: []box.Key{key("k1", 1, fob(1))}},
				{Keys: []box.Key{key("k1", 3, fob(9))}},
			},
			byFob:   map[string]string{fob(1): "", fob(9): "k1"},
			wantIDs: []string{"k1"},
		},
		{
			name: "two keys swap fobs in one batch",
			batches: []Batch{
				{Keys: []box.Key{key("k1", 1, fob(1)), key("k2", 2, fob(2))}},
				{Keys: []box.Key{key("k1", 1, fob(2)), key("k2", 2, fob(1))}},
			},
			byFob:   map[string]string{fob(1): "k2", fob(2): "k1"},
			wantIDs: []string{"k1", "k2"},
		},
		{
			name: "fob of a deleted key reused in the same batch",
			batches: []Batch{
				{Keys: []box.Key{key("k1", 1, fob(1))}},
				{DeleteKeys: []string{"k1"}, Keys: []box.Key{key("k5", 1, fob(1))}},
			},
			byFob:   map[string]string{fob(1): "k5"},
			wantIDs: []string{"k5"},
		},
		{
			name: "fob used by another stored key is refused",
			batches: []Batch{
				{Keys: []box.Key{key("k1", 1, fob(1))}},
				{Keys: []box.Key{key("k2", 2, "00 00 00 00 01")}},
			},
			wantErr: `keys[0] (id "k2"): invalid record: fob 0000000001 is key "k1"'s`,
		},
		{
			name:    "fob used twice in one batch is refused",
			batches: []Batch{{Keys: []box.Key{key("k1", 1, fob(1)), key("k2", 2, fob(1))}}},
			wantErr: `keys[1] (id "k2"): invalid record: fob 0000000001 is also keys[0] (id "k1")`,
		},
		{
			name:    "slot outside the box",
			batches: []Batch{{Keys: []box.Key{key("k1", 13, fob(1))}}},
			wantErr: `keys[0] (id "k1"): invalid record: key k1: slot 13 is not in 1..12`,
		},
		{
			name:    "duplicate id",
			batches: []Batch{{Keys: []box.Key{key("k1", 1, fob(1)), key("k1", 2, fob(2))}}},
			wantErr: `keys[1] (id "k1"): invalid record: duplicate id, also keys[0]`,
		},
		{
			name:    "put and delete the same key",
			batches: []Batch{{Keys: []box.Key{key("k1", 1, fob(1))}, DeleteKeys: []string{"k1"}}},
			wantErr: `delete_keys[0] (id "k1")`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			var err error
			for _, b := range tt.batches {
				rev, rerr := s.Revision()
				require.NoError(t, rerr)
				b.FromRevision, b.ToRevision = rev, rev+1
				if _, err = s.Apply(b); err != nil {
					break
				}
			}
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			for uid, want := range tt.byFob {
				k, ok, err := s.KeyByFob(uid)
				require.NoError(t, err)
				require.Equal(t, want != "", ok, "fob %q", uid)
				require.Equal(t, want, k.ID, "fob %q", uid)
				if ok {
					byID, ok, err := s.KeyByID(want)
					require.NoError(t, err)
					require.True(t, ok)
					require.Equal(t, byID, k)
					norm, _ := box.NormalizeFobUID(uid)
					require.Equal(t, norm, k.FobUID, "stored normalised")
				}
			}
			keys, err := s.Keys()
			require.NoError(t, err)
			ids := make([]string, 0, len(keys))
			for _, k := range keys {
				ids = append(ids, k.ID)
			}
			require.Equal(t, tt.wantIDs, ids)
		})
	}
}

func TestGrantsByCode(t *testing.T) {
	day := 24 * time.Hour
	ended := booking("g-old", "123456", "k1")
	ended.From, ended.Until = t0.Add(-3*day), t0.Add(-2*day)
	revoked := booking("g-revoked", "123456", "k1")
	revoked.Revoked = true
	current := booking("g-now", "123456", "k1")
	current.From, current.Until = t0.Add(-time.Hour), t0.Add(time.Hour)
	other := booking("g-other", "654321", "k2")
	driver := driverCode("d-1", "contact-7", "9999")

	s, _ := newStore(t)
	mustApply(t, s, Batch{Grants: []box.GrantPut{ended, revoked, current, other, driver}})

	tests := []struct {
		code string
		want []string
	}{
		{"123456", []string{"g-now", "g-old", "g-revoked"}},
		{"654321", []string{"g-other"}},
		{"9999", []string{"d-1"}},
		{"000000", nil},
		{"12345", nil},   // a prefix of a code is not the code
		{"1234567", nil}, // nor is a longer one
		{"12ab", nil},    // not a code at all
		{"", nil},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			gs, err := s.GrantsByCode(tt.code)
			require.NoError(t, err)
			if tt.want == nil {
				require.Empty(t, gs)
				return
			}
			require.Equal(t, tt.want, grantIDs(gs))
		})
	}

	t.Run("code change drops the old index entry", func(t *testing.T) {
		moved := other
		moved.Code = "777777"
		mustApply(t, s, Batch{Grants: []box.GrantPut{moved}})
		gs, err := s.GrantsByCode("654321")
		require.NoError(t, err)
		require.Empty(t, gs)
		gs, err = s.GrantsByCode("777777")
		require.NoError(t, err)
		require.Equal(t, []string{"g-other"}, grantIDs(gs))
	})
	t.Run("put without code keeps the code and updates the record", func(t *testing.T) {
		changed := other
		changed.Code = ""
		changed.KeyIDs = []string{"k2", "k3"}
		changed.Until = t0.Add(day)
		mustApply(t, s, Batch{Grants: []box.GrantPut{changed}})
		gs, err := s.GrantsByCode("777777")
		require.NoError(t, err)
		require.Len(t, gs, 1)
		require.Equal(t, []string{"k2", "k3"}, gs[0].KeyIDs)
		require.Equal(t, t0.Add(day), gs[0].Until)
	})
	t.Run("delete drops the index entries", func(t *testing.T) {
		mustApply(t, s, Batch{DeleteGrants: []string{"g-other", "d-1"}})
		gs, err := s.GrantsByCode("777777")
		require.NoError(t, err)
		require.Empty(t, gs)
		gs, err = s.GrantsByDriver("contact-7")
		require.NoError(t, err)
		require.Empty(t, gs)
	})
	t.Run("Grants lists all in id order", func(t *testing.T) {
		gs, err := s.Grants()
		require.NoError(t, err)
		require.Equal(t, []string{"g-now", "g-old", "g-revoked"}, grantIDs(gs))
	})
}

func TestGrantsByDriver(t *testing.T) {
	s, _ := newStore(t)
	b1 := booking("b-1", "111111", "k1")
	b1.DriverRef = "12"
	b2 := booking("b-2", "222222", "k2")
	b2.DriverRef = "1"
	mustApply(t, s, Batch{Grants: []box.GrantPut{driverCode("d-1", "1", "1111"), driverCode("d-12", "12", "1212"), b1, b2}})

	tests := []struct {
		ref  string
		want []string
	}{
		{"1", []string{"b-2", "d-1"}},
		{"12", []string{"b-1", "d-12"}},
		{"123", nil},
		{"", nil},
		{"1\x00", nil},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			gs, err := s.GrantsByDriver(tt.ref)
			require.NoError(t, err)
			if tt.want == nil {
				require.Empty(t, gs)
				return
			}
			require.Equal(t, tt.want, grantIDs(gs))
		})
	}

	t.Run("driver ref change moves the index", func(t *testing.T) {
		b1.DriverRef = "99"
		b1.Code = ""
		mustApply(t, s, Batch{Grants: []box.GrantPut{b1}})
		gs, err := s.GrantsByDriver("12")
		require.NoError(t, err)
		require.Equal(t, []string{"d-12"}, grantIDs(gs))
		gs, err = s.GrantsByDriver("99")
		require.NoError(t, err)
		require.Equal(t, []string{"b-1"}, grantIDs(gs))
	})
}

func TestCodeUniqueness(t *testing.T) {
	day := 24 * time.Hour
	withWindow := func(g box.GrantPut, from, until time.Time) box.GrantPut {
		g.From, g.Until = from, until
		return g
	}
	revoke := func(g box.GrantPut) box.GrantPut { g.Revoked = true; g.Code = ""; return g }
	usedUp := booking("g-a", "482913", "k1")
	usedUp.MaxUses, usedUp.Uses = 1, 1

	tests := []struct {
		name    string
		first   []box.GrantPut
		second  []box.GrantPut
		wantErr bool
	}{
		{"active code refused", []box.GrantPut{booking("g-a", "482913", "k1")}, []box.GrantPut{booking("g-b", "482913", "k2")}, true},
		{"future grant's code refused", []box.GrantPut{withWindow(booking("g-a", "482913", "k1"), t0.Add(day), t0.Add(2*day))}, []box.GrantPut{booking("g-b", "482913", "k2")}, true},
		{"driver code and booking share the space", []box.GrantPut{driverCode("g-a", "7", "482913")}, []box.GrantPut{booking("g-b", "482913", "k2")}, true},
		{"two in one batch refused", nil, []box.GrantPut{booking("g-a", "482913", "k1"), booking("g-b", "482913", "k2")}, true},
		{"code of an ended grant reused", []box.GrantPut{withWindow(booking("g-a", "482913", "k1"), t0.Add(-2*day), t0.Add(-day))}, []box.GrantPut{booking("g-b", "482913", "k2")}, false},
		{"code of a revoked grant reused", []box.GrantPut{revoke(booking("g-a", "482913", "k1"))}, []box.GrantPut{booking("g-b", "482913", "k2")}, false},
		{"code of a used-up grant reused", []box.GrantPut{usedUp}, []box.GrantPut{booking("g-b", "482913", "k2")}, false},
		{"old one revoked in the same batch", []box.GrantPut{booking("g-a", "482913", "k1")}, []box.GrantPut{revoke(booking("g-a", "", "k1")), booking("g-b", "482913", "k2")}, false},
		{"an ended grant may take a live grant's code", []box.GrantPut{booking("g-a", "482913", "k1")}, []box.GrantPut{withWindow(booking("g-b", "482913", "k2"), t0.Add(-2*day), t0.Add(-day))}, false},
		{"re-putting the same grant is fine", []box.GrantPut{booking("g-a", "482913", "k1")}, []box.GrantPut{booking("g-a", "482913", "k1", "k2")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			if tt.first != nil {
				mustApply(t, s, Batch{Grants: tt.first})
			}
			before, err := s.Grants()
			require.NoError(t, err)
			rev, err := s.Revision()
			require.NoError(t, err)
			_, err = s.Apply(Batch{FromRevision: rev, ToRevision: rev + 1, Grants: tt.second, Events: []box.Event{{Type: box.EventRecordsApplied}}})
			if !tt.wantErr {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, box.ErrCodeInUse)
			require.ErrorContains(t, err, `"g-a"`)
			require.ErrorContains(t, err, `"g-b"`)
			require.NotContains(t, err.Error(), "482913", "an error never shows a code")
			after, err := s.Grants()
			require.NoError(t, err)
			require.Equal(t, before, after, "nothing written")
			seq, err := s.LastSeq()
			require.NoError(t, err)
			require.Zero(t, seq, "no event written")
		})
	}

	t.Run("un-revoking into a clash", func(t *testing.T) {
		s, _ := newStore(t)
		a := booking("g-a", "482913", "k1")
		a.Revoked = true
		mustApply(t, s, Batch{Grants: []box.GrantPut{a, booking("g-b", "482913", "k2")}})
		a.Revoked = false
		_, err := s.Apply(Batch{FromRevision: 1, ToRevision: 2, Grants: []box.GrantPut{a}})
		require.ErrorIs(t, err, box.ErrCodeInUse)
	})
}

func TestRevision(t *testing.T) {
	tests := []struct {
		name    string
		have    uint64 // revision before
		batch   Batch
		want    uint64 // revision after ("" error)
		wantErr string
	}{
		{name: "delta in order", have: 3, batch: Batch{FromRevision: 3, ToRevision: 4}, want: 4},
		{name: "delta may skip revisions", have: 3, batch: Batch{FromRevision: 3, ToRevision: 9}, want: 9},
		{name: "duplicate delta", have: 3, batch: Batch{FromRevision: 2, ToRevision: 3}, wantErr: "revision mismatch: have revision 3, batch is from 2 to 3"},
		{name: "gap", have: 3, batch: Batch{FromRevision: 5, ToRevision: 6}, wantErr: "revision mismatch: have revision 3, batch is from 5 to 6"},
		{name: "backwards batch", have: 3, batch: Batch{FromRevision: 3, ToRevision: 3}, wantErr: "does not go forward"},
		{name: "import", have: 3, batch: Batch{}, want: 4},
		{name: "snapshot from anywhere", have: 3, batch: Batch{Snapshot: true, FromRevision: 0, ToRevision: 40}, want: 40},
		{name: "snapshot at the same revision", have: 3, batch: Batch{Snapshot: true, ToRevision: 3, FromRevision: 0}, want: 3},
		{name: "late old snapshot", have: 3, batch: Batch{Snapshot: true, FromRevision: 1, ToRevision: 2}, wantErr: "have revision 3, snapshot is older (revision 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			if tt.have > 0 {
				_, err := s.Apply(Batch{FromRevision: 0, ToRevision: tt.have})
				require.NoError(t, err)
			}
			_, err := s.Apply(tt.batch)
			rev, rerr := s.Revision()
			require.NoError(t, rerr)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Equal(t, tt.have, rev)
				if strings.Contains(tt.wantErr, "mismatch") || strings.Contains(tt.wantErr, "older") {
					require.ErrorIs(t, err, ErrRevisionMismatch)
					var rm *RevisionMismatchError
					require.True(t, errors.As(err, &rm))
					require.Equal(t, tt.have, rm.Have)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, rev)
		})
	}
}

func TestSnapshot(t *testing.T) {
	s, _ := newStore(t)
	limited := booking("g-keep", "111111", "k1")
	limited.MaxUses = 5
	mustApply(t, s, Batch{
		Keys:   []box.Key{key("k1", 1, fob(1)), key("k2", 2, fob(2))},
		Grants: []box.GrantPut{limited, booking("g-drop", "222222", "k2"), driverCode("d-drop", "7", "3333")},
	})
	_, err := s.Commit(box.Change{UseGrants: []string{"g-keep", "g-keep"}})
	require.NoError(t, err)

	// The cloud's copy: g-keep without a code and with its own (stale) Uses,
	// k1 on another fob, one new key and grant.
	cloud := limited
	cloud.Code, cloud.Uses, cloud.KeyIDs = "", 0, []string{"k1", "k3"}
	_, err = s.Apply(Batch{
		Snapshot: true, FromRevision: 0, ToRevision: 10,
		Keys:   []box.Key{key("k1", 1, fob(11)), key("k3", 3, fob(2))},
		Grants: []box.GrantPut{cloud, booking("g-new", "222222", "k3")},
	})
	require.NoError(t, err)

	keys, err := s.Keys()
	require.NoError(t, err)
	require.Equal(t, []box.Key{key("k1", 1, fob(11)), key("k3", 3, fob(2))}, keys)
	k, ok, err := s.KeyByFob(fob(2))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "k3", k.ID, "fob of a dropped key now names the new one")
	_, ok, err = s.KeyByFob(fob(1))
	require.NoError(t, err)
	require.False(t, ok)

	gs, err := s.Grants()
	require.NoError(t, err)
	require.Equal(t, []string{"g-keep", "g-new"}, grantIDs(gs))
	require.Equal(t, 2, gs[0].Uses, "local uses kept")
	require.Equal(t, []string{"k1", "k3"}, gs[0].KeyIDs)

	byCode, err := s.GrantsByCode("111111")
	require.NoError(t, err)
	require.Equal(t, []string{"g-keep"}, grantIDs(byCode), "code kept")
	byCode, err = s.GrantsByCode("222222")
	require.NoError(t, err)
	require.Equal(t, []string{"g-new"}, grantIDs(byCode), "dropped grant's index entry gone")
	byDriver, err := s.GrantsByDriver("7")
	require.NoError(t, err)
	require.Empty(t, byDriver)
	rev, err := s.Revision()
	require.NoError(t, err)
	require.Equal(t, uint64(10), rev)
}

func TestApplyValidation(t *testing.T) {
	noCode := booking("g-1", "", "k1")
	revokedNoCode := noCode
	revokedNoCode.Revoked = true
	tests := []struct {
		name    string
		batch   Batch
		wantErr string
	}{
		{"new grant without code", Batch{Grants: []box.GrantPut{noCode}}, `grants[0] (id "g-1"): invalid record: a new booking grant needs a code`},
		{"new revoked grant without code is fine", Batch{Grants: []box.GrantPut{revokedNoCode}}, ""},
		{"bad code", Batch{Grants: []box.GrantPut{booking("g-1", "12a4", "k1")}}, `grants[0] (id "g-1"): grant g-1: invalid record: code must be digits only`},
		{"booking without keys", Batch{Grants: []box.GrantPut{booking("g-1", "1234")}}, `a booking needs at least one key`},
		{"NUL in driver ref", Batch{Grants: []box.GrantPut{driverCode("d-1", "a\x00b", "1234")}}, `driver_ref holds a NUL byte`},
		{"duplicate grant", Batch{Grants: []box.GrantPut{booking("g-1", "1234", "k1"), booking("g-1", "5678", "k1")}}, `grants[1] (id "g-1"): invalid record: duplicate id`},
		{"bad delete id", Batch{DeleteGrants: []string{"no spaces"}}, `delete_grants[0] (id "no spaces")`},
		{"event without type", Batch{Events: []box.Event{{}}}, `events[0]: no type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			_, err := s.Apply(tt.batch)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			rev, rerr := s.Revision()
			require.NoError(t, rerr)
			require.Zero(t, rev)
		})
	}
}

func TestApplyAllOrNothing(t *testing.T) {
	s, _ := newStore(t)
	mustApply(t, s, Batch{Keys: []box.Key{key("k1", 1, fob(1))}, Grants: []box.GrantPut{booking("g-1", "111111", "k1")}})
	// Everything in this batch is fine but its last grant, whose code
	// clashes: the key, the new grant, the delete and the event must not land.
	_, err := s.Apply(Batch{
		FromRevision: 1, ToRevision: 2,
		Keys:       []box.Key{key("k2", 2, fob(2))},
		DeleteKeys: []string{"k1"},
		Grants:     []box.GrantPut{booking("g-2", "222222", "k2"), booking("g-3", "111111", "k2")},
		Events:     []box.Event{{Type: box.EventRecordsApplied}},
	})
	require.ErrorIs(t, err, box.ErrCodeInUse)
	keys, err := s.Keys()
	require.NoError(t, err)
	require.Equal(t, []box.Key{key("k1", 1, fob(1))}, keys)
	gs, err := s.Grants()
	require.NoError(t, err)
	require.Equal(t, []string{"g-1"}, grantIDs(gs))
	rev, err := s.Revision()
	require.NoError(t, err)
	require.Equal(t, uint64(1), rev)
	seq, err := s.LastSeq()
	require.NoError(t, err)
	require.Zero(t, seq)
}

func TestApplyEvents(t *testing.T) {
	s, clock := newStore(t)
	ev := mustApply(t, s, Batch{Events: []box.Event{{Type: box.EventRecordsApplied, Detail: "2 keys"}}})
	require.Len(t, ev, 1)
	require.Equal(t, uint64(1), ev[0].Seq)
	require.Equal(t, clock.Now(), ev[0].Time, "zero time stamped with the store clock")
	got, err := s.Events(0, 0)
	require.NoError(t, err)
	require.Equal(t, ev, got)
}

func TestCodeNotInClear(t *testing.T) {
	s, _ := newStore(t)
	// Codes unlikely to appear by chance in a 32 KiB file.
	codes := []string{"73914682", "5550123498", "40417"}
	mustApply(t, s, Batch{Grants: []box.GrantPut{
		booking("g-1", codes[0], "k1"), booking("g-2", codes[1], "k2"), driverCode("d-1", "7", codes[2]),
	}})
	moved := booking("g-1", "86420975", "k1")
	mustApply(t, s, Batch{Grants: []box.GrantPut{moved}})
	codes = append(codes, moved.Code)
	require.NoError(t, s.Close())

	raw, err := os.ReadFile(s.Path())
	require.NoError(t, err)
	for _, c := range codes {
		require.NotContains(t, string(raw), c, "code in clear in the file")
	}
	// The lookups still work after reopening: the secret is in the file.
	s2, err := Open(s.Path(), Options{})
	require.NoError(t, err)
	defer s2.Close()
	gs, err := s2.GrantsByCode("86420975")
	require.NoError(t, err)
	require.Equal(t, []string{"g-1"}, grantIDs(gs))
}
