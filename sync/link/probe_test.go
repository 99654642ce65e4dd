package link_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/link"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// probeConcurrency is how many probes TestProbe runs at once: more than
// one, fewer than the link's bound and the cloud's sync burst.
const probeConcurrency = 4

func TestProbe(t *testing.T) {
	t.Parallel()
	for _, k := range brokertest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			_, tc, st, l := setup(t, k, nil)
			require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)
			ctx, cancel := context.WithTimeout(t.Context(), waitFor)
			defer cancel()

			// A box with nothing, at the cloud's revision 0: answered all the same.
			res, err := l.Probe(ctx)
			require.NoError(t, err)
			require.Equal(t, signingKey.KeyID, res.KeyID)
			require.Positive(t, res.RTT)

			// Records on both sides; then the probe's answer is a no-op on
			// the box: same revision, no records applied, nothing refused.
			_, err = tc.PutBatch(boxID, testKeys(), grants(0, 10, "k1"))
			require.NoError(t, err)
			tc.push(0)
			requireSameRecords(t, tc, st, waitFor)
			rev, err := st.Revision()
			require.NoError(t, err)
			last, err := st.LastSeq()
			require.NoError(t, err)

			var wg sync.WaitGroup
			errs := make([]error, probeConcurrency)
			for i := range errs {
				wg.Go(func() {
					var r link.ProbeResult
					r, errs[i] = l.Probe(ctx)
					if errs[i] == nil && r.KeyID != signingKey.KeyID {
						errs[i] = errWrongKeyID(r.KeyID)
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			got, err := st.Revision()
			require.NoError(t, err)
			require.Equal(t, rev, got)
			evs, err := st.Events(last, 0)
			require.NoError(t, err)
			for _, e := range evs {
				require.NotEqual(t, box.EventRecordsApplied, e.Type, "a probe answer applied records: %+v", e)
				require.NotEqual(t, box.EventSyncRefused, e.Type, "a probe answer was refused: %+v", e)
			}
			requireSameRecords(t, tc, st, waitFor)
		})
	}
}

type errWrongKeyID string

func (e errWrongKeyID) Error() string { return "probe answered with key id " + string(e) }

// A box behind the cloud gets its records from the probe's request, then
// the probe's answer.
func TestProbeBringsABoxBehindUpToDate(t *testing.T) {
	t.Parallel()
	_, tc, st, l := setup(t, brokertest.Mochi, nil)
	require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)
	// Records the box was not told about (no push).
	_, err := tc.PutBatch(boxID, testKeys(), grants(0, 5, "k1"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	_, err = l.Probe(ctx)
	require.NoError(t, err)
	requireSameRecords(t, tc, st, waitFor)
}

// probeMismatch runs a link for st against a cloud that has registered
// the box with registered (its X25519 sync key) and returns a probe's error.
func probeMismatch(t *testing.T, st *store.Store, registered []byte) error {
	t.Helper()
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	startCloud(t, b, registered)
	l := startLink(t, b, st, nil)
	require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	_, err := l.Probe(ctx)
	return err
}

// A box provisioned with a key that is not the cloud's (same key id,
// another bridge's key): the probe says so, naming the ids and the box's
// key fingerprint.
func TestProbeWrongSigningKey(t *testing.T) {
	t.Parallel()
	st := openBox(t, filepath.Join(t.TempDir(), "box.db"))
	other, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, st.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{signingKey.KeyID: other}}))
	pub, err := st.SyncPublicKey()
	require.NoError(t, err)

	err = probeMismatch(t, st, pub)
	require.ErrorIs(t, err, link.ErrProbeSignature)
	require.ErrorIs(t, err, wire.ErrBadSignature)
	sum := sha256.Sum256(other)
	require.ErrorContains(t, err, `signed with cloud key "k1"`)
	require.ErrorContains(t, err, `key "k1" (sha256 `+hex.EncodeToString(sum[:8]))
	t.Log(err)
}

// A box whose store the cloud does not know (re-flashed, not registered
// again): the key verifies nothing addressed to it, and the probe says why.
func TestProbeAnotherIdentity(t *testing.T) {
	t.Parallel()
	st := openBox(t, filepath.Join(t.TempDir(), "box.db"))
	old := openBox(t, filepath.Join(t.TempDir(), "old.db")) // the card before
	pub, err := old.SyncPublicKey()
	require.NoError(t, err)

	err = probeMismatch(t, st, pub)
	require.ErrorIs(t, err, link.ErrProbeSignature)
	require.ErrorIs(t, err, wire.ErrWrongAudience)
	require.ErrorContains(t, err, "register this store's sync key with the bridge again")
}

func TestProbeNotConnected(t *testing.T) {
	t.Parallel()
	st := openBox(t, filepath.Join(t.TempDir(), "box.db"))
	opts := link.Options{BoxID: boxID, BrokerURL: "tcp://127.0.0.1:1", Store: st}
	l, err := link.New(opts)
	require.NoError(t, err)
	_, err = l.Probe(t.Context())
	require.ErrorIs(t, err, link.ErrNotConnected)
	require.ErrorContains(t, err, "not running")

	// Running, but no broker there: refused at once, nothing waits.
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	b.Stop()
	l = startLink(t, b, st, nil)
	require.Eventually(t, func() bool { // until Run has started
		_, err = l.Probe(t.Context())
		return !strings.Contains(err.Error(), "not running")
	}, waitFor, 10*time.Millisecond)
	require.ErrorIs(t, err, link.ErrNotConnected)
	require.ErrorContains(t, err, b.URL())
}

// Connected to the broker, but no cloud answers: the probe times out and
// says so.
func TestProbeTimeout(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	st := openBox(t, filepath.Join(t.TempDir(), "box.db"))
	l := startLink(t, b, st, nil)
	require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := l.Probe(ctx)
	require.ErrorIs(t, err, link.ErrProbeTimeout)
	require.ErrorContains(t, err, b.URL())

	// The caller's own cancel is its own error, not a timeout.
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	_, err = l.Probe(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, link.ErrProbeTimeout)
}
