package store

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
)

func TestCommitUses(t *testing.T) {
	limited := func(id, code string, max, uses int) box.GrantPut {
		g := booking(id, code, "k1")
		g.MaxUses, g.Uses = max, uses
		return g
	}
	tests := []struct {
		name     string
		grants   []box.GrantPut
		use      []string
		wantErr  error
		wantUses map[string]int // after the commit
	}{
		{"unlimited", []box.GrantPut{booking("g-1", "1111", "k1")}, []string{"g-1"}, nil, map[string]int{"g-1": 1}},
		{"last use", []box.GrantPut{limited("g-1", "1111", 3, 2)}, []string{"g-1"}, nil, map[string]int{"g-1": 3}},
		{"used up", []box.GrantPut{limited("g-1", "1111", 3, 3)}, []string{"g-1"}, box.ErrUsedUp, map[string]int{"g-1": 3}},
		{"two grants, second used up: neither counted",
			[]box.GrantPut{booking("g-1", "1111", "k1"), limited("g-2", "2222", 1, 1)}, []string{"g-1", "g-2"},
			box.ErrUsedUp, map[string]int{"g-1": 0, "g-2": 1}},
		{"same grant twice passes its limit", []box.GrantPut{limited("g-1", "1111", 2, 1)}, []string{"g-1", "g-1"}, box.ErrUsedUp, map[string]int{"g-1": 1}},
		{"unknown grant", []box.GrantPut{booking("g-1", "1111", "k1")}, []string{"g-1", "g-gone"}, ErrUnknownGrant, map[string]int{"g-1": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			mustApply(t, s, Batch{Grants: tt.grants})
			lock := &box.Lockout{Failures: 4, Until: t0.Add(time.Minute)}
			ev, err := s.Commit(box.Change{
				UseGrants: tt.use,
				Lockout:   lock,
				Events:    []box.Event{{Type: box.EventCodeAccepted, GrantID: tt.use[0], Time: t0}},
			})
			gs, gerr := s.Grants()
			require.NoError(t, gerr)
			for _, g := range gs {
				require.Equal(t, tt.wantUses[g.ID], g.Uses, g.ID)
			}
			l, lerr := s.Lockout()
			require.NoError(t, lerr)
			seq, serr := s.LastSeq()
			require.NoError(t, serr)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Nil(t, ev)
				require.Zero(t, l, "lockout not written")
				require.Zero(t, seq, "event not written")
				return
			}
			require.NoError(t, err)
			require.Equal(t, []box.Event{{Seq: 1, Type: box.EventCodeAccepted, GrantID: tt.use[0], Time: t0}}, ev)
			require.Equal(t, *lock, l)
			require.Equal(t, uint64(1), seq)
		})
	}
}

func TestCommitEmpty(t *testing.T) {
	s, _ := newStore(t)
	ev, err := s.Commit(box.Change{})
	require.NoError(t, err)
	require.Empty(t, ev)
}

func TestSeqAcrossReopenAndAck(t *testing.T) {
	s, clock := newStore(t)
	commit := func(s *Store, n int) []uint64 {
		var seqs []uint64
		for range n {
			ev, err := s.Commit(box.Change{Events: []box.Event{{Type: box.EventKeyTaken, Slot: 1}, {Type: box.EventSlotRelocked, Slot: 1}}})
			require.NoError(t, err)
			for _, e := range ev {
				seqs = append(seqs, e.Seq)
			}
		}
		return seqs
	}
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6}, commit(s, 3))
	depth, err := s.OutboxDepth()
	require.NoError(t, err)
	require.Equal(t, 6, depth)

	page, err := s.Events(2, 3)
	require.NoError(t, err)
	require.Len(t, page, 3)
	require.Equal(t, []uint64{3, 4, 5}, []uint64{page[0].Seq, page[1].Seq, page[2].Seq})
	require.Equal(t, box.EventKeyTaken, page[0].Type)

	n, err := s.AckEvents(4)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	depth, err = s.OutboxDepth()
	require.NoError(t, err)
	require.Equal(t, 2, depth)
	all, err := s.Events(0, 0)
	require.NoError(t, err)
	require.Equal(t, uint64(5), all[0].Seq)

	s = reopen(t, s, clock)
	require.Equal(t, []uint64{7, 8}, commit(s, 1))

	// Empty the outbox, reopen: numbering still goes on.
	n, err = s.AckEvents(8)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	n, err = s.AckEvents(8)
	require.NoError(t, err)
	require.Zero(t, n, "acking again is harmless")
	depth, err = s.OutboxDepth()
	require.NoError(t, err)
	require.Zero(t, depth)

	s = reopen(t, s, clock)
	last, err := s.LastSeq()
	require.NoError(t, err)
	require.Equal(t, uint64(8), last)
	require.Equal(t, []uint64{9, 10}, commit(s, 1))

	_, err = s.AckEvents(11)
	require.ErrorContains(t, err, "ack through seq 11, but the last seq given out is 10")
	depth, err = s.OutboxDepth()
	require.NoError(t, err)
	require.Equal(t, 2, depth)
}

func TestLockoutPersisted(t *testing.T) {
	s, clock := newStore(t)
	l, err := s.Lockout()
	require.NoError(t, err)
	require.Zero(t, l)

	want := box.Lockout{Failures: 5, Until: t0.Add(5 * time.Minute)}
	_, err = s.Commit(box.Change{Lockout: &want, Events: []box.Event{{Type: box.EventLockout, Failures: 5, Until: want.Until}}})
	require.NoError(t, err)

	s = reopen(t, s, clock)
	l, err = s.Lockout()
	require.NoError(t, err)
	require.True(t, want.Until.Equal(l.Until))
	require.Equal(t, want.Failures, l.Failures)

	// A commit without a lockout leaves it alone; a zero one clears it.
	_, err = s.Commit(box.Change{Events: []box.Event{{Type: box.EventCodeAccepted}}})
	require.NoError(t, err)
	l, err = s.Lockout()
	require.NoError(t, err)
	require.Equal(t, 5, l.Failures)
	_, err = s.Commit(box.Change{Lockout: &box.Lockout{}})
	require.NoError(t, err)
	l, err = s.Lockout()
	require.NoError(t, err)
	require.Zero(t, l)
}

func TestCommitConcurrent(t *testing.T) {
	s, _ := newStore(t)
	mustApply(t, s, Batch{Grants: []box.GrantPut{booking("g-1", "1111", "k1")}})
	const workers, each = 4, 25
	seqs := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				ev, err := s.Commit(box.Change{UseGrants: []string{"g-1"}, Events: []box.Event{{Type: box.EventCodeAccepted, GrantID: "g-1"}}})
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- ev[0].Seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for seq := range seqs {
		require.False(t, seen[seq], "seq %d given twice", seq)
		seen[seq] = true
	}
	for i := uint64(1); i <= workers*each; i++ {
		require.True(t, seen[i], "seq %d missing", i)
	}
	gs, err := s.GrantsByCode("1111")
	require.NoError(t, err)
	require.Equal(t, workers*each, gs[0].Uses)
}
