package link

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/store"
)

// An unanswered sync request is asked again after AckTimeout, each further
// one waiting twice as long up to MaxAckWait: a box whose cloud is down
// asks at that rate and no faster. An answer resets the wait. The worker's
// clock is stepped by hand (periodic is what the worker's ticker runs), so
// the count is exact.
func TestSyncReaskBacksOff(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "box.db"), store.Options{BoxID: "box-a", Slots: 4, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, st.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{"k1": pub}}))
	l, err := New(Options{BoxID: "box-a", BrokerURL: "tcp://127.0.0.1:1", Store: st,
		AckTimeout: 10 * time.Second, MaxAckWait: 5 * time.Minute})
	require.NoError(t, err)

	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	now := t0
	l.now = func() time.Time { return now }
	l.w.online = true // no client: publish sends nothing, the worker's state is what is checked

	// run steps the clock a second at a time until end, and returns when
	// (seconds after t0) the box asked.
	run := func(end time.Duration) []time.Duration {
		var asked []time.Duration
		for now.Sub(t0) < end {
			now = now.Add(time.Second)
			before := l.w.syncAt
			l.periodic()
			if l.w.syncAt != before {
				asked = append(asked, now.Sub(t0))
			}
		}
		return asked
	}
	s := time.Second
	l.requestSync("connect", true) // lost with the replica that took it
	require.Equal(t, []time.Duration{10 * s, 30 * s, 70 * s, 150 * s, 310 * s, 610 * s, 910 * s, 1210 * s, 1510 * s},
		run(26*time.Minute), "10 s, doubling, then every 5 minutes: never the 15-minute periodic on top")
	require.Equal(t, 9, l.w.unanswered)

	// An answer (here: the current answer) resets it; nothing is asked
	// until the periodic sync, 15 minutes after the last request.
	l.answered()
	periodic := 1510*s + syncEvery
	require.Equal(t, []time.Duration{periodic}, run(periodic), "answered: only the periodic sync")
	// ... which, unanswered, is asked again after AckTimeout: the wait
	// starts from the first again.
	require.Equal(t, []time.Duration{periodic + 10*s, periodic + 30*s}, run(periodic+30*s))
}
