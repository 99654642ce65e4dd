package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// benchAssignments is how many assignments BenchmarkWebhookToGrantAtBox
// creates in the fake.
const benchAssignments = 1000

// benchSingles are made one at a time before the burst, each waited for.
const benchSingles = 20

// BenchmarkWebhookToGrantAtBox first makes 20 assignments one at a time
// (single-p50-ms, single-max-ms: the path with nothing queued), then creates
// 1,000 assignments in the fake as fast
// as it takes them; the fake delivers its webhooks to the bridge over HTTP;
// the bridge reads each back, puts the grant in the cloud, writes the custom
// fields back and emails the driver; the cloud pushes the grant to the box
// over MQTT. Latency is from the moment the created webhook reached the
// bridge's server (the fake's send, on loopback) to the moment the grant is
// in the box's own store. A burst: the later assignments wait behind the
// earlier ones in the bridge's queue, which is what p99 and max show.
//
// It runs three times: against a fake Fleetio that answers at once
// (latency=0: the bridge's own cost), one that takes 100 ms per request
// (latency=100ms: a real Fleetio's round trip, about 100-300 ms), and one
// that also allows only 20 requests a minute (latency=100ms,limit=20rpm:
// the figure of an older Fleetio page, its 429s with Retry-After). The
// grant is made from the webhook's payload, so none of them waits on
// Fleetio; the read-backs and write-backs follow within the bridge's
// request budget (bookings.DefaultFleetioPerMinute) and Fleetio's limit,
// after the grant (not measured here). Under the limit the singles are not
// settled between them (their write-backs would take minutes): each waits
// for its grant only.
//
//	go test -run '^$' -bench WebhookToGrantAtBox -benchtime 1x -timeout 30m ./cmd/smartboxd
func BenchmarkWebhookToGrantAtBox(b *testing.B) {
	for _, c := range []struct {
		latency time.Duration
		limit   int // requests a minute the fake Fleetio allows; 0: any
	}{{0, 0}, {100 * time.Millisecond, 0}, {100 * time.Millisecond, 20}} {
		name := "latency=" + c.latency.String()
		if c.limit > 0 {
			name += fmt.Sprintf(",limit=%drpm", c.limit)
		}
		b.Run(name, func(b *testing.B) { benchWebhookToGrantAtBox(b, c.latency, c.limit) })
	}
}

func benchWebhookToGrantAtBox(b *testing.B, latency time.Duration, limit int) {
	for range b.N {
		b.StopTimer()
		rg := startFleetRig(b, rigOptions{quiet: true, latency: latency})
		rg.f.RateLimit(limit)
		seen := watchBoxGrants(b, rg)
		b.StartTimer()

		// First one at a time, each waited for: the latency of the path
		// itself, with no queue in front of it.
		single := make([]time.Duration, 0, benchSingles)
		sbase := time.Now().Add(24 * time.Hour).Truncate(time.Millisecond)
		for i := range benchSingles {
			k := rigKeys[i%len(rigKeys)]
			from := sbase.Add(time.Duration(i) * 2 * time.Hour)
			a := rg.assign(b, k.ID, rg.ada, from, from.Add(time.Hour))
			gid := bookings.GrantID(a.ID)
			require.Eventually(b, func() bool { _, ok := seen.at(gid); return ok }, time.Minute, time.Millisecond)
			sent, ok := rg.arrive.createdAt(a.ID)
			require.True(b, ok)
			at, _ := seen.at(gid)
			single = append(single, at.Sub(sent))
			if limit == 0 {
				rg.settle(b) // its write-back echo too, before the next
			}
		}
		slices.Sort(single)

		start := time.Now()
		ids := rg.assignBurst(b, benchAssignments)
		created := time.Since(start)

		want := make([]string, len(ids))
		for i, id := range ids {
			want[i] = bookings.GrantID(id)
		}
		require.Eventually(b, func() bool { return seen.has(want) }, 15*time.Minute, 50*time.Millisecond,
			"every grant reaches the box")
		total := time.Since(start)
		b.StopTimer()

		lat := make([]time.Duration, 0, len(ids))
		var first, last time.Time
		for _, id := range ids {
			sent, ok := rg.arrive.createdAt(id)
			require.True(b, ok, "created delivery of %d arrived", id)
			at, _ := seen.at(bookings.GrantID(id))
			lat = append(lat, at.Sub(sent))
			if first.IsZero() || sent.Before(first) {
				first = sent
			}
			if sent.After(last) {
				last = sent
			}
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(single[len(single)/2]), "single-p50-ms")
		b.ReportMetric(ms(single[len(single)-1]), "single-max-ms")
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		b.ReportMetric(float64(len(ids))/total.Seconds(), "grants-at-box/s")
		st := rg.b.Stats()
		accepted := rg.arrive.count()
		if span := last.Sub(first); span > 0 {
			// The fake sends one delivery at a time: this is the
			// pipeline's rate (the fake's POST plus the handler).
			b.ReportMetric(float64(len(ids))/span.Seconds(), "created-webhooks/s")
		}
		b.Logf("%d assignments created in %s; all grants at the box after %s; %d deliveries reached the bridge "+
			"(its own PATCH echoes included); stats %+v", len(ids), created, total, accepted, st)
		b.ReportMetric(0, "ns/op") // the figures above say it; one op is a whole burst
	}
}

// assignBurst creates n assignments in the fake as fast as it takes them,
// over the rig's keys in turn, Ada and Bob alternating, and returns their
// ids. Each key's windows (an hour each, from an hour from now) come one
// after another, 2 hours apart, as real bookings do.
func (rg *fleetRig) assignBurst(t testing.TB, n int) []int64 {
	t.Helper()
	ids := make([]int64, 0, n)
	base := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for i := range n {
		k := rigKeys[i%len(rigKeys)]
		c := rg.ada
		if i%2 == 1 {
			c = rg.bob
		}
		from := base.Add(time.Duration(i/len(rigKeys)) * 2 * time.Hour)
		ids = append(ids, rg.assign(t, k.ID, c, from, from.Add(time.Hour)).ID)
	}
	return ids
}

// grantWatch records when each grant first shows in the box's store.
type grantWatch struct {
	mu    gosync.Mutex
	first map[string]time.Time
}

func (w *grantWatch) at(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.first[id]
	return t, ok
}

func (w *grantWatch) has(ids []string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if _, ok := w.first[id]; !ok {
			return false
		}
	}
	return true
}

// watchBoxGrants polls the box's store (every 2 ms: the resolution of the
// latencies) and stamps each grant id the first time it is there. The
// store's revision is cheap to read; the grants are read only when it moved.
func watchBoxGrants(t testing.TB, rg *fleetRig) *grantWatch {
	w := &grantWatch{first: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var rev uint64
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			now := time.Now()
			r, err := rg.d.store.Revision()
			if err != nil || r == rev {
				continue
			}
			gs, err := rg.d.store.Grants()
			if err != nil {
				continue
			}
			rev = r
			w.mu.Lock()
			for _, g := range gs {
				if _, ok := w.first[g.ID]; !ok {
					w.first[g.ID] = now
				}
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.first)
}

// BenchmarkWebhookAcceptedHTTP is the webhook handler's intake over HTTP:
// signed deliveries POSTed by 4 concurrent senders to the bridge's handler
// on a loopback server (each stored durably in bbolt before the 200); the
// worker is not running, so this is the receiving side alone.
//
//	go test -run '^$' -bench WebhookAcceptedHTTP -benchtime 2000x ./cmd/smartboxd
func BenchmarkWebhookAcceptedHTTP(b *testing.B) {
	dir := b.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(b, err)
	cl, err := cloud.Open(cloud.Options{Path: filepath.Join(dir, "cloud.db"), Signer: wire.Signer{KeyID: "k", Key: priv},
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = cl.Close() })
	bk, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(b, err)
	require.NoError(b, cl.RegisterBox(syncBoxID, bk.PublicKey().Bytes()))
	st, err := bookings.OpenStore(filepath.Join(dir, "bookings.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	require.NoError(b, st.SetSettings(bookings.Settings{APIKey: fleetAPIKey, AccountToken: fleetAccount, WebhookSecret: fleetSecret,
		BaseURL: "http://127.0.0.1:1/api"}))
	br, err := bookings.New(bookings.Options{Store: st, Cloud: cl, AccessBaseURL: "http://127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	srv := httptest.NewServer(br.Webhook())
	b.Cleanup(srv.Close)

	deliveries := make([]signedDelivery, b.N)
	for i := range deliveries {
		id := i + 1
		payload := fmt.Sprintf(`{"id":%d,"vehicle_id":1,"contact_id":1,"started_at":"2026-11-03T10:00:00.000-05:00","ended_at":null,"custom_fields":{}}`, id)
		body := []byte(fmt.Sprintf(`{"id":%d,"event":%q,"timestamp":"2026-11-03T10:00:00.000-05:00","triggered_by":null,"payload":%s}`,
			id, fleetio.EventAssignmentCreated, payload))
		deliveries[i] = signedDelivery{body: body, sig: fleetiotest.Sign(fleetSecret, body)}
	}
	b.ResetTimer()
	elapsed := postWebhooks(b, srv.URL+bookings.WebhookPath, deliveries)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "webhooks-accepted/s")
	require.Equal(b, b.N, st.QueueDepth(), "every delivery stored")
}

// webhookSenders is how many deliveries the intake benchmarks POST at once:
// Fleetio sends one at a time per webhook, a few webhooks (accounts, or
// retries beside new deliveries) at once.
const webhookSenders = 4

// signedDelivery is one webhook body and its signature header.
type signedDelivery struct {
	body []byte
	sig  string
}

// senderClient is sender i's HTTP client, dialling from its own loopback
// address (127.0.0.2, .3, ...: Linux answers for all of 127/8): the bridge
// lets one client address read only a couple of bodies at once
// (bookings.DefaultMaxBodiesPerAddress), and Fleetio's deliveries come
// from several servers, not four connections of one.
func senderClient(i int) *http.Client {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
	d := &net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 2}}
}

// postWebhooks POSTs every delivery to url, webhookSenders at a time, and
// returns how long it took; any answer but 200 fails b.
func postWebhooks(b *testing.B, url string, deliveries []signedDelivery) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg gosync.WaitGroup
	errs := make(chan error, webhookSenders)
	clients := make([]*http.Client, webhookSenders)
	for i := range clients {
		clients[i] = senderClient(i)
	}
	start := time.Now()
	for _, client := range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(deliveries)) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(deliveries[i].body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(fleetio.SignatureHeader, deliveries[i].sig)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("delivery %d: status %d", i, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return elapsed
}

// drainBacklog is how many deliveries BenchmarkWebhookAcceptedWhileDraining
// queues at the bridge before it measures: enough that the worker (each
// one a Fleetio read-back, a grant put in the cloud, the custom fields
// written back, an email) is still at them when the b.N measured ones are
// all in.
const drainBacklog = 3000

// BenchmarkWebhookAcceptedWhileDraining is BenchmarkWebhookAcceptedHTTP's
// intake with the bridge busy: the whole bridge service of the rig, its
// worker draining a backlog of drainBacklog created-assignment deliveries
// (each a real booking: the grant goes to the box over the broker) while 4
// senders POST b.N more. The deliveries are the fake Fleetio's own bytes
// (its webhook URL unset, it only logs them): real assignments, signed as
// Fleetio signs. Fails if the backlog ran dry before the last accept.
//
//	go test -run '^$' -bench WebhookAcceptedWhileDraining -benchtime 2000x -timeout 30m ./cmd/smartboxd
func BenchmarkWebhookAcceptedWhileDraining(b *testing.B) {
	rg := startFleetRig(b, rigOptions{quiet: true})
	rg.f.SetWebhookURL("") // the fake logs each delivery and sends none: this benchmark sends them
	n := drainBacklog + b.N
	rg.assignBurst(b, n)
	var deliveries []signedDelivery
	for _, d := range rg.f.Deliveries() {
		if d.Event == fleetio.EventAssignmentCreated {
			deliveries = append(deliveries, signedDelivery{body: d.Body, sig: d.Signature})
		}
	}
	require.Len(b, deliveries, n, "one created delivery per assignment")
	url := rg.svc.WebhookURL()
	postWebhooks(b, url, deliveries[:drainBacklog])
	backlog := rg.store.QueueDepth()
	require.Positive(b, backlog, "a backlog to drain")
	pushed := rg.b.Stats().GrantsPushed

	b.ResetTimer()
	elapsed := postWebhooks(b, url, deliveries[drainBacklog:])
	b.StopTimer()
	left := rg.store.QueueDepth()
	drained := rg.b.Stats().GrantsPushed - pushed
	require.Greater(b, left, 0, "the backlog ran dry before the last accept: raise drainBacklog")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "webhooks-accepted/s")
	b.ReportMetric(float64(drained)/elapsed.Seconds(), "grants-pushed/s")
	b.Logf("backlog %d queued; %d accepted in %s while %d grants were pushed; %d deliveries left", backlog, b.N, elapsed, drained, left)
}
