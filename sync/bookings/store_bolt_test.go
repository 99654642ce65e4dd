package bookings

import (
	"crypto/sha256"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// TestStoreOpensOlderFile: a bookings.db written by an older bridge (the
// bucket layout of store_bolt.go, without the watch buckets it added
// later) opens with everything in it: the engine seam changed no byte on
// disk.
func TestStoreOpensOlderFile(t *testing.T) {
	if pgtest.Engine() != pgtest.Bbolt {
		t.Skip("a bbolt file's layout: the PostgreSQL engine's counterpart is TestCopyToPostgres")
	}
	path := filepath.Join(t.TempDir(), "bookings.db")
	key := newSealKey()
	sealer, err := newStore(nil, key)
	require.NoError(t, err)
	sealed := sealer.sealPIN(11, "482913")
	t0 := time.Date(2026, 11, 3, 15, 0, 0, 0, time.UTC)
	mustJSON := func(v any) []byte {
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		return raw
	}
	tok := sha256.Sum256([]byte("tok"))

	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		put := func(bucket string, k, v []byte) {
			b, err := tx.CreateBucketIfNotExists([]byte(bucket))
			require.NoError(t, err)
			require.NoError(t, b.Put(k, v))
		}
		put("meta", []byte("schema"), u64(1))
		put("meta", []byte("seal_key"), key)
		put("settings", []byte("connection"), mustJSON(Settings{APIKey: "k", AccountToken: "t", WebhookSecret: "s"}))
		put("settings", []byte("code_mode"), []byte(CodePerDriver))
		put("boxes", []byte("box-a"), mustJSON(BoxInfo{ID: "box-a", Name: "Depot North"}))
		put("links", id64(7), mustJSON(Link{VehicleID: 7, BoxID: "box-a", KeyID: "van-7", Mode: ModeAutomatic}))
		put("deliveries", id64(3), mustJSON(Delivery{ID: 3, Event: "e", Body: []byte(`{}`), ReceivedAt: t0, State: DeliveryQueued}))
		put("queue", id64(3), nil)
		put("bookings", id64(11), mustJSON(Booking{AssignmentID: 11, VehicleID: 7, BoxID: "box-a", KeyID: "van-7",
			State: BookingActive, SealedPIN: sealed}))
		put("tokens", tok[:], id64(11))
		put("prompts", id64(12), mustJSON(Reservation{AssignmentID: 12, VehicleID: 7}))
		put("drivers", id64(3), mustJSON(driverCode{ContactID: 3, Own: true}))
		return tx.Bucket([]byte("deliveries")).SetSequence(5)
	}))
	require.NoError(t, db.Close())

	s, err := OpenStore(path)
	require.NoError(t, err)
	defer s.Close()
	st, err := s.Settings()
	require.NoError(t, err)
	require.Equal(t, Settings{APIKey: "k", AccountToken: "t", WebhookSecret: "s", CodeMode: CodePerDriver}, st)
	bi, err := s.Box("box-a")
	require.NoError(t, err)
	require.Equal(t, "Depot North", bi.Name)
	_, ok, err := s.LinkOf(7)
	require.NoError(t, err)
	require.True(t, ok)
	due, _, err := s.Queued(t0)
	require.NoError(t, err)
	require.Equal(t, []int64{3}, claimedIDs(due))
	bk, ok, err := s.BookingByToken("tok")
	require.NoError(t, err)
	require.True(t, ok)
	pin, err := s.openPIN(11, bk.SealedPIN)
	require.NoError(t, err)
	require.Equal(t, "482913", pin)
	rs, err := s.Reservations()
	require.NoError(t, err)
	require.Len(t, rs, 1)
	dc, ok, err := s.driverCode(3)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, dc.Own)
	d, err := s.AddInternalDelivery(EventCreateBooking, 12, 7, t0)
	require.NoError(t, err)
	require.Equal(t, int64(internalDeliveryBase+6), d.ID, "the file's numbering goes on")

	// The watch side: none of it in the file, made on open.
	held, err := s.heldKeys()
	require.NoError(t, err)
	require.Empty(t, held)
	require.Zero(t, s.seenOf("box-a"))
	raised, err := s.raiseOverdue(11, overdueFlag{RaisedAt: t0, KeyID: "van-7", BoxID: "box-a"},
		BookingEvent{AssignmentID: 11, Time: t0, Type: EventKeyOverdue, Via: viaBridge})
	require.NoError(t, err)
	require.True(t, raised)
}
