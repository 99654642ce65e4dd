package bookings

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// testLockers are two replicas' lockers on one store's engine: two Stores
// on one database on PostgreSQL; on bbolt, one process's locker twice (a
// file is one process's).
func testLockers(t *testing.T) (locker, locker) {
	t.Helper()
	s, _ := openTestStore(t)
	a, err := newLocker(s, 4)
	require.NoError(t, err)
	if pgtest.Engine() != pgtest.Postgres {
		return a, a
	}
	b, err := newLocker(OpenTestPostgresStoreLike(t, s), 4)
	require.NoError(t, err)
	return a, b
}

// TestLockerExclusiveVsWorkers: an exclusive operation on one replica and
// the workers on the other never overlap; a worker that comes while the
// exclusive one waits queues behind it (the exclusive is not starved).
func TestLockerExclusiveVsWorkers(t *testing.T) {
	a, b := testLockers(t)
	ctx := context.Background()
	var inside atomic.Int32 // workers in; -1: the exclusive one
	_, unlockW, err := a.work(ctx, false)
	require.NoError(t, err)
	inside.Add(1)

	exclusiveIn := make(chan struct{})
	exclusiveOut := make(chan struct{})
	go func() {
		_, unlock, err := b.work(ctx, true)
		if err != nil {
			panic(err)
		}
		if n := inside.Load(); n != 0 {
			panic("exclusive with workers in")
		}
		inside.Store(-1)
		close(exclusiveIn)
		<-exclusiveOut
		inside.Store(0)
		unlock()
	}()
	// Wait until the exclusive one waits (it cannot be in yet).
	select {
	case <-exclusiveIn:
		t.Fatal("exclusive while a worker holds the work lock")
	case <-time.After(200 * time.Millisecond):
	}
	// A later worker, on the exclusive one's replica, waits behind it.
	workerIn := make(chan struct{})
	go func() {
		_, unlock, err := b.work(ctx, false)
		if err != nil {
			panic(err)
		}
		if inside.Load() < 0 {
			panic("worker while the exclusive one runs")
		}
		close(workerIn)
		unlock()
	}()
	inside.Add(-1)
	unlockW()
	<-exclusiveIn
	select {
	case <-workerIn:
		t.Fatal("a worker overlapped the exclusive operation")
	case <-time.After(100 * time.Millisecond):
	}
	close(exclusiveOut)
	<-workerIn
}

// TestLockerDrivers: one driver's lock is one replica's at a time, and a
// wait for it is bounded by its context.
func TestLockerDrivers(t *testing.T) {
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("bbolt's driver locks are sync.Mutex waits without a context (one process: its holders are its own deliveries); tested through the queue")
	}
	a, b := testLockers(t)
	ctx := context.Background()
	unlock, err := a.drivers(ctx, []int64{7, 3})
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = b.drivers(short, []int64{3})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	other, err := b.drivers(ctx, []int64{5})
	require.NoError(t, err, "another driver is free")
	other()
	unlock()
	again, err := b.drivers(ctx, []int64{3, 7})
	require.NoError(t, err)
	again()
}
