package chaos

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

var t0 = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

func applied(seq, rev uint64) box.Event {
	return box.Event{Seq: seq, Type: box.EventRecordsApplied, Detail: "delta revision 1 to " + strconv.FormatUint(rev, 10) + ": 0 keys, 1 grants put, 0 keys, 0 grants deleted"}
}

func release(seq uint64, grant string, at time.Time) box.Event {
	return box.Event{Seq: seq, Type: box.EventSlotReleased, Purpose: box.PurposeTake, Slot: 1, KeyID: "key-1", GrantID: grant, Time: at}
}

func booking(rev uint64, revoked bool) GrantVersion {
	return GrantVersion{Box: "box-1", Rev: rev, PrevRev: rev - 1, Grant: box.Grant{ID: "g1", Kind: box.KindBooking,
		KeyIDs: []string{"key-1"}, From: t0, Until: t0.Add(time.Hour), Revoked: revoked, MaxUses: 2}}
}

func oracleDetails(b []Breach) string {
	var s []string
	for _, x := range b {
		s = append(s, x.Check+": "+x.Detail)
	}
	return strings.Join(s, "\n")
}

func TestOracleCleanLogPasses(t *testing.T) {
	evs := map[string][]box.Event{"box-1": {applied(1, 1), release(2, "g1", t0.Add(time.Minute))}}
	require.Empty(t, JudgeOracle([]GrantVersion{booking(1, false)}, evs, nil, nil, nil))
}

func TestOracleCatchesPlantedBreaches(t *testing.T) {
	in := t0.Add(time.Minute)
	for name, c := range map[string]struct {
		versions []GrantVersion
		events   []box.Event
		want     string
	}{
		"unknown grant":      {[]GrantVersion{booking(1, false)}, []box.Event{applied(1, 1), release(2, "nope", in)}, "never sent"},
		"before its window":  {[]GrantVersion{booking(1, false)}, []box.Event{applied(1, 1), release(2, "g1", t0.Add(-time.Second))}, "before its window"},
		"after its window":   {[]GrantVersion{booking(1, false)}, []box.Event{applied(1, 1), release(2, "g1", t0.Add(time.Hour))}, "after its window"},
		"revoked, applied":   {[]GrantVersion{booking(1, false), booking(2, true)}, []box.Event{applied(1, 1), applied(2, 2), release(3, "g1", in)}, "revoked at revision 2"},
		"over its use limit": {[]GrantVersion{booking(1, false)}, []box.Event{applied(1, 1), release(2, "g1", in), release(3, "g1", in.Add(time.Second)), release(4, "g1", in.Add(2*time.Second))}, "open 3"},
	} {
		t.Run(name, func(t *testing.T) {
			b := JudgeOracle(c.versions, map[string][]box.Event{"box-1": c.events}, nil, nil, nil)
			require.Len(t, b, 1, oracleDetails(b))
			require.Contains(t, b[0].Detail, c.want)
		})
	}
}

func TestOracleRevocationNotYetAppliedIsNoBreach(t *testing.T) {
	// The cloud revoked at 2; the box, still at 1, cannot know.
	evs := map[string][]box.Event{"box-1": {applied(1, 1), release(2, "g1", t0.Add(time.Minute))}}
	require.Empty(t, JudgeOracle([]GrantVersion{booking(1, false), booking(2, true)}, evs, nil, nil, nil))
}

func TestOracleMissedRevisionJudgedByEitherNeighbour(t *testing.T) {
	// The Monitor saw nothing until revision 3 (it missed 2, where the
	// grant was made); the box applied 2 and released.
	v := booking(3, false)
	v.PrevRev = 1
	evs := map[string][]box.Event{"box-1": {applied(1, 2), release(2, "g1", t0.Add(time.Minute))}}
	require.Empty(t, JudgeOracle([]GrantVersion{v}, evs, nil, nil, nil))
}

func TestOracleWrongCodeFollowedByRelease(t *testing.T) {
	at := t0.Add(time.Minute)
	evs := map[string][]box.Event{"box-1": {applied(1, 1), release(2, "g1", at)}}
	seen := map[string]map[uint64]time.Time{"box-1": {2: at.Add(100 * time.Millisecond)}}
	codes := []CodeOf{{Box: "box-1", Code: "123456", GrantID: "g1"}}
	right := []Typed{{Box: "box-1", Code: "123456", Began: at.Add(-time.Second), At: at}}
	require.Empty(t, JudgeOracle([]GrantVersion{booking(1, false)}, evs, right, codes, seen))
	wrong := []Typed{{Box: "box-1", Code: "999999", Began: at.Add(-time.Second), At: at}}
	b := JudgeOracle([]GrantVersion{booking(1, false)}, evs, wrong, codes, seen)
	require.Len(t, b, 1, oracleDetails(b))
	require.Contains(t, b[0].Detail, "no grant's code")
}

// The box opens at '#', before the call that pressed it has returned: a
// release seen before the typing's At is still that typing's, not the one
// before it (the first chaos run's two false breaches).
func TestOracleReleaseSeenBeforeTheTypingReturned(t *testing.T) {
	at := t0.Add(time.Minute)
	g2 := booking(1, false)
	g2.Grant.ID = "g2"
	evs := map[string][]box.Event{"box-1": {applied(1, 1), release(2, "g1", at), release(3, "g2", at.Add(3*time.Second))}}
	seen := map[string]map[uint64]time.Time{"box-1": {2: at.Add(50 * time.Millisecond), 3: at.Add(3*time.Second + 50*time.Millisecond)}}
	codes := []CodeOf{{Box: "box-1", Code: "111111", GrantID: "g1"}, {Box: "box-1", Code: "222222", GrantID: "g2"}}
	typed := []Typed{
		{Box: "box-1", Code: "111111", Began: at.Add(-700 * time.Millisecond), At: at.Add(200 * time.Millisecond)},
		{Box: "box-1", Code: "222222", Began: at.Add(2300 * time.Millisecond), At: at.Add(3200 * time.Millisecond)},
	}
	require.Empty(t, JudgeOracle([]GrantVersion{booking(1, false), g2}, evs, typed, codes, seen))
}

// A release seen late, after the next typing at the box began, is still
// matched to the typing that explains it, and the next typing to its own.
func TestOracleReleaseSeenAfterTheNextTypingBegan(t *testing.T) {
	at := t0.Add(time.Minute)
	g2 := booking(1, false)
	g2.Grant.ID = "g2"
	evs := map[string][]box.Event{"box-1": {applied(1, 1), release(2, "g1", at), release(3, "g2", at.Add(time.Second))}}
	seen := map[string]map[uint64]time.Time{"box-1": {2: at.Add(300 * time.Millisecond), 3: at.Add(1100 * time.Millisecond)}}
	codes := []CodeOf{{Box: "box-1", Code: "111111", GrantID: "g1"}, {Box: "box-1", Code: "222222", GrantID: "g2"}}
	typed := []Typed{
		{Box: "box-1", Code: "111111", Began: at.Add(-700 * time.Millisecond), At: at.Add(100 * time.Millisecond)},
		{Box: "box-1", Code: "222222", Began: at.Add(200 * time.Millisecond), At: at.Add(1000 * time.Millisecond)},
	}
	versions := []GrantVersion{booking(1, false), g2}
	require.Empty(t, JudgeOracle(versions, evs, typed, codes, seen))
	// The second code wrong instead: its open is a breach, the first is not.
	typed[1].Code = "999999"
	b := JudgeOracle(versions, evs, typed, codes, seen)
	require.Len(t, b, 1, oracleDetails(b))
	require.Contains(t, b[0].Detail, "(seq 3)")
}

func TestOracleCodeOpensOnlyItsOwnGrant(t *testing.T) {
	at := t0.Add(time.Minute)
	g2 := booking(1, false)
	g2.Grant.ID, g2.Grant.DriverRef = "g2", "fleetio:7"
	drv := GrantVersion{Box: "box-1", Rev: 1, Grant: box.Grant{ID: "driver-7", Kind: box.KindDriverCode, DriverRef: "fleetio:7"}}
	versions := []GrantVersion{booking(1, false), g2, drv}
	evs := map[string][]box.Event{"box-1": {applied(1, 1), release(2, "g2", at)}}
	seen := map[string]map[uint64]time.Time{"box-1": {2: at.Add(50 * time.Millisecond)}}
	typed := []Typed{{Box: "box-1", Code: "111111", Began: at.Add(-time.Second), At: at.Add(time.Second)}}

	// A booking's PIN that opened another booking's slot.
	b := JudgeOracle(versions, evs, typed, []CodeOf{{Box: "box-1", Code: "111111", GrantID: "g1"}}, seen)
	require.Len(t, b, 1, oracleDetails(b))
	require.Contains(t, b[0].Detail, `opened slot 1 (seq 2) for grant "g2": the code is of grant(s) g1`)

	// A driver code opens the bookings of its driver.
	require.Empty(t, JudgeOracle(versions, evs, typed, []CodeOf{{Box: "box-1", Code: "111111", GrantID: "driver-7"}}, seen))

	// A code of a grant the cloud never held.
	b = JudgeOracle(versions, evs, typed, []CodeOf{{Box: "box-1", Code: "111111", GrantID: "g2"}, {Box: "box-1", Code: "111111", GrantID: "ghost"}}, seen)
	require.Len(t, b, 1, oracleDetails(b))
	require.Contains(t, b[0].Detail, "never held")
}

func TestBookingCodes(t *testing.T) {
	bk := &bridge.Booking{Assignment: bridge.Assignment{AssignmentID: 7, BoxID: "box-1"}}
	rows := []bridge.BookingRow{{BoxID: "box-1", GrantID: "fleetio-7", Booking: bk}}
	now := []fleetio.VehicleAssignment{{ID: 7, CustomFields: map[string]any{fleetio.FieldAccessCode: "222222"}}}
	read := []CodeOf{{Box: "box-1", Code: "111111", Assignment: 7}, {Box: "box-2", Code: "333333", Assignment: 9}}
	require.ElementsMatch(t, []CodeOf{
		{Box: "box-1", Code: "111111", GrantID: "fleetio-7", Assignment: 7},
		{Box: "box-2", Code: "333333", GrantID: "fleetio-9", Assignment: 9}, // deleted: no row
		{Box: "box-1", Code: "222222", GrantID: "fleetio-7", Assignment: 7},
	}, bookingCodes(read, now, rows))
}

func TestJudgeEvents(t *testing.T) {
	ev := func(s uint64) box.Event { return box.Event{Seq: s, Type: box.EventKeyTaken, Time: t0} }
	clean := BoxEnd{Box: "box-1", LastSeq: 3, CloudEvents: []box.Event{ev(1), ev(2), ev(3)}}
	require.Empty(t, JudgeEvents(clean, map[uint64]box.Event{2: ev(2)}))

	gap := clean
	gap.CloudEvents = []box.Event{ev(1), ev(3)}
	require.Contains(t, oracleDetails(JudgeEvents(gap, nil)), "seq 2 (of 1..3) never reached")

	dup := clean
	dup.CloudEvents = []box.Event{ev(1), ev(2), ev(2), ev(3)}
	require.Contains(t, oracleDetails(JudgeEvents(dup, nil)), "seq 2 is in the cloud twice")

	changed := ev(2)
	changed.Slot = 7
	require.Contains(t, oracleDetails(JudgeEvents(clean, map[uint64]box.Event{2: changed})), "seq 2 differs")

	left := clean
	left.Outbox = 1
	require.Contains(t, oracleDetails(JudgeEvents(left, nil)), "still in the box's outbox")
}

func TestJudgeStore(t *testing.T) {
	g := booking(1, false).Grant
	k := box.Key{ID: "key-1", Slot: 1, FobUID: "0100010001"}
	e := BoxEnd{Box: "box-1", BoxRev: 4, CloudRev: 4, BoxKeys: []box.Key{k}, CloudKeys: []box.Key{k},
		BoxGrants: []box.Grant{g}, CloudGrants: []box.Grant{g}}
	e.BoxGrants[0].Uses = 1 // the box's own count: not part of equality
	require.Empty(t, JudgeStore(e))
	bad := e
	g2 := g
	g2.Revoked = true
	bad.CloudGrants = []box.Grant{g2}
	require.Contains(t, oracleDetails(JudgeStore(bad)), "grant g1 differs")
	behind := e
	behind.BoxRev = 3
	require.Contains(t, oracleDetails(JudgeStore(behind)), "revision 3")
}

func TestJudgeLocksAndLeak(t *testing.T) {
	require.Empty(t, JudgeLocks(BoxEnd{Box: "box-1"}))
	require.Len(t, JudgeLocks(BoxEnd{Box: "box-1", LockReleased: []int{3}}), 1)
	base := Baseline{Goroutines: 100, FDs: 40}
	require.Empty(t, JudgeLeak(base, Baseline{Goroutines: 100 + goroutineSlack, FDs: 40}))
	require.Len(t, JudgeLeak(base, Baseline{Goroutines: 100 + goroutineSlack + 1, FDs: 40 + fdSlack + 1}), 2)
	m, err := parseMetrics(strings.NewReader("# HELP go_goroutines x\ngo_goroutines 42\nprocess_open_fds 9\nx{a=\"b\"} 1\n"))
	require.NoError(t, err)
	require.Equal(t, 42.0, m["go_goroutines"])
	require.Equal(t, 9.0, m["process_open_fds"])
}

func TestJudgeFleetio(t *testing.T) {
	bk := &bridge.Booking{Assignment: bridge.Assignment{AssignmentID: 7, BoxID: "box-1"}, State: bookings.BookingActive, AccessLink: "http://x/a/tok"}
	rows := []bridge.BookingRow{{BoxID: "box-1", GrantID: "g1", Booking: bk}}
	good := fleetio.VehicleAssignment{ID: 7, CustomFields: map[string]any{fleetio.FieldAccessLink: "http://x/a/tok",
		fleetio.FieldAccessInstructions: "Your key ... Details: http://x/a/tok", fleetio.FieldAccessCode: "123456"}}
	require.Empty(t, JudgeFleetio([]fleetio.VehicleAssignment{good}, rows))
	bad := good
	bad.CustomFields = map[string]any{fleetio.FieldAccessLink: "http://x/a/other", fleetio.FieldAccessInstructions: "", fleetio.FieldAccessCode: "12"}
	require.Len(t, JudgeFleetio([]fleetio.VehicleAssignment{bad}, rows), 3)
	ended := *bk
	ended.State = bookings.BookingEnded
	require.Len(t, JudgeFleetio([]fleetio.VehicleAssignment{good}, []bridge.BookingRow{{Booking: &ended}}), 1)
}
