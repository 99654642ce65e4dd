package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/loadbox"
)

// The end-to-end proof of the bridge as a cloud service (issue 13): three
// replicas on one PostgreSQL and one mosquitto, Fleetio at 100 ms a
// request under a rate limit, 200 boxes, one assignment on each of their
// 1,000 vehicles created in a burst while a replica is SIGKILLed (after
// the 300th) and started again (after the 600th). Every assignment's grant
// reaches its box, and only its box, with the code written back to
// Fleetio; every custom field is written; every event the boxes recorded
// (before, during and after the kill) is stored once.
//
// The rate limit is 1,200 requests a minute, not the 20 of an old Fleetio
// page: each assignment costs its read-back and its write-back, and at 20
// a minute the write-backs of 1,000 would take well over an hour. Grants
// do not wait on Fleetio either way (BenchmarkReplicasWebhookToGrant
// measures them under 20 a minute).
func TestReplicasEndToEnd(t *testing.T) {
	const (
		boxes, rateLimit = 200, 1200
		killAt, startAt  = 300, 600
		eventsEach       = 5
	)
	rg := startReplicaRig(t, replicaRigOptions{Replicas: 3, Boxes: boxes, Latency: 100 * time.Millisecond, RateLimit: rateLimit})
	ctx := context.Background()
	rg.boxEvents(eventsEach, "before the burst")

	victim := rg.reps[1]
	start := time.Now()
	as := rg.assignAll(t, func(i int) {
		switch i {
		case killAt:
			victim.kill()
			rg.boxEvents(eventsEach, "after the kill")
		case startAt:
			require.NoError(t, victim.start(ctx), "the killed replica starts again")
			rg.boxEvents(eventsEach, "after the restart")
		}
	})
	require.Len(t, as, boxes*rigKeysPerBox)
	lat := rg.grantLatencies(t, as, 5*time.Minute)
	t.Logf("%d grants at their boxes %s after the burst began; webhook to grant p50 %s, p99 %s, max %s",
		len(as), time.Since(start).Round(time.Millisecond), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])

	// Every custom field written, the code the box holds.
	unwritten := func() []int64 {
		var out []int64
		for _, a := range as {
			fa, ok := rg.fake.Assignment(a.ID)
			if !ok || customField(fa, fleetio.FieldAccessCode) == "" || customField(fa, fleetio.FieldAccessLink) == "" ||
				customField(fa, fleetio.FieldAccessInstructions) == "" {
				out = append(out, a.ID)
			}
		}
		return out
	}
	// 1,000 read-backs and write-backs at 1,200 a minute, 100 ms each.
	require.Eventually(t, func() bool { return len(unwritten()) == 0 }, 10*time.Minute, 500*time.Millisecond,
		"every assignment's custom fields are written; not yet: %v", unwritten())
	for _, a := range as {
		fa, _ := rg.fake.Assignment(a.ID)
		l := rg.vehicles[a.VehicleID]
		g, ok := rg.boxOf(a.VehicleID).Grants()[bookings.GrantID(a.ID)]
		require.True(t, ok, "assignment %d's grant is at box %s", a.ID, l.box)
		require.Equal(t, customField(fa, fleetio.FieldAccessCode), g.Code, "assignment %d: the code at the box is the one Fleetio shows", a.ID)
		require.Equal(t, []string{l.key}, g.KeyIDs, "assignment %d: its vehicle's key", a.ID)
		require.True(t, strings.HasPrefix(customField(fa, fleetio.FieldAccessLink), rg.proxy.url+"/access/"), "assignment %d's link", a.ID)
	}

	// Exactly once: each box holds the grants of its own assignments, no
	// other, none twice (a map: one per id), none under another id.
	want := map[string][]string{}
	for _, a := range as {
		l := rg.vehicles[a.VehicleID]
		want[l.box] = append(want[l.box], bookings.GrantID(a.ID))
	}
	for _, b := range rg.boxes {
		var have []string
		for id := range b.Grants() {
			have = append(have, id)
		}
		slices.Sort(have)
		w := want[b.ID()]
		slices.Sort(w)
		require.Equal(t, w, have, "box %s holds its assignments' grants and no other", b.ID())
	}

	// Every delivery of the fake reached a replica in the end.
	for _, d := range rg.fake.Deliveries() {
		require.True(t, d.Delivered && !d.GaveUp, "delivery %d (%s) delivered: %+v", d.ID, d.Event, d.Attempts)
	}

	// Every event stored once: each box's outbox acked, the cloud holding
	// seqs 1..last once each.
	for _, b := range rg.boxes {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := b.Wait(wctx, func(s loadbox.Snapshot) bool { return s.Outbox == 0 && s.Acked == s.LastSeq })
		cancel()
		require.NoError(t, err, "box %s's events acked", b.ID())
	}
	admin := rg.admin()
	total := 0
	for _, b := range rg.boxes {
		last := b.State().LastSeq
		require.GreaterOrEqual(t, last, uint64(3*eventsEach), "box %s recorded its events", b.ID())
		var evs []box.Event
		require.NoError(t, admin.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/boxes/%s/events?limit=100000", b.ID()), nil, &evs))
		require.Len(t, evs, int(last), "box %s: every event stored, once", b.ID())
		for i, e := range evs {
			require.Equal(t, uint64(i+1), e.Seq, "box %s: events in order, none twice", b.ID())
		}
		total += len(evs)
	}
	t.Logf("%d events stored once from %d boxes; proxy forwarded %d, failed %d (the kill's in-flight requests, retried by Fleetio)",
		total, len(rg.boxes), rg.proxy.forwarded.Load(), rg.proxy.failed.Load())
}

func customField(a fleetio.VehicleAssignment, k string) string {
	s, _ := a.CustomFields[k].(string)
	return s
}
