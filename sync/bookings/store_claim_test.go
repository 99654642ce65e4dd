package bookings

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

func claimedIDs(ds []Delivery) []int64 {
	var ids []int64
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

// TestStoreClaimDue: a claim takes due deliveries nobody holds, oldest
// first; it ends when the delivery is stored again or its lease runs out.
func TestStoreClaimDue(t *testing.T) {
	s, _ := openTestStore(t)
	require.NoError(t, s.SetSettings(Settings{APIKey: "k", AccountToken: "t", WebhookSecret: "s"}))
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for id := int64(6); id >= 1; id-- {
		_, err := s.AddDelivery(Delivery{ID: id, Event: "e", Body: []byte(`{}`), ReceivedAt: t0})
		require.NoError(t, err)
	}
	_, err := s.ClaimDue("", t0, time.Minute, 1)
	require.ErrorIs(t, err, ErrInvalid)

	a, err := s.ClaimDue("a", t0, time.Minute, 2)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, claimedIDs(a))
	b, err := s.ClaimDue("b", t0, time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4, 5, 6}, claimedIDs(b))
	none, err := s.ClaimDue("c", t0.Add(30*time.Second), time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, none, "all held")

	// a is done with 1 and puts 2 back for later: 1 is off the queue, 2
	// is free again once due.
	a[0].State = DeliveryDone
	require.NoError(t, s.UpdateDelivery(a[0]))
	a[1].NextAttempt, a[1].Attempts = t0.Add(2*time.Minute), 1
	require.NoError(t, s.UpdateDelivery(a[1]))
	none, err = s.ClaimDue("c", t0.Add(30*time.Second), time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, none, "2 not due yet, the others held")

	// b died: its claims run out with its lease.
	c, err := s.ClaimDue("c", t0.Add(2*time.Minute), time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{2, 3, 4, 5, 6}, claimedIDs(c))
}

// TestStoreClaimDueConcurrent: claimers at once never hold one delivery
// between them. On PostgreSQL they are two Stores on one database (two
// replicas); on bbolt, one Store's goroutines (a file is one process's).
func TestStoreClaimDueConcurrent(t *testing.T) {
	s, _ := openTestStore(t)
	stores := []*Store{s}
	if pgtest.Engine() == pgtest.Postgres {
		stores = []*Store{OpenTestPostgresStoreLike(t, s), s}
	}
	require.NoError(t, s.SetSettings(Settings{APIKey: "k", AccountToken: "t", WebhookSecret: "s"}))
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	const deliveries = 120
	for id := int64(1); id <= deliveries; id++ {
		_, err := s.AddDelivery(Delivery{ID: id, Event: "e", Body: []byte(`{}`), ReceivedAt: t0})
		require.NoError(t, err)
	}
	var mu sync.Mutex
	claimed := map[int64]string{}
	var errs []error
	var wg sync.WaitGroup
	for w := range 6 {
		st, owner := stores[w%len(stores)], fmt.Sprintf("worker-%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := st.ClaimDue(owner, t0, time.Hour, 3)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, d := range ds {
					if prev, ok := claimed[d.ID]; ok {
						errs = append(errs, fmt.Errorf("delivery %d claimed by %s and %s", d.ID, prev, owner))
					}
					claimed[d.ID] = owner
				}
				mu.Unlock()
				if err != nil || len(ds) == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Len(t, claimed, deliveries)
}
