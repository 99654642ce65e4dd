package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bridge"
)

// adminGrantWait bounds the wait for the whole burst at the box.
const adminGrantWait = 15 * time.Minute

// BenchmarkAdminGrantToBox is BenchmarkWebhookToGrantAtBox's reference:
// the same rig (a real broker, the whole bridge service, a smartboxd
// daemon on sim pins), but benchAssignments grants put one after another
// through the bridge's admin API (PUT /v1/boxes/{box}/grants/{grant}) as
// fast as it answers, so no Fleetio round trip, no booking, no email.
// Latency is from just before each PUT to the moment the grant is in the
// box's own store. What the webhook path adds to this is Fleetio's and the
// booking's.
//
//	go test -run '^$' -bench AdminGrantToBox -benchtime 1x -timeout 30m ./cmd/smartboxd
func BenchmarkAdminGrantToBox(b *testing.B) {
	for range b.N {
		b.StopTimer()
		rg := startFleetRig(b, rigOptions{quiet: true})
		seen := watchBoxGrants(b, rg)
		admin := rg.svc.AdminClient()
		b.StartTimer()

		start := time.Now()
		sent := make([]time.Time, benchAssignments)
		ids := make([]string, benchAssignments)
		base := time.Now().Add(time.Hour).Truncate(time.Second)
		for i := range benchAssignments {
			k := rigKeys[i%len(rigKeys)]
			// Windows one after another per key, as the webhook
			// benchmark's bookings are; distinct 8-digit codes.
			from := base.Add(time.Duration(i/len(rigKeys)) * 2 * time.Hour)
			req := bridge.PutGrantRequest{Kind: box.KindBooking, Code: fmt.Sprintf("%08d", 30_000_000+i*7919),
				KeyIDs: []string{k.ID}, From: from, Until: from.Add(time.Hour)}
			ids[i] = fmt.Sprintf("admin-%04d", i)
			sent[i] = time.Now()
			var resp bridge.RevisionResponse
			require.NoError(b, admin.Do(context.Background(), http.MethodPut, "/v1/boxes/"+syncBoxID+"/grants/"+ids[i], req, &resp))
		}
		put := time.Since(start)
		require.Eventually(b, func() bool { return seen.has(ids) }, adminGrantWait, 50*time.Millisecond,
			"every grant reaches the box")
		total := time.Since(start)
		b.StopTimer()

		lat := make([]time.Duration, len(ids))
		for i, id := range ids {
			at, _ := seen.at(id)
			lat[i] = at.Sub(sent[i])
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		b.ReportMetric(float64(len(ids))/total.Seconds(), "grants-at-box/s")
		b.Logf("%d grants put in %s; all at the box after %s", len(ids), put, total)
		b.ReportMetric(0, "ns/op") // the figures above say it; one op is a whole burst
	}
}
