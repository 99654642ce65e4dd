package bookings

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// dumpStore is everything a store holds, through its engine, as text: two
// stores that hold the same records dump the same.
func dumpStore(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	require.NoError(t, s.eng.view(func(tx storeTx) error {
		for tb := range numTables {
			if err := tx.scan(tb, false, 0, func(k recKey, doc []byte) error {
				out[tb.String()] = append(out[tb.String()], k.String()+" "+string(doc))
				return nil
			}); err != nil {
				return err
			}
		}
		if err := tx.holders(func(h heldKey) error {
			out["holders"] = append(out["holders"], h.BoxID+"/"+h.KeyID+" "+idKey(h.AssignmentID).String())
			return nil
		}); err != nil {
			return err
		}
		if err := tx.queued(func(doc []byte) error {
			out["queue"] = append(out["queue"], string(doc))
			return nil
		}); err != nil {
			return err
		}
		conn, _, err := tx.connection()
		mode, err2 := tx.codeMode()
		out["settings"] = []string{string(conn), mode}
		return firstErr(err, err2)
	}))
	return out
}

// TestCopyToPostgres: every record of a bbolt store file arrives in an
// empty PostgreSQL bookings store, byte for byte, sealed secrets still
// open, and the queue as it was; a store that is not empty is refused.
func TestCopyToPostgres(t *testing.T) {
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("copies into PostgreSQL: runs with SMARTBOX_TEST_STORE=postgres")
	}
	path := filepath.Join(t.TempDir(), "bookings.db")
	src, err := OpenStore(path)
	require.NoError(t, err)
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

	require.NoError(t, src.SetSettings(Settings{APIKey: "k", AccountToken: "t", WebhookSecret: "s", CodeMode: CodePerDriver}))
	require.NoError(t, src.PutBox(BoxInfo{ID: "box-a", Name: "Depot North"}))
	require.NoError(t, src.PutBox(BoxInfo{ID: "box-b", Name: "Depot South"}))
	require.NoError(t, src.PutLink(Link{VehicleID: 7, BoxID: "box-a", KeyID: "van-7", Mode: ModeAutomatic}))
	require.NoError(t, src.PutLink(Link{VehicleID: 8, BoxID: "box-b", KeyID: "van-8", Mode: ModeAutomatic}))
	for _, id := range []int64{9, 5, 7} {
		_, err := src.AddDelivery(Delivery{ID: id, Event: "vehicle_assignment_updated", Body: []byte(`{"id":1}`), ReceivedAt: t0})
		require.NoError(t, err)
	}
	require.NoError(t, src.UpdateDelivery(Delivery{ID: 7, Event: "e", Body: []byte(`{}`), ReceivedAt: t0, State: DeliveryDone}))
	require.NoError(t, src.UpdateDelivery(Delivery{ID: 9, Event: "e", Body: []byte(`{}`), ReceivedAt: t0, State: DeliveryQueued,
		Attempts: 2, NextAttempt: t0.Add(time.Minute), LastError: "502"}))
	internal, err := src.AddInternalDelivery(EventDriverCodeChanged, 11, 7, t0)
	require.NoError(t, err)
	approved, err := src.ApproveReservation(Reservation{AssignmentID: 12, VehicleID: 8, BoxID: "box-b", KeyID: "van-8", From: t0}, t0)
	require.NoError(t, err)
	require.NoError(t, src.PutReservation(Reservation{AssignmentID: 13, VehicleID: 7, BoxID: "box-a", KeyID: "van-7", From: t0}))
	require.NoError(t, src.PutBooking(Booking{AssignmentID: 11, VehicleID: 7, ContactID: 3, BoxID: "box-a", KeyID: "van-7",
		From: t0, State: BookingActive, SealedPIN: src.sealPIN(11, "482913")}, "the-token"))
	require.NoError(t, src.PutBooking(Booking{AssignmentID: 10, VehicleID: 8, State: BookingEnded}, ""))
	require.NoError(t, src.putDriverCode(driverCode{ContactID: 3, Sealed: src.sealDriverCode(3, "735194"), Changed: t0}))
	require.NoError(t, src.watchUpdate(func(w *watchTx) error {
		return firstErr(
			w.attach(BookingEvent{AssignmentID: 11, BoxID: "box-a", Seq: 4, Time: t0, Type: "key_taken", KeyID: "van-7", Via: viaKey}),
			w.attach(BookingEvent{AssignmentID: 11, Time: t0, Type: EventKeyOverdue, KeyID: "van-7", Via: viaBridge}),
			w.setHolder("box-a", "van-7", 11),
			w.put(tOverdue, idKey(11), overdueFlag{RaisedAt: t0, KeyID: "van-7", BoxID: "box-a"}),
			w.setSeen("box-a", 4),
			w.queueAlert(adminAlert{Kind: notify.KindKeypadAttack, BoxID: "box-a", Count: 3, At: t0}),
			w.put(tReturns, returnKey("box-b", "van-8"), watchedReturn{AssignmentID: 10, Slot: 2, Seq: 8, At: t0}))
	}))
	want := dumpStore(t, src)
	require.NoError(t, src.Close())

	ctx := context.Background()
	url := pgtest.New(t)
	pool, err := pgdb.Open(ctx, url, pgdb.Options{})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	log := slog.New(slog.DiscardHandler)
	counts, err := CopyToPostgres(ctx, path, pool, log)
	require.NoError(t, err)
	require.Equal(t, CopyCounts{"settings": 2, "boxes": 2, "links": 2, "deliveries": 5, "queue": 4, "bookings": 2,
		"tokens": 1, "prompts": 2, "drivers": 1, "watch_events": 2, "watch_holders": 1, "watch_overdue": 1,
		"watch_seen": 1, "watch_alerts": 1, "watch_returns": 1}, counts)

	dst, err := OpenPostgresStore(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, want, dumpStore(t, dst))
	// What the dump does not list: tokens, seen seqs, the seal key, the
	// due times of the queue, the numbering of internal deliveries.
	bk, ok, err := dst.BookingByToken("the-token")
	require.NoError(t, err)
	require.True(t, ok)
	pin, err := dst.openPIN(11, bk.SealedPIN)
	require.NoError(t, err)
	require.Equal(t, "482913", pin)
	dc, ok, err := dst.driverCode(3)
	require.NoError(t, err)
	require.True(t, ok)
	code, err := dst.openDriverCode(3, dc.Sealed)
	require.NoError(t, err)
	require.Equal(t, "735194", code)
	require.Equal(t, uint64(4), dst.seenOf("box-a"))
	due, next, err := dst.Queued(t0)
	require.NoError(t, err)
	require.Equal(t, []int64{5, internal.ID, approved.ID}, claimedIDs(due))
	require.Equal(t, t0.Add(time.Minute), next)
	later, err := dst.AddInternalDelivery(EventCreateBooking, 14, 7, t0)
	require.NoError(t, err)
	require.Greater(t, later.ID, approved.ID)

	// Not again: the store is no longer empty.
	_, err = CopyToPostgres(ctx, path, pool, log)
	require.ErrorIs(t, err, ErrInvalid)
}

// TestCopyToPostgresRefusesUsedDatabase: a database a bridge has opened
// holds a seal key of its own; copying a file's PINs next to it is refused.
func TestCopyToPostgresRefusesUsedDatabase(t *testing.T) {
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("copies into PostgreSQL: runs with SMARTBOX_TEST_STORE=postgres")
	}
	path := filepath.Join(t.TempDir(), "bookings.db")
	src, err := OpenStore(path)
	require.NoError(t, err)
	require.NoError(t, src.Close())
	url := pgtest.New(t)
	OpenTestPostgresStore(t, url)
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, url, pgdb.Options{})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = CopyToPostgres(ctx, path, pool, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "bookings_meta")

	// A mistyped path is an error, and makes no file.
	missing := filepath.Join(t.TempDir(), "bookngs.db")
	_, err = CopyToPostgres(ctx, missing, pool, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(missing)
	require.ErrorIs(t, err, os.ErrNotExist)
}
