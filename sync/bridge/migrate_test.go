package bridge

import (
	"crypto/ecdh"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/cloud"
)

// oldDataDir writes a data directory as a release before the renames left
// it, with real data through the stores: a box registered with a password
// and slots, a key and a grant in the cloud, and a Fleetio link and booking.
func oldDataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o700))
	signer, _, err := loadOrCreateSigningKey(filepath.Join(dir, FileSigningKey))
	require.NoError(t, err)

	c, err := cloud.Open(cloud.Options{Path: filepath.Join(dir, "bridge.db"), Signer: signer})
	require.NoError(t, err)
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, c.RegisterBox("depot-1", boxKey.PublicKey().Bytes()))
	_, err = c.PutKey("depot-1", box.Key{ID: "van-7", FobUID: "0100073400", Slot: 3})
	require.NoError(t, err)
	_, err = c.PutGrant("depot-1", box.Grant{ID: "booking-1", Kind: box.KindBooking, KeyIDs: []string{"van-7"}}, "48213579")
	require.NoError(t, err)
	require.NoError(t, c.Close())

	a, err := openBoxAccounts(filepath.Join(dir, "auth.db"))
	require.NoError(t, err)
	require.NoError(t, a.SetPassword("depot-1", "depot-1-mqtt-secret"))
	require.NoError(t, a.SetSlots("depot-1", 12))
	require.NoError(t, a.Close())

	bs, err := bookings.OpenStore(filepath.Join(dir, "fleetio.db"))
	require.NoError(t, err)
	require.NoError(t, bs.PutLink(bookings.Link{VehicleID: 1234, BoxID: "depot-1", KeyID: "van-7", Mode: bookings.ModeAutomatic}))
	require.NoError(t, bs.PutBooking(bookings.Booking{AssignmentID: 77, VehicleID: 1234, BoxID: "depot-1", KeyID: "van-7",
		GrantID: "booking-1", From: time.Now(), State: bookings.BookingActive}, ""))
	require.NoError(t, bs.Close())
	return dir
}

// requireOldDepotData checks that b holds what oldDataDir wrote.
func requireOldDepotData(t *testing.T, b *testBridge) {
	t.Helper()
	keys, grants, err := b.Cloud().Records("depot-1")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Len(t, grants, 1)
	require.Equal(t, "booking-1", grants[0].ID)
	require.True(t, b.accounts.HasPassword("depot-1"))
	require.Equal(t, 12, b.accounts.Slots("depot-1"))
	links, err := b.bookingsStore.Links()
	require.NoError(t, err)
	require.Len(t, links, 1)
	bk, ok, err := b.bookingsStore.Booking(77)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "booking-1", bk.GrantID)
}

// A data directory with the old file names starts with the new code and
// keeps its data; a second start moves nothing.
func TestMigrateOldDataDir(t *testing.T) {
	boltOnly(t, "the renames of the bbolt files (a depot moves to PostgreSQL by MoveToPostgres: TestMoveToPostgres)")
	dir := oldDataDir(t)
	for _, start := range []string{"first", "second"} {
		t.Run(start, func(t *testing.T) {
			b := startTest(t, Options{DataDir: dir})
			for _, r := range renamedFiles {
				_, err := os.Stat(filepath.Join(dir, r.old))
				require.ErrorIs(t, err, os.ErrNotExist, r.old)
				_, err = os.Stat(filepath.Join(dir, r.new))
				require.NoError(t, err, r.new)
			}
			if start == "first" {
				require.Contains(t, b.log.String(), "old=bridge.db new=cloud.db")
				require.Contains(t, b.log.String(), "old=fleetio.db new=bookings.db")
				require.Contains(t, b.log.String(), "old=auth.db new=boxes.db")
			} else {
				require.NotContains(t, b.log.String(), "renamed")
			}

			requireOldDepotData(t, b)
		})
	}
}

// Both an old and a new name for one store: refused, both named, nothing
// moved or opened.
func TestMigrateRefusesBothNames(t *testing.T) {
	dir := oldDataDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileBookingsDB), nil, 0o600))
	_, err := Start(t.Context(), Options{DataDir: dir})
	require.Error(t, err)
	require.Contains(t, err.Error(), filepath.Join(dir, "fleetio.db"))
	require.Contains(t, err.Error(), filepath.Join(dir, FileBookingsDB))
	for _, old := range []string{"bridge.db", "fleetio.db", "auth.db"} {
		_, err := os.Stat(filepath.Join(dir, old))
		require.NoError(t, err, "%s left where it was", old)
	}
	_, err = os.Stat(filepath.Join(dir, FileCloudDB))
	require.ErrorIs(t, err, os.ErrNotExist)
}
