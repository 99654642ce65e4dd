package cloud_test

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

func TestDeltaSince(t *testing.T) {
	e := newEnv(t, nil)
	c := e.c
	r := e.replica(t)

	rev, err := c.PutKey("box-a", key(1))
	require.NoError(t, err)
	require.EqualValues(t, 1, rev)
	r.apply(e.answer(t, 0)) // 0: a snapshot
	r.requireSame()
	require.Equal(t, map[string]string{}, r.codes)

	_, err = c.PutGrant("box-a", booking("g1", "k1"), "123456")
	require.NoError(t, err)
	_, err = c.PutKey("box-a", key(2))
	require.NoError(t, err)
	rev, err = c.PutGrant("box-a", booking("g2", "k1", "k2"), "654321")
	require.NoError(t, err)
	require.EqualValues(t, 4, rev)

	msgs := e.answer(t, 1)
	require.Len(t, msgs, 1)
	b, codes := e.open(t, msgs[0])
	require.False(t, b.Snapshot)
	require.EqualValues(t, 1, b.From)
	require.EqualValues(t, 4, b.To)
	require.Len(t, b.Keys, 1)
	require.Len(t, b.Grants, 2)
	require.Equal(t, map[string]string{"g1": "123456", "g2": "654321"}, codes)
	r.apply(msgs)
	r.requireSame()

	t.Run("current box gets nothing", func(t *testing.T) {
		require.Empty(t, e.answer(t, 4))
	})
	t.Run("putting a record as it is makes no revision", func(t *testing.T) {
		rev, err := c.PutKey("box-a", key(2))
		require.NoError(t, err)
		require.EqualValues(t, 4, rev)
		rev, err = c.PutGrant("box-a", booking("g2", "k1", "k2"), "654321")
		require.NoError(t, err)
		require.EqualValues(t, 4, rev)
		rev, err = c.PutGrant("box-a", booking("g2", "k1", "k2"), "")
		require.NoError(t, err)
		require.EqualValues(t, 4, rev)
	})
	t.Run("a new code reaches the box, an unchanged one stays", func(t *testing.T) {
		g := booking("g2", "k2")
		_, err := c.PutGrant("box-a", g, "")
		require.NoError(t, err)
		_, err = c.PutGrant("box-a", booking("g1", "k1"), "111999")
		require.NoError(t, err)
		r.apply(e.answer(t, 4))
		r.requireSame()
		require.Equal(t, map[string]string{"g1": "111999", "g2": "654321"}, r.codes)
	})
	t.Run("every delta of a long run applies in order", func(t *testing.T) {
		e := newEnv(t, func(o *cloud.Options) { o.ChunkRecords = 3 })
		r := e.replica(t)
		_, err := e.c.PutKey("box-a", key(1))
		require.NoError(t, err)
		r.apply(e.answer(t, 0))
		for i := range 10 {
			_, err := e.c.PutGrant("box-a", booking(fmt.Sprintf("g%d", i), "k1"), fmt.Sprintf("%06d", 100000+i))
			require.NoError(t, err)
		}
		msgs := e.answer(t, 1)
		require.Len(t, msgs, 4) // 10 revisions of one grant, 3 a message
		r.apply(msgs)
		r.requireSame()
		require.Len(t, r.codes, 10)
	})
}

func TestSnapshotWhen(t *testing.T) {
	for _, tc := range []struct {
		name     string
		have     uint64
		wantFrom uint64
		wantTo   uint64
	}{
		{"have 0", 0, 0, 10},
		{"have older than the log", 5, 5, 10},
		{"have ahead of the cloud", 50, 50, 51},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *cloud.Options) { o.LogLimit = 4 })
			_, err := e.c.PutKey("box-a", key(1))
			require.NoError(t, err)
			for i := 2; i <= 10; i++ {
				_, err = e.c.PutGrant("box-a", booking(fmt.Sprintf("g%d", i), "k1"), fmt.Sprintf("%06d", i))
				require.NoError(t, err)
			}
			msgs := e.answer(t, tc.have)
			require.Len(t, msgs, 1)
			b, codes := e.open(t, msgs[0])
			require.True(t, b.Snapshot)
			require.Equal(t, 1, b.Chunk)
			require.Equal(t, 1, b.Chunks)
			require.Equal(t, tc.wantFrom, b.From)
			require.Equal(t, tc.wantTo, b.To)
			require.Len(t, b.Keys, 1)
			require.Len(t, b.Grants, 9)
			require.Len(t, codes, 9)

			r := e.replica(t)
			r.rev = tc.have
			r.apply(msgs)
			r.requireSame()
		})
	}
	t.Run("have within the log gets a delta", func(t *testing.T) {
		e := newEnv(t, func(o *cloud.Options) { o.LogLimit = 4 })
		for i := 1; i <= 10; i++ {
			_, err := e.c.PutKey("box-a", key(i))
			require.NoError(t, err)
		}
		b, _ := e.open(t, e.answer(t, 6)[0])
		require.False(t, b.Snapshot)
		require.EqualValues(t, 6, b.From)
		require.Len(t, b.Keys, 4)
		b, _ = e.open(t, e.answer(t, 5)[0])
		require.True(t, b.Snapshot)
	})
	t.Run("a revision too big for a delta", func(t *testing.T) {
		e := newEnv(t, func(o *cloud.Options) { o.ChunkRecords = 5 })
		_, err := e.c.PutKey("box-a", key(1))
		require.NoError(t, err)
		var keys []box.Key
		for i := 2; i <= 12; i++ {
			keys = append(keys, key(i))
		}
		_, err = e.c.PutBatch("box-a", keys, nil)
		require.NoError(t, err)
		msgs := e.answer(t, 1)
		require.Len(t, msgs, 3) // 12 keys, 5 a chunk
		r := e.replica(t)
		r.rev = 1
		r.apply(msgs)
		r.requireSame()
	})
	t.Run("an empty box", func(t *testing.T) {
		e := newEnv(t, nil)
		require.Empty(t, e.answer(t, 0))
		_, err := e.c.PutKey("box-a", key(1))
		require.NoError(t, err)
		_, err = e.c.DeleteKey("box-a", "k1")
		require.NoError(t, err)
		msgs := e.answer(t, 0)
		require.Len(t, msgs, 1)
		b, _ := e.open(t, msgs[0])
		require.True(t, b.Snapshot)
		require.Empty(t, b.Keys)
		require.EqualValues(t, 2, b.To)
	})
}

// TestSnapshot10k is the size: 10,000 grants reach a box in
// chunks under MaxMessageSize, every one verified, every code opened.
func TestSnapshot10k(t *testing.T) {
	for _, chunk := range []int{0, 1_000_000} { // default, and only the size bound
		t.Run(fmt.Sprintf("chunk records %d", chunk), func(t *testing.T) {
			e := newEnv(t, func(o *cloud.Options) { o.ChunkRecords = chunk })
			keys, grants := bigSet(10_000)
			_, err := e.c.PutBatch("box-a", keys, grants)
			require.NoError(t, err)
			msgs := e.answer(t, 0)
			if chunk == 0 {
				require.Len(t, msgs, 6) // 100 keys + 10,000 grants, 2,000 a chunk
			} else {
				require.Greater(t, len(msgs), 1)
			}
			r := e.replica(t)
			r.apply(msgs)
			r.requireSame()
			require.Len(t, r.codes, 10_000)
			for _, g := range grants[:50] {
				require.Equal(t, g.Code, r.codes[g.ID])
			}
			for _, m := range msgs {
				require.Less(t, len(m), wire.MaxMessageSize)
			}
		})
	}
}

func bigSet(n int) ([]box.Key, []box.GrantPut) {
	keys := make([]box.Key, 100)
	for i := range keys {
		keys[i] = key(i + 1)
	}
	grants := make([]box.GrantPut, n)
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range grants {
		g := booking(fmt.Sprintf("booking-%06d", i), keys[i%100].ID)
		g.From, g.Until = from.Add(time.Duration(i)*time.Hour), from.Add(time.Duration(i+8)*time.Hour)
		g.DriverRef = fmt.Sprintf("contact-%d", i%300)
		grants[i] = box.GrantPut{Grant: g, Code: fmt.Sprintf("%08d", 10_000_000+i)}
	}
	return keys, grants
}

func TestRevokeDelete(t *testing.T) {
	e := newEnv(t, nil)
	c := e.c
	r := e.replica(t)
	_, err := c.PutBatch("box-a", []box.Key{key(1), key(2)}, []box.GrantPut{
		{Grant: booking("g1", "k1"), Code: "123456"}, {Grant: booking("g2", "k2"), Code: "234567"}})
	require.NoError(t, err)
	r.apply(e.answer(t, 0))
	r.requireSame()

	rev, err := c.RevokeGrant("box-a", "g1")
	require.NoError(t, err)
	require.EqualValues(t, 2, rev)
	msgs := e.answer(t, 1)
	b, codes := e.open(t, msgs[0])
	require.Len(t, b.Grants, 1)
	require.True(t, b.Grants[0].Revoked)
	require.Equal(t, "123456", codes["g1"])
	r.apply(msgs)

	rev, err = c.RevokeGrant("box-a", "g1") // again: no change
	require.NoError(t, err)
	require.EqualValues(t, 2, rev)

	_, err = c.DeleteGrant("box-a", "g2")
	require.NoError(t, err)
	_, err = c.DeleteKey("box-a", "k2")
	require.NoError(t, err)
	msgs = e.answer(t, 2)
	b, _ = e.open(t, msgs[0])
	require.Equal(t, []string{"g2"}, b.DeleteGrants)
	require.Equal(t, []string{"k2"}, b.DeleteKeys)
	require.Empty(t, b.Grants)
	r.apply(msgs)
	r.requireSame()

	rev, err = c.DeleteGrant("box-a", "g2") // gone already: no change
	require.NoError(t, err)
	require.EqualValues(t, 4, rev)
	_, err = c.RevokeGrant("box-a", "nope")
	require.ErrorIs(t, err, cloud.ErrNotFound)

	// A fob freed by a deleted key may go to a new key.
	k := key(3)
	k.FobUID = key(2).FobUID
	_, err = c.PutKey("box-a", k)
	require.NoError(t, err)
}

func TestCodeUniqueness(t *testing.T) {
	e := newEnv(t, nil)
	c := e.c
	now := e.clock.Now()
	_, err := c.PutKey("box-a", key(1))
	require.NoError(t, err)
	g1 := booking("g1", "k1")
	g1.Until = now.Add(time.Hour)
	_, err = c.PutGrant("box-a", g1, "424242")
	require.NoError(t, err)

	_, err = c.PutGrant("box-a", booking("g2", "k1"), "424242")
	require.ErrorIs(t, err, box.ErrCodeInUse)
	require.Contains(t, err.Error(), "g1")
	require.Contains(t, err.Error(), "g2")
	require.NotContains(t, err.Error(), "424242")

	// Within one batch too, and nothing of the batch is applied.
	_, err = c.PutBatch("box-a", []box.Key{key(2)}, []box.GrantPut{
		{Grant: booking("g3", "k1"), Code: "777777"}, {Grant: booking("g4", "k1"), Code: "777777"}})
	require.ErrorIs(t, err, box.ErrCodeInUse)
	keys, grants, err := c.Records("box-a")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Len(t, grants, 1)

	// Another box may have the same code.
	require.NoError(t, c.RegisterBox("box-b", e.boxKey.PublicKey().Bytes()))
	_, err = c.PutKey("box-b", key(1))
	require.NoError(t, err)
	_, err = c.PutGrant("box-b", booking("g1", "k1"), "424242")
	require.NoError(t, err)

	// Once g1 ends, its code is free again.
	e.clock.Add(time.Hour)
	_, err = c.PutGrant("box-a", booking("g2", "k1"), "424242")
	require.NoError(t, err)
	// And g1 cannot come back to life with it.
	g1.Until = now.Add(48 * time.Hour)
	_, err = c.PutGrant("box-a", g1, "")
	require.ErrorIs(t, err, box.ErrCodeInUse)
	// A revoked grant frees its code.
	_, err = c.RevokeGrant("box-a", "g2")
	require.NoError(t, err)
	_, err = c.PutGrant("box-a", g1, "")
	require.NoError(t, err)
}

func TestRecordValidation(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.c.PutKey("box-a", key(1))
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"bad key id", func() error { k := key(2); k.ID = "a b"; _, err := e.c.PutKey("box-a", k); return err }, box.ErrInvalidRecord},
		{"bad fob", func() error { k := key(2); k.FobUID = "xyz"; _, err := e.c.PutKey("box-a", k); return err }, box.ErrInvalidRecord},
		{"fob of another key", func() error { k := key(2); k.FobUID = key(1).FobUID; _, err := e.c.PutKey("box-a", k); return err }, box.ErrInvalidRecord},
		{"slot 0", func() error { k := key(2); k.Slot = 0; _, err := e.c.PutKey("box-a", k); return err }, box.ErrInvalidRecord},
		{"huge key", func() error {
			k := key(2)
			k.Name = string(bytes.Repeat([]byte("x"), cloud.MaxRecordSize))
			_, err := e.c.PutKey("box-a", k)
			return err
		}, box.ErrInvalidRecord},
		{"code with letters", func() error { _, err := e.c.PutGrant("box-a", booking("g", "k1"), "12ab56"); return err }, box.ErrInvalidRecord},
		{"code too short", func() error { _, err := e.c.PutGrant("box-a", booking("g", "k1"), "123"); return err }, box.ErrInvalidRecord},
		{"new grant without code", func() error { _, err := e.c.PutGrant("box-a", booking("g", "k1"), ""); return err }, cloud.ErrNoCode},
		{"unknown key", func() error { _, err := e.c.PutGrant("box-a", booking("g", "k9"), "123456"); return err }, cloud.ErrNotFound},
		{"booking without keys", func() error { _, err := e.c.PutGrant("box-a", booking("g"), "123456"); return err }, box.ErrInvalidRecord},
		{"long driver ref", func() error {
			g := box.Grant{ID: "d", Kind: box.KindDriverCode, DriverRef: string(bytes.Repeat([]byte("r"), 300))}
			_, err := e.c.PutGrant("box-a", g, "123456")
			return err
		}, box.ErrInvalidRecord},
		{"unknown box", func() error { _, err := e.c.PutKey("box-z", key(2)); return err }, cloud.ErrUnknownBox},
		{"bad box id", func() error { return e.c.RegisterBox("a/b", e.boxKey.PublicKey().Bytes()) }, box.ErrInvalidRecord},
		{"bad box key", func() error { return e.c.RegisterBox("box-c", []byte{1, 2, 3}) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
			require.NotContains(t, err.Error(), "123456")
		})
	}
	rev, err := e.c.Revision("box-a")
	require.NoError(t, err)
	require.EqualValues(t, 1, rev, "nothing refused made a revision")
	// A revoked grant needs no code.
	g := booking("r", "k1")
	g.Revoked = true
	_, err = e.c.PutGrant("box-a", g, "")
	require.NoError(t, err)
}

func TestCodesAtRest(t *testing.T) {
	key32 := bytes.Repeat([]byte{7}, 32)
	e := newEnv(t, func(o *cloud.Options) { o.CodeKey = key32 })
	_, err := e.c.PutKey("box-a", key(1))
	require.NoError(t, err)
	const code = "9081726354"
	_, err = e.c.PutGrant("box-a", booking("g1", "k1"), code)
	require.NoError(t, err)
	require.NoError(t, e.c.Close())
	raw := e.store.dump(t)
	require.Contains(t, string(raw), "g1", "the dump holds the grant")
	require.False(t, bytes.Contains(raw, []byte(code)), "a code in clear in the store")

	_, err = cloud.Open(e.store.opts(cloud.Options{Signer: wire.Signer{Key: make([]byte, 64)}, CodeKey: bytes.Repeat([]byte{8}, 32)}))
	require.ErrorIs(t, err, cloud.ErrCodeKey)
	_, err = cloud.Open(e.store.opts(cloud.Options{Signer: wire.Signer{Key: make([]byte, 64)}}))
	require.ErrorIs(t, err, cloud.ErrCodeKey)

	// With the right key, the code comes back in a snapshot after a restart.
	c2, err := cloud.Open(e.store.opts(cloud.Options{Signer: wire.Signer{KeyID: "k1", Key: e.signerKey(t)}, CodeKey: key32}))
	require.NoError(t, err)
	defer c2.Close()
	e.c = c2
	_, codes := e.open(t, e.answer(t, 0)[0])
	require.Equal(t, code, codes["g1"])
}

func TestStatusAndCommands(t *testing.T) {
	e := newEnv(t, nil)
	c := e.c
	_, ok, err := c.Status("box-a")
	require.NoError(t, err)
	require.False(t, ok)
	st := wire.Status{V: 1, Box: "box-a", Online: true, Revision: 3, OutboxDepth: 2, LastSeq: 9, ClockTrusted: true}
	require.NoError(t, c.SetStatus("box-a", st))
	got, ok, err := c.Status("box-a")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, st, got)
	require.ErrorIs(t, c.SetStatus("box-a", wire.Status{V: 1, Box: "box-b"}), wire.ErrWrongBox)

	msg, cmd, err := c.Command("box-a", wire.CommandReleaseSlot, 4, "tech@depot", "lost PIN", 10*time.Minute)
	require.NoError(t, err)
	var opened wire.Command
	require.NoError(t, e.verifier.Open(msg, wire.KindCommand, "box-a", &opened))
	require.Equal(t, cmd, opened)
	require.Equal(t, e.clock.Now().Add(10*time.Minute), opened.Expires)
	require.Equal(t, 4, opened.Slot)
	require.Len(t, opened.ID, 32)
	require.ErrorIs(t, e.verifier.Open(msg, wire.KindCommand, "box-b", &opened), wire.ErrWrongBox)

	_, ok, err = c.CommandResult("box-a", cmd.ID)
	require.NoError(t, err)
	require.False(t, ok)
	res := wire.CommandResult{V: 1, Box: "box-a", ID: cmd.ID, OK: true, At: e.clock.Now()}
	require.NoError(t, c.SetCommandResult("box-a", res))
	gotRes, ok, err := c.CommandResult("box-a", cmd.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, res, gotRes)
	require.ErrorIs(t, c.SetCommandResult("box-a", wire.CommandResult{V: 1, Box: "box-a", ID: "forged"}), cloud.ErrNotFound)

	for _, tc := range []struct {
		name, kind string
		slot       int
		by, reason string
		ttl        time.Duration
	}{
		{"unknown kind", "explode", 1, "a", "b", time.Minute},
		{"no slot", wire.CommandReleaseSlot, 0, "a", "b", time.Minute},
		{"nobody asked", wire.CommandReleaseSlot, 1, "", "b", time.Minute},
		{"restore without a reason", wire.CommandRestoreKeypad, 0, "ops", "", time.Minute},
		{"restore by nobody", wire.CommandRestoreKeypad, 0, "", "guessing stopped", time.Minute},
		{"restore of a slot", wire.CommandRestoreKeypad, 2, "ops", "guessing stopped", time.Minute},
		{"restore forever", wire.CommandRestoreKeypad, 0, "ops", "guessing stopped", 48 * time.Hour},
		{"a page of reason", wire.CommandRestoreKeypad, 0, "ops", strings.Repeat("r", wire.MaxCommandText+1), time.Minute},
		{"a page of name", wire.CommandReleaseSlot, 1, strings.Repeat("b", wire.MaxCommandText+1), "lost PIN", time.Minute},
		{"no expiry", wire.CommandResync, 0, "a", "b", 0},
		{"forever", wire.CommandResync, 0, "a", "b", 48 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := c.Command("box-a", tc.kind, tc.slot, tc.by, tc.reason, tc.ttl)
			require.ErrorContains(t, err, "cloud: command for box box-a: ")
		})
	}
	_, _, err = c.Command("box-a", wire.CommandResync, 0, "ops", "", time.Minute)
	require.NoError(t, err)
	_, _, err = c.Command("box-a", wire.CommandRestoreKeypad, 0, "", "", time.Minute)
	require.ErrorIs(t, err, wire.ErrMalformed)
	require.ErrorContains(t, err, "restore_keypad needs who asked (by) and why (reason)")
	msg, cmd, err = c.Command("box-a", wire.CommandRestoreKeypad, 0, "ops@depot", strings.Repeat("r", wire.MaxCommandText), time.Minute)
	require.NoError(t, err, "a reason of exactly MaxCommandText bytes")
	var restore wire.Command
	require.NoError(t, e.verifier.Open(msg, wire.KindCommand, "box-a", &restore))
	require.Equal(t, cmd, restore)
	require.Zero(t, restore.Slot)
}

// BenchmarkAnswerSnapshot100k makes every snapshot message (decrypt, seal,
// sign) for a box with 100,000 grants.
func BenchmarkAnswerSnapshot100k(b *testing.B) {
	e := newEnv(b, nil)
	keys, grants := bigSet(100_000)
	_, err := e.c.PutBatch("box-a", keys, grants)
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	var n, size int
	for b.Loop() {
		msgs, err := e.c.Answer(wire.SyncRequest{V: wire.Version, Box: "box-a"})
		if err != nil {
			b.Fatal(err)
		}
		n, size = len(msgs), 0
		for _, m := range msgs {
			size += len(m)
		}
	}
	b.ReportMetric(float64(n), "messages")
	b.ReportMetric(float64(size)/float64(n), "bytes/message")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e9/100_000, "ns/grant")
}

// TestBatchCodeMoves: within one batch a code freed by one grant may be
// taken by the next, a grant put twice keeps its last code, and a code an
// active grant keeps is refused; a snapshot carries exactly the codes that
// resulted. (On PostgreSQL a batch's grants and codes are fetched up front:
// what the batch writes must still be what the later grants see.)
func TestBatchCodeMoves(t *testing.T) {
	e := newEnv(t, nil)
	c := e.c
	_, err := c.PutBatch("box-a", []box.Key{key(1)}, []box.GrantPut{
		{Grant: booking("g1", "k1"), Code: "111111"}, {Grant: booking("g2", "k1"), Code: "222222"}})
	require.NoError(t, err)
	_, err = c.PutBatch("box-a", nil, []box.GrantPut{
		{Grant: booking("g1", "k1"), Code: "333333"}, {Grant: booking("g3", "k1"), Code: "111111"}})
	require.NoError(t, err, "g1 freed 111111 earlier in the batch")
	_, err = c.PutBatch("box-a", nil, []box.GrantPut{{Grant: booking("g4", "k1"), Code: "222222"}})
	require.ErrorIs(t, err, box.ErrCodeInUse)
	require.Contains(t, err.Error(), "g2")
	_, err = c.PutBatch("box-a", nil, []box.GrantPut{
		{Grant: booking("g2", "k1"), Code: "444444"}, {Grant: booking("g2", "k1"), Code: "555555"},
		{Grant: booking("g5", "k1"), Code: "222222"}})
	require.NoError(t, err)
	_, err = c.PutBatch("box-a", nil, []box.GrantPut{{Grant: booking("g6", "k1"), Code: "444444"}})
	require.NoError(t, err, "g2 moved off 444444 within its batch")
	_, err = c.PutBatch("box-a", nil, []box.GrantPut{{Grant: booking("g7", "k1"), Code: "555555"}})
	require.ErrorIs(t, err, box.ErrCodeInUse)
	_, err = c.DeleteGrant("box-a", "g3")
	require.NoError(t, err)
	_, err = c.PutBatch("box-a", nil, []box.GrantPut{{Grant: booking("g8", "k1"), Code: "111111"}})
	require.NoError(t, err, "a deleted grant's code is free")

	codes := map[string]string{}
	for _, m := range e.answer(t, 0) {
		_, cs := e.open(t, m)
		maps.Copy(codes, cs)
	}
	require.Equal(t, map[string]string{"g1": "333333", "g2": "555555", "g5": "222222", "g6": "444444", "g8": "111111"}, codes)
}
