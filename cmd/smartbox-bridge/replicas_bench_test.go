package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// BenchmarkReplicasWebhookToGrant is issue 13's figure: webhook to grant
// applied at the box, p50/p99 over a burst of 1,000 assignments (one on
// each vehicle of 200 boxes) with Fleetio at 100 ms a request and a limit
// of 20 requests a minute (the bridge's own budget set to the same), on
// the replica rig (replicas_rig_test.go: real `smartbox-bridge serve`
// processes, PostgreSQL, mosquitto), with 1 and with 3 replicas; and the
// same with no limit (limit=0: the bridge's default budget). Latency
// is from the created webhook's first arrival at the reverse proxy to the
// grant's first application at its box. The grant is made from the signed
// webhook's payload: the read-backs and write-backs wait for the request
// budget after it, and are not waited for here (at 20 a minute they take
// over an hour).
//
//	go test -run '^$' -bench ReplicasWebhookToGrant -benchtime 1x -timeout 30m ./cmd/smartbox-bridge
func BenchmarkReplicasWebhookToGrant(b *testing.B) {
	for _, c := range []struct{ replicas, limit int }{{1, 20}, {3, 20}, {1, 0}, {3, 0}} {
		name := fmt.Sprintf("replicas=%d", c.replicas)
		if c.limit > 0 {
			name += fmt.Sprintf(",limit=%drpm", c.limit)
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				rg := startReplicaRig(b, replicaRigOptions{Replicas: c.replicas, Boxes: 200, Latency: 100 * time.Millisecond, RateLimit: c.limit})
				b.StartTimer()
				start := time.Now()
				as := rg.assignAll(b, nil)
				created := time.Since(start)
				lat := rg.grantLatencies(b, as, 15*time.Minute)
				total := time.Since(start)
				b.StopTimer()
				reportWebhookToGrant(b, rg, as, lat, created, total)
			}
		})
	}
}

func reportWebhookToGrant(b *testing.B, rg *replicaRig, as []fleetio.VehicleAssignment, lat []time.Duration, created, total time.Duration) {
	var first, last time.Time
	for _, a := range as {
		at, _ := rg.proxy.createdAt(a.ID)
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	// The two halves: webhook to grant pushed (the bridge), pushed to
	// applied (the broker and the box).
	pushed := rg.grantsPushed(b)
	var in, out []time.Duration
	for _, a := range as {
		at, _ := rg.proxy.createdAt(a.ID)
		p, ok := pushed[a.ID]
		seen, _ := rg.boxOf(a.VehicleID).GrantSeen(bookings.GrantID(a.ID))
		if ok && !p.IsZero() {
			in, out = append(in, p.Sub(at)), append(out, seen.Sub(p))
		}
	}
	slices.Sort(in)
	slices.Sort(out)
	if len(in) > 0 {
		b.ReportMetric(ms(in[len(in)/2]), "to-pushed-p50-ms")
		b.ReportMetric(ms(in[len(in)*99/100]), "to-pushed-p99-ms")
		b.ReportMetric(ms(out[len(out)/2]), "pushed-to-box-p50-ms")
		b.ReportMetric(ms(out[len(out)*99/100]), "pushed-to-box-p99-ms")
	}
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(len(as))/total.Seconds(), "grants-at-box/s")
	if span := last.Sub(first); span > 0 {
		b.ReportMetric(float64(len(as))/span.Seconds(), "created-webhooks/s")
	}
	b.Logf("%d assignments created in %s; created webhooks reached the proxy over %s; all grants at their boxes after %s",
		len(as), created.Round(time.Millisecond), last.Sub(first).Round(time.Millisecond), total.Round(time.Millisecond))
	b.ReportMetric(0, "ns/op") // one op is a whole burst
}
