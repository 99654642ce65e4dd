package bookings

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

func openTestStore(t *testing.T) (*Store, func() *Store) {
	t.Helper()
	return OpenTestStore(t)
}

// TestStoreFileMode: the bbolt file holds secrets, so it is made (or
// kept) 0600.
func TestStoreFileMode(t *testing.T) {
	if pgtest.Engine() != pgtest.Bbolt {
		t.Skip("bbolt file mode: PostgreSQL keeps no file of ours (its data directory is the server's)")
	}
	path := filepath.Join(t.TempDir(), "bookings.db")
	s, err := OpenStore(path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NoError(t, s.Close())
	require.NoError(t, os.Chmod(path, 0o644))
	s, err = OpenStore(path)
	require.NoError(t, err)
	defer s.Close()
	fi, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "an existing file is made 0600")
}

// TestStoreFileLocked: a second bridge on the same file gets an error
// after the lock timeout, not a hang.
func TestStoreFileLocked(t *testing.T) {
	if pgtest.Engine() != pgtest.Bbolt {
		t.Skip("bbolt file lock: no such thing on PostgreSQL, where replicas share the database (TestPostgresReplicas*)")
	}
	path := filepath.Join(t.TempDir(), "bookings.db")
	s, err := OpenStore(path)
	require.NoError(t, err)
	defer s.Close()
	_, err = OpenStore(path)
	require.Error(t, err)
}

func TestStoreSettings(t *testing.T) {
	s, _ := openTestStore(t)
	_, err := s.Settings()
	require.ErrorIs(t, err, ErrNotConnected)
	require.ErrorIs(t, s.SetSettings(Settings{APIKey: "k"}), ErrInvalid)
	st := Settings{APIKey: "secret-key", AccountToken: "secret-acct", WebhookSecret: "secret-hook"}
	require.NoError(t, s.SetSettings(st))
	got, err := s.Settings()
	require.NoError(t, err)
	require.Equal(t, st, got)
	for _, out := range []string{fmt.Sprint(st), fmt.Sprintf("%+v", st), st.LogValue().String()} {
		require.NotContains(t, out, "secret")
	}
	require.NoError(t, s.ForgetSettings())
	_, err = s.Settings()
	require.ErrorIs(t, err, ErrNotConnected)
}

func TestStoreLinks(t *testing.T) {
	s, _ := openTestStore(t)
	for _, tc := range []struct {
		name string
		l    Link
	}{
		{"no vehicle", Link{BoxID: "b", KeyID: "k", Mode: ModeAutomatic}},
		{"no key", Link{VehicleID: 1, BoxID: "b", Mode: ModeAutomatic}},
		{"bad method", Link{VehicleID: 1, BoxID: "b", KeyID: "k", Mode: "email"}},
	} {
		t.Run(tc.name, func(t *testing.T) { require.ErrorIs(t, s.PutLink(tc.l), ErrInvalid) })
	}
	l := Link{VehicleID: 7, BoxID: "box-a", KeyID: "van-7", Mode: ModeAutomatic}
	require.NoError(t, s.PutLink(l))
	got, ok, err := s.LinkOf(7)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, l, got)
	_, ok, err = s.LinkOf(8)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, s.DeleteLink(7))
	all, err := s.Links()
	require.NoError(t, err)
	require.Empty(t, all)
}

func TestStoreDeliveryQueue(t *testing.T) {
	s, reopen := openTestStore(t)
	t0 := time.Date(2026, 11, 3, 15, 0, 0, 0, time.UTC)
	_, err := s.AddDelivery(Delivery{ID: 2, Event: "e", Body: []byte("{}"), ReceivedAt: t0})
	require.ErrorIs(t, err, ErrNotConnected, "no queue without a connection")
	require.NoError(t, s.SetSettings(Settings{APIKey: "k", AccountToken: "t", WebhookSecret: "s"}))
	added, err := s.AddDelivery(Delivery{ID: 2, Event: "e", Body: []byte("{}"), ReceivedAt: t0})
	require.NoError(t, err)
	require.True(t, added)
	added, err = s.AddDelivery(Delivery{ID: 2, Event: "other", Body: []byte("{1}"), ReceivedAt: t0})
	require.NoError(t, err)
	require.False(t, added, "same id is a duplicate")
	_, err = s.AddDelivery(Delivery{ID: 1, Event: "e", Body: []byte("{}"), ReceivedAt: t0})
	require.NoError(t, err)
	require.Equal(t, 2, s.QueueDepth())

	due, next, err := s.Queued(t0)
	require.NoError(t, err)
	require.Len(t, due, 2)
	require.Equal(t, int64(1), due[0].ID)
	require.True(t, next.IsZero())

	d := due[1]
	d.NextAttempt = t0.Add(time.Minute)
	d.Attempts = 1
	require.NoError(t, s.UpdateDelivery(d))
	due[0].State = DeliveryDone
	require.NoError(t, s.UpdateDelivery(due[0]))

	// Survives a restart.
	s = reopen()
	due, next, err = s.Queued(t0)
	require.NoError(t, err)
	require.Empty(t, due)
	require.Equal(t, t0.Add(time.Minute), next)
	due, _, err = s.Queued(t0.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, "e", due[0].Event)
	require.Equal(t, 1, s.QueueDepth())
}

func TestStoreBookingsAndTokens(t *testing.T) {
	s, _ := openTestStore(t)
	b := Booking{AssignmentID: 9, VehicleID: 7, State: BookingActive, SealedPIN: s.sealPIN(9, "482913")}
	require.NoError(t, s.PutBooking(b, "tok"))
	got, ok, err := s.BookingByToken("tok")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(9), got.AssignmentID)
	pin, err := s.openPIN(9, got.SealedPIN)
	require.NoError(t, err)
	require.Equal(t, "482913", pin)
	_, err = s.openPIN(10, got.SealedPIN)
	require.Error(t, err, "sealed PIN is bound to its assignment")
	_, ok, err = s.BookingByToken("tok2")
	require.NoError(t, err)
	require.False(t, ok)

	r := Reservation{AssignmentID: 3, VehicleID: 7, BoxID: "b", KeyID: "k"}
	require.NoError(t, s.PutReservation(r))
	rs, err := s.Reservations()
	require.NoError(t, err)
	require.Equal(t, []Reservation{r}, rs)
	require.NoError(t, s.DeleteReservation(3))
	_, ok, err = s.Reservation(3)
	require.NoError(t, err)
	require.False(t, ok)
}

// TestStoreKeepsNUL: a NUL in a string of a record (a box event's detail, a
// name or an error text from Fleetio) is stored and read back as it was,
// on either engine: a store that refused it would stall what comes behind.
func TestStoreKeepsNUL(t *testing.T) {
	s, _ := openTestStore(t)
	require.NoError(t, s.SetSettings(Settings{APIKey: "k", AccountToken: "t", WebhookSecret: "s"}))
	b := Booking{AssignmentID: 9, VehicleID: 7, ContactName: "Ada\x00Lovelace", State: BookingActive}
	require.NoError(t, s.PutBooking(b, ""))
	got, ok, err := s.Booking(9)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, b.ContactName, got.ContactName)

	d := Delivery{ID: 3, Event: "e", Body: []byte("{\x00}"), ReceivedAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	_, err = s.AddDelivery(d)
	require.NoError(t, err)
	d.State, d.LastError = DeliveryFailed, "fleetio said \x00"
	require.NoError(t, s.UpdateDelivery(d))
	gd, err := s.Delivery(3)
	require.NoError(t, err)
	require.Equal(t, d, gd)

	ev := BookingEvent{AssignmentID: 9, BoxID: "box-a", Seq: 1, Type: "code_refused", Detail: "bad\x00bytes"}
	require.NoError(t, s.watchUpdate(func(w *watchTx) error { return w.attach(ev) }))
	evs, err := s.bookingEvents(9)
	require.NoError(t, err)
	require.Equal(t, []BookingEvent{ev}, evs)
}
