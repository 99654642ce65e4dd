package cloud_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// A probe is answered whether or not the box is current: last, signed,
// at the cloud's revision, with the nonce and no records. A bad nonce is
// refused.
func TestAnswerProbe(t *testing.T) {
	e := newEnv(t, nil)
	probe := func(have uint64, nonce string) ([][]byte, error) {
		return e.c.Answer(wire.SyncRequest{V: wire.Version, Box: "box-a", Have: have, Reason: "probe", Probe: nonce})
	}
	requireProbeAnswer := func(t *testing.T, msg []byte, rev uint64, nonce string) {
		t.Helper()
		b, _ := e.open(t, msg)
		require.Equal(t, nonce, b.Probe)
		require.Equal(t, rev, b.From)
		require.Equal(t, rev, b.To)
		require.False(t, b.Snapshot)
		require.Empty(t, b.Keys)
		require.Empty(t, b.Grants)
		require.Empty(t, b.DeleteKeys)
		require.Empty(t, b.DeleteGrants)
	}

	msgs, err := probe(0, "n0")
	require.NoError(t, err)
	require.Len(t, msgs, 1, "an empty box at revision 0 is current")
	requireProbeAnswer(t, msgs[0], 0, "n0")

	_, err = e.c.PutKey("box-a", key(1))
	require.NoError(t, err)
	rev, err := e.c.PutGrant("box-a", booking("g1", "k1"), "123456")
	require.NoError(t, err)

	msgs, err = probe(rev, "current")
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	requireProbeAnswer(t, msgs[0], rev, "current")

	msgs, err = probe(1, "behind")
	require.NoError(t, err)
	require.Len(t, msgs, 2, "the delta, then the probe answer")
	b, _ := e.open(t, msgs[0])
	require.Empty(t, b.Probe, "records batches carry no nonce")
	require.Equal(t, rev, b.To)
	requireProbeAnswer(t, msgs[1], rev, "behind")

	msgs, err = probe(0, "snapshot")
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	b, _ = e.open(t, msgs[0])
	require.True(t, b.Snapshot)
	requireProbeAnswer(t, msgs[1], rev, "snapshot")

	for _, bad := range []string{strings.Repeat("a", wire.MaxProbeLen+1), "new\nline", "spa ce", `"quote`} {
		_, err := probe(rev, bad)
		require.ErrorIs(t, err, wire.ErrMalformed, "%q", bad)
	}
	_, err = probe(rev, strings.Repeat("a", wire.MaxProbeLen))
	require.NoError(t, err)
}

// A box's own sync request is always answered (AnswerRequest, what Serve
// sends): a current box gets the current answer, a probe answer without a
// nonce, so that it can tell an answered request from a lost one; a box
// behind gets its records and nothing more; a probe gets its answer once.
// Answer itself (pushes) still gives a current box nothing.
func TestAnswerRequestCurrent(t *testing.T) {
	e := newEnv(t, nil)
	ask := func(have uint64, nonce string) [][]byte {
		t.Helper()
		msgs, err := e.c.AnswerRequest(wire.SyncRequest{V: wire.Version, Box: "box-a", Have: have, Probe: nonce})
		require.NoError(t, err)
		return msgs
	}
	requireCurrent := func(t *testing.T, msg []byte, rev uint64, nonce string) {
		t.Helper()
		b, _ := e.open(t, msg)
		require.Equal(t, nonce, b.Probe)
		require.Equal(t, rev, b.From)
		require.Equal(t, rev, b.To)
		require.False(t, b.Snapshot)
		require.Empty(t, b.Keys)
		require.Empty(t, b.Grants)
	}
	msgs := ask(0, "")
	require.Len(t, msgs, 1, "an empty box at revision 0 is current")
	requireCurrent(t, msgs[0], 0, "")

	_, err := e.c.PutKey("box-a", key(1))
	require.NoError(t, err)
	rev, err := e.c.PutGrant("box-a", booking("g1", "k1"), "123456")
	require.NoError(t, err)

	msgs = ask(rev, "")
	require.Len(t, msgs, 1)
	requireCurrent(t, msgs[0], rev, "")
	msgs = ask(rev, "n1")
	require.Len(t, msgs, 1, "the probe answer is the current answer")
	requireCurrent(t, msgs[0], rev, "n1")

	msgs = ask(1, "")
	require.Len(t, msgs, 1, "behind: the delta, no current answer after it")
	b, _ := e.open(t, msgs[0])
	require.Equal(t, uint64(1), b.From)
	require.Equal(t, rev, b.To)

	msgs, err = e.c.Answer(wire.SyncRequest{V: wire.Version, Box: "box-a", Have: rev})
	require.NoError(t, err)
	require.Empty(t, msgs, "Answer (a push) to a current box: nothing")
}
