package box_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
)

// Tests of what a slot released again and again with nothing moved costs:
// the coil's duty and the outbox (review findings 4 and 5).

// coilDuty is the share of d for which the recorded releases energised a lock.
func (h *slotsHW) coilDuty(d time.Duration) float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var on time.Duration
	for _, r := range h.releases {
		on += r.d
	}
	return float64(on) / float64(d)
}

func (h *slotsHW) releaseCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.releases)
}

// TestFruitlessReleasesCoolDown: the fob of a key that is out (or a clone of
// it) scanned every ReleaseTime for an hour, or a good code whose key stays
// in its slot typed as fast as the slot relocks, no longer energise the coil
// back to back nor write two events per release: the slot rests, longer each
// time, and the relocks and refused releases are merged.
func TestFruitlessReleasesCoolDown(t *testing.T) {
	hour := time.Hour
	for _, tc := range []struct {
		name  string
		try   func(r *rig)
		kinds int // of refusal-class events: merged per kind
	}{
		// return_refused (cool_down), slot_relocked (timeout)
		{"fob of a key that is out", func(r *rig) {
			r.c.FobScanned("0100000001")
			r.c.Flush()
		}, 2},
		// code_accepted, key_absent (cool_down), slot_relocked (timeout)
		{"good code, key left in", func(r *rig) { r.typeKeys("123456#") }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
			if tc.name == "fob of a key that is out" {
				r.sense(1, false)
			}
			r.newEvents()
			cfg := r.c.Config()
			tries := 0
			for r.clock.Now().Before(t0.Add(hour)) {
				tc.try(r)
				tries++
				r.advance(cfg.ReleaseTime)
			}
			r.advance(cfg.RefusalWindow)
			evs := r.newEvents()
			released := len(ofType(evs, box.EventSlotReleased))
			t.Logf("%d tries in %s: %d events, %d releases, coil energised %.1f%% of the time",
				tries, hour, len(evs), released, 100*r.hw.coilDuty(hour))
			// No rest after the first, then 10 s, 20 s, ... 160 s, then
			// 5 min: 17 releases in the first hour.
			require.Equal(t, 17, released)
			require.Equal(t, released, r.hw.releaseCount())
			require.Less(t, r.hw.coilDuty(hour), 0.03)
			// The releases (slot_released, and code_accepted for a code),
			// and per kind of refusal at most two events a minute.
			require.LessOrEqual(t, len(evs), 2*released+tc.kinds*2*int(hour/cfg.RefusalWindow+1))
			require.Positive(t, tally(evs, refusedRelease(tc.name), box.ReasonCoolDown))
			require.Equal(t, released, tally(evs, box.EventSlotRelocked, box.ReasonTimeout), "every relock counted")
		})
	}
}

func refusedRelease(name string) box.EventType {
	if name == "fob of a key that is out" {
		return box.EventReturnRefused
	}
	return box.EventKeyAbsent
}

// TestCoolDownLeavesLegitimateUseAlone: a driver who opens, takes, returns by
// fob and opens again at once is never held back; one who was too slow to
// take their key tries again at once, and if too slow again waits
// ReleaseCoolBase, no more.
func TestCoolDownLeavesLegitimateUseAlone(t *testing.T) {
	t.Run("take, return, take again", func(t *testing.T) {
		r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
		r.newEvents()
		for range 20 {
			r.typeKeys("123456#")
			require.Equal(t, []int{1}, r.hw.openSlots())
			r.sense(1, false)
			r.c.FobScanned("0100000001") // the return, right after the take
			r.c.Flush()
			require.Equal(t, []int{1}, r.hw.openSlots(), "a return by fob works right after a take")
			r.sense(1, true)
			r.advance(typing)
		}
		evs := r.newEvents()
		require.Len(t, ofType(evs, box.EventKeyTaken), 20)
		require.Len(t, ofType(evs, box.EventKeyReturned), 20)
		require.Zero(t, tally(evs, box.EventKeyAbsent, box.ReasonCoolDown))
	})
	t.Run("too slow to take", func(t *testing.T) {
		r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{booking("g1", "123456", "k1")}})
		r.newEvents()
		r.typeKeys("123456#")
		r.advance(r.c.Config().ReleaseTime)
		r.expect(box.EventCodeAccepted, box.EventSlotReleased, box.EventSlotRelocked)
		r.typeKeys("123456#")
		require.Equal(t, []int{1}, r.hw.openSlots(), "a second try at once")
		r.advance(r.c.Config().ReleaseTime)
		r.expect(box.EventCodeAccepted, box.EventSlotReleased) // the relock merged
		r.typeKeys("123456#")
		evs := r.expect(box.EventCodeAccepted, box.EventKeyAbsent)
		require.Equal(t, box.ReasonCoolDown, evs[1].Reason)
		require.Equal(t, r.clock.Now().Add(box.ReleaseCoolBase), evs[1].Until)
		require.Empty(t, r.hw.openSlots())
		r.advance(box.ReleaseCoolBase)
		r.typeKeys("123456#")
		require.Equal(t, []int{1}, r.hw.openSlots(), "opens once rested")
		r.sense(1, false)
		require.Len(t, ofType(r.newEvents(), box.EventKeyTaken), 1)
	})
}

// TestGoodCodeThatOpensNothingIsMerged: an insider types their own code,
// whose key is out, every 2 s for a minute: code_accepted and key_absent are
// merged like any refusal (review finding 5).
func TestGoodCodeThatOpensNothingIsMerged(t *testing.T) {
	dc := box.GrantPut{Grant: box.Grant{ID: "d1", Kind: box.KindDriverCode, DriverRef: "insider", KeyIDs: []string{"k1"}}, Code: "2468"}
	r := newRig(t, box.Config{}, store.Batch{Keys: keys(1), Grants: []box.GrantPut{dc}})
	r.sense(1, false)
	r.newEvents()
	for range 30 {
		r.typeKeys("2468#")
		r.advance(typing)
	}
	evs := r.expect(box.EventCodeAccepted, box.EventKeyAbsent, box.EventRefusalsMerged, box.EventRefusalsMerged)
	require.Equal(t, 29, evs[2].Count)
	require.Equal(t, 29, evs[3].Count)
	require.Equal(t, "d1", evs[3].GrantID)
	require.Zero(t, r.grant("d1").Uses)
}
