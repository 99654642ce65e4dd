package bookings

import (
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// The waiting index (store_live.go waitingFor, the engines' putBooking and
// waiting): on either engine, a booking is filed under its box while it
// waits for the box to be heard holding its grant, and under none
// otherwise, whichever write changed it.

// waitingIDs is what waitingGrants(boxID) lists, by assignment id.
func waitingIDs(t *testing.T, s *Store, boxID string) []int64 {
	t.Helper()
	bks, err := s.waitingGrants(boxID)
	require.NoError(t, err)
	ids := []int64{}
	for _, bk := range bks {
		ids = append(ids, bk.AssignmentID)
	}
	return ids
}

// indexedIDs is what the engine's index holds for boxID, before
// waitingGrants checks each document again: an entry left behind would
// show here only.
func indexedIDs(t *testing.T, s *Store, boxID string) []int64 {
	t.Helper()
	ids := []int64{}
	require.NoError(t, s.eng.view(func(tx storeTx) error {
		ids = ids[:0]
		return tx.waiting(boxID, func(doc []byte) error {
			var bk Booking
			if err := json.Unmarshal(doc, &bk); err != nil {
				return err
			}
			ids = append(ids, bk.AssignmentID)
			return nil
		})
	}))
	return ids
}

// requireWaiting checks that boxes' waiting bookings are want (a box not
// named: none), through waitingGrants and in the index itself, and the
// bookings waiting for any box are all of them, in assignment id order.
func requireWaiting(t *testing.T, s *Store, want map[string][]int64, msg string) {
	t.Helper()
	all := []int64{}
	for _, box := range []string{"box-a", "box-b", "box-c"} {
		ids := want[box]
		if ids == nil {
			ids = []int64{}
		}
		require.Equal(t, ids, waitingIDs(t, s, box), "%s: waiting for %s", msg, box)
		require.Equal(t, ids, indexedIDs(t, s, box), "%s: indexed for %s", msg, box)
		all = append(all, ids...)
	}
	require.ElementsMatch(t, all, waitingIDs(t, s, ""), "%s: waiting for any box", msg)
	require.IsIncreasing(t, waitingIDs(t, s, ""), "%s: in assignment id order", msg)
	require.Equal(t, waitingIDs(t, s, ""), indexedIDs(t, s, ""), "%s: indexed for any box", msg)
}

func TestWaitingIndexFollowsEveryWrite(t *testing.T) {
	s, reopen := openTestStore(t)
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	put := func(bk Booking) {
		t.Helper()
		require.NoError(t, s.PutBooking(bk, ""))
	}
	stored := func(id int64) Booking {
		t.Helper()
		bk, ok, err := s.Booking(id)
		require.NoError(t, err)
		require.True(t, ok)
		return bk
	}
	// A NUL in the document (a name from Fleetio): the index is no
	// expression over the document, so it files it all the same.
	bk := Booking{AssignmentID: 20, VehicleID: 7, ContactName: "Ada\x00Lovelace", BoxID: "box-a", KeyID: "van-7",
		From: t0, State: BookingActive, PendingGrant: true}
	put(bk)
	requireWaiting(t, s, nil, "grant not pushed yet")

	bk.PendingGrant, bk.GrantRev, bk.GrantAt = false, 5, t0
	put(bk)
	requireWaiting(t, s, map[string][]int64{"box-a": {20}}, "grant pushed")

	// Others: a booking of another box waiting, one live, one ended, one
	// unlinked (no box).
	put(Booking{AssignmentID: 10, BoxID: "box-b", State: BookingActive, GrantRev: 3, GrantAt: t0})
	put(Booking{AssignmentID: 30, BoxID: "box-a", State: BookingActive, GrantRev: 4, GrantAt: t0, LiveAt: t0})
	put(Booking{AssignmentID: 40, BoxID: "box-a", State: BookingEnded, GrantRev: 2, GrantAt: t0})
	put(Booking{AssignmentID: 50, State: BookingUnlinked})
	requireWaiting(t, s, map[string][]int64{"box-a": {20}, "box-b": {10}}, "a fleet")

	// A box behind: still waiting; its revision noted.
	live, err := s.boxHolds(20, "box-a", 4, t0.Add(time.Minute))
	require.NoError(t, err)
	require.False(t, live)
	require.Equal(t, uint64(4), stored(20).BoxRev)
	requireWaiting(t, s, map[string][]int64{"box-a": {20}, "box-b": {10}}, "box behind")

	// An alert raised for it (a watch transaction's write): still waiting.
	raised, err := s.raiseNotLive(adminAlert{Kind: notify.KindNotLive, BoxID: "box-a", AssignmentID: 20, GrantRev: 5, At: t0})
	require.NoError(t, err)
	require.True(t, raised)
	requireWaiting(t, s, map[string][]int64{"box-a": {20}, "box-b": {10}}, "alerted")

	// The box holds it: live, out of the index.
	live, err = s.boxHolds(20, "box-a", 5, t0.Add(2*time.Minute))
	require.NoError(t, err)
	require.True(t, live)
	requireWaiting(t, s, map[string][]int64{"box-b": {10}}, "live")

	// A writer holding the booking from before it went live keeps it live
	// (keepLive): not back in the index.
	put(bk)
	requireWaiting(t, s, map[string][]int64{"box-b": {10}}, "stale writer of the same grant")

	// A new grant: waiting again.
	bk = stored(20)
	bk.GrantRev, bk.GrantAt, bk.LiveAt = 8, t0.Add(time.Hour), time.Time{}
	put(bk)
	requireWaiting(t, s, map[string][]int64{"box-a": {20}, "box-b": {10}}, "new grant")

	// Moved to another box, its grant pushed there: waiting for that box
	// only.
	bk.BoxID, bk.GrantRev = "box-c", 2
	put(bk)
	requireWaiting(t, s, map[string][]int64{"box-b": {10}, "box-c": {20}}, "moved to box-c")
	live, err = s.boxHolds(20, "box-a", 99, t0.Add(2*time.Hour))
	require.NoError(t, err)
	require.False(t, live, "the old box's status is not the booking's")

	// It lives on through a restart.
	s = reopen()
	requireWaiting(t, s, map[string][]int64{"box-b": {10}, "box-c": {20}}, "reopened")

	// Ended: out.
	bk = stored(20)
	bk.State = BookingEnded
	put(bk)
	requireWaiting(t, s, map[string][]int64{"box-b": {10}}, "ended")

	// An older bridge's booking (no grant revision) takes the box's
	// revision: waiting.
	put(Booking{AssignmentID: 60, BoxID: "box-c", State: BookingActive, Changed: t0})
	requireWaiting(t, s, map[string][]int64{"box-b": {10}}, "no grant revision")
	require.NoError(t, s.adoptGrantRev(60, 11))
	requireWaiting(t, s, map[string][]int64{"box-b": {10}, "box-c": {60}}, "grant revision adopted")

	// Secrets wiped (a disconnect rewrites the bookings that held a PIN):
	// as they were.
	bk = stored(60)
	bk.SealedPIN = s.sealPIN(60, "482913")
	put(bk)
	require.NoError(t, s.forgetSecrets())
	require.Nil(t, stored(60).SealedPIN)
	requireWaiting(t, s, map[string][]int64{"box-b": {10}, "box-c": {60}}, "secrets wiped")

	// Deleted: out, entry and all.
	require.NoError(t, delOne(s, tBookings, idKey(10)))
	requireWaiting(t, s, map[string][]int64{"box-c": {60}}, "deleted")
	put(Booking{AssignmentID: 10, BoxID: "box-b", State: BookingActive, GrantRev: 3, GrantAt: t0})
	requireWaiting(t, s, map[string][]int64{"box-b": {10}, "box-c": {60}}, "stored again")

	// Every booking cleared: none waiting.
	require.NoError(t, s.eng.update(func(tx storeTx) error {
		n, err := tx.clear(tBookings)
		require.Equal(t, 6, n)
		return err
	}))
	requireWaiting(t, s, nil, "cleared")
	put(Booking{AssignmentID: 10, BoxID: "box-b", State: BookingActive, GrantRev: 3, GrantAt: t0})
	requireWaiting(t, s, map[string][]int64{"box-b": {10}}, "stored after the clear")
}

// TestWaitingIndexRefusesRawPut: a booking's document goes in with its
// entry in the index or not at all.
func TestWaitingIndexRefusesRawPut(t *testing.T) {
	s, _ := openTestStore(t)
	err := s.eng.update(func(tx storeTx) error { return tx.put(tBookings, idKey(1), []byte(`{}`)) })
	require.ErrorContains(t, err, "putBooking")
	err = s.eng.update(func(tx storeTx) error { return putRec(tx, tBookings, idKey(1), &Booking{AssignmentID: 1}) })
	require.ErrorContains(t, err, "not a Booking")
}

// olderBookings are bookings a bridge older than the waiting index
// stored: 1 and 4 wait (4 with a NUL in a name), the others do not.
func olderBookings() []Booking {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	return []Booking{
		{AssignmentID: 1, BoxID: "box-a", State: BookingActive, GrantRev: 3, GrantAt: t0},
		{AssignmentID: 2, BoxID: "box-a", State: BookingActive, GrantRev: 2, GrantAt: t0, LiveAt: t0},
		{AssignmentID: 3, BoxID: "box-b", State: BookingEnded, GrantRev: 1, GrantAt: t0},
		{AssignmentID: 4, BoxID: "box-b", ContactName: "Bob\x00", State: BookingActive, GrantRev: 5, GrantAt: t0},
		{AssignmentID: 5, State: BookingUnlinked},
	}
}

var olderWaiting = map[string][]int64{"box-a": {1}, "box-b": {4}}

// TestWaitingIndexOfOlderFile: a bookings.db from before the index opens
// with its waiting bookings indexed.
func TestWaitingIndexOfOlderFile(t *testing.T) {
	if pgtest.Engine() != pgtest.Bbolt {
		t.Skip("a bbolt file's layout: the PostgreSQL engine's counterpart is TestWaitingIndexOfOlderDatabase")
	}
	path := filepath.Join(t.TempDir(), "bookings.db")
	s, err := OpenStore(path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	// The file as an older bridge left it: its bookings, no index.
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketWaiting, bucketWaitingBox} {
			require.NoError(t, tx.DeleteBucket(b))
		}
		for _, bk := range olderBookings() {
			raw, err := json.Marshal(bk)
			require.NoError(t, err)
			require.NoError(t, tx.Bucket(bucketBookings).Put(id64(bk.AssignmentID), raw))
		}
		return nil
	}))
	require.NoError(t, db.Close())

	s, err = OpenStore(path)
	require.NoError(t, err)
	requireWaiting(t, s, olderWaiting, "older file opened")
	require.NoError(t, s.Close())
	s, err = OpenStore(path)
	require.NoError(t, err)
	defer s.Close()
	requireWaiting(t, s, olderWaiting, "opened again")
}

// TestWaitingIndexOfOlderDatabase: a database at the migrations before
// the index (00002) opens with its waiting bookings indexed; a row a
// replica has written meanwhile is left as it wrote it.
func TestWaitingIndexOfOlderDatabase(t *testing.T) {
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("PostgreSQL's migration: the bbolt engine's counterpart is TestWaitingIndexOfOlderFile")
	}
	ctx := context.Background()
	url := pgtest.New(t)
	pool, err := pgdb.Open(ctx, url, pgdb.Options{})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	older := fstest.MapFS{}
	for _, name := range []string{"00001_bookings.sql", "00002_replicas.sql"} {
		raw, err := fs.ReadFile(migrations, "migrations/"+name)
		require.NoError(t, err)
		older[name] = &fstest.MapFile{Data: raw}
	}
	require.NoError(t, pgdb.Migrate(ctx, pool, pgStoreName, older, slog.New(slog.DiscardHandler)))
	for _, bk := range olderBookings() {
		raw, err := json.Marshal(bk)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `INSERT INTO bookings_bookings (assignment_id, doc) VALUES ($1, $2)`, bk.AssignmentID, raw)
		require.NoError(t, err)
	}

	s := OpenTestPostgresStore(t, url) // migrates to 00003, fills the index
	requireWaiting(t, s, olderWaiting, "older database opened")
	var unknown int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM bookings_bookings WHERE waiting_box IS NULL`).Scan(&unknown))
	require.Zero(t, unknown)

	// A replica's write stands: the fill writes only what is unknown.
	_, err = pool.Exec(ctx, `UPDATE bookings_bookings SET waiting_box = 'box-z' WHERE assignment_id = 2`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE bookings_bookings SET waiting_box = NULL WHERE assignment_id = 4`)
	require.NoError(t, err)
	OpenTestPostgresStore(t, url)
	var box2, box4 string
	require.NoError(t, pool.QueryRow(ctx, `SELECT
		(SELECT waiting_box FROM bookings_bookings WHERE assignment_id = 2),
		(SELECT waiting_box FROM bookings_bookings WHERE assignment_id = 4)`).Scan(&box2, &box4))
	require.Equal(t, "box-z", box2)
	require.Equal(t, "box-b", box4)
	require.Equal(t, []int64{2}, indexedIDs(t, s, "box-z"))
	require.Empty(t, waitingIDs(t, s, "box-z"), "a stray entry is left out by the check of its document")
	require.Equal(t, []int64{1, 4}, waitingIDs(t, s, ""))
}

// TestWaitingIndexSurvivesCopy: CopyToPostgres files the copied bookings
// in the database's index as the file had them.
func TestWaitingIndexSurvivesCopy(t *testing.T) {
	if pgtest.Engine() != pgtest.Postgres {
		t.Skip("copies into PostgreSQL: runs with SMARTBOX_TEST_STORE=postgres")
	}
	path := filepath.Join(t.TempDir(), "bookings.db")
	src, err := OpenStore(path)
	require.NoError(t, err)
	for _, bk := range olderBookings() {
		require.NoError(t, src.PutBooking(bk, ""))
	}
	requireWaiting(t, src, olderWaiting, "the file")
	require.NoError(t, src.Close())

	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.New(t), pgdb.Options{})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = CopyToPostgres(ctx, path, pool, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	var unknown int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM bookings_bookings WHERE waiting_box IS NULL`).Scan(&unknown))
	require.Zero(t, unknown, "copied with the index, not left to the fill at open")
	dst, err := OpenPostgresStore(ctx, pool)
	require.NoError(t, err)
	defer dst.Close()
	requireWaiting(t, dst, olderWaiting, "copied")
}
