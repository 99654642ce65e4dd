package bookings

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// The fleet of the live receipt's benchmarks: benchBoxes boxes with
// benchPerBox bookings each, kept as a bridge keeps them (ended ones
// included): half ended, the rest live, but for one waiting booking on
// every benchWaitEvery-th box.
const (
	benchBoxes     = 1000
	benchPerBox    = 20
	benchWaitEvery = 50
	// benchGrantRev is the revision of the waiting grants; the boxes are
	// heard at benchBoxRev, behind it, so a status changes nothing and
	// the benchmark measures the reading.
	benchGrantRev = 100
	benchBoxRev   = 50
)

// fillFleet stores the benchmarks' fleet in one transaction (a commit per
// booking would make filling take longer than the benchmark).
func fillFleet(tb testing.TB, s *Store) (waiting int) {
	tb.Helper()
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	err := s.eng.update(func(tx storeTx) error {
		waiting = 0
		id := int64(0)
		for box := range benchBoxes {
			boxID := benchBoxID(box)
			for j := range benchPerBox {
				id++
				bk := Booking{AssignmentID: id, VehicleID: id, ContactID: id%300 + 1, ContactName: "Driver " + fmt.Sprint(id%300),
					VehicleName: "Van " + fmt.Sprint(id), BoxID: boxID, KeyID: fmt.Sprintf("key-%d", j%8),
					GrantID: fmt.Sprintf("fleetio:%d", id), From: t0.Add(time.Duration(id) * time.Minute),
					State: BookingEnded, DriverRef: fmt.Sprintf("fleetio:%d", id%300+1),
					AccessLink: fmt.Sprintf("https://bridge.example.com/a/%032x", id),
					UpdatedAt:  t0, Changed: t0, GrantRev: uint64(j + 1), GrantAt: t0, BoxRev: benchBoxRev}
				switch {
				case j == 0 && box%benchWaitEvery == 0:
					bk.State, bk.GrantRev = BookingActive, benchGrantRev
					waiting++
				case j >= benchPerBox/2:
					bk.State, bk.LiveAt = BookingActive, t0.Add(time.Minute)
				}
				if err := putRec(tx, tBookings, idKey(id), bk); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	// The planner's statistics of a table that grew to this size, as
	// autovacuum would have them by then (a table filled at once has none
	// until its next round, a minute away).
	if pg, ok := s.eng.(*pgEngine); ok {
		if _, err := pg.pool.Exec(context.Background(), `ANALYZE bookings_bookings`); err != nil {
			tb.Fatal(err)
		}
	}
	return waiting
}

func benchBoxID(i int) string { return fmt.Sprintf("box-%04d", i) }

// BenchmarkBoxStatusFleet: one box status handled (Integration.boxHolds,
// what HandleStatus does for each status message) with 1,000 boxes and
// 20,000 bookings stored, the boxes taken in turn (most have nothing
// waiting). On the run's engine (SMARTBOX_TEST_STORE).
func BenchmarkBoxStatusFleet(b *testing.B) {
	s, _ := OpenTestStore(b)
	fillFleet(b, s)
	in := &Integration{o: Options{Store: s, Now: time.Now}, log: slog.New(slog.DiscardHandler)}
	at := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := in.boxHolds(benchBoxID(i%benchBoxes), benchBoxRev, at); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "statuses/s")
}

// BenchmarkWaitingAllBoxesFleet: the waiting grants of every box (what
// CheckLive and CatchUpLive read each round) in the same fleet.
func BenchmarkWaitingAllBoxesFleet(b *testing.B) {
	s, _ := OpenTestStore(b)
	want := fillFleet(b, s)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		got, err := s.waitingGrants("")
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != want {
			b.Fatalf("%d waiting, want %d", len(got), want)
		}
	}
}
