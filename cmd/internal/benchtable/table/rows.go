package table

import (
	"time"

	"github.com/smartbox-oss/smartbox/hal/keypad"
)

// fleetioDelay is the latency of BenchmarkWebhookToGrantAtBox's slow
// sub-benchmark (latency=100ms): what a real Fleetio round trip costs, and
// so the floor of any path that must ask Fleetio once.
const fleetioDelay = 100 * time.Millisecond

// ms is a duration in the benchmarks' millisecond metrics.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Rows is the table `make bench` prints: the figures of issue 12, each
// beside the reference it is judged against. A row names its benchmark by
// package and full name (sub-benchmarks after a '/'), and the metric as the
// benchmark reports it (ns/op, B/op, allocs/op or a b.ReportMetric unit).
var Rows = []Row{
	{What: "code check, 100k grants: time", Fig: M("./store", "BenchmarkGrantsByCode", "ns/op"),
		Ref: M("./store", "BenchmarkRawBoltGetHMAC", "ns/op")},
	{What: "code check, 100k grants: allocations", Fig: M("./store", "BenchmarkGrantsByCode", "allocs/op"),
		Ref: M("./store", "BenchmarkRawBoltGetHMAC", "allocs/op")},
	{What: "'#' to lock output on sim pins, mean", Fig: M("./sim", "BenchmarkHashToLockOutput", "ns/op"),
		Ref: Const("keypad.DefaultDebounce", float64(keypad.DefaultDebounce), "ns/op")},
	{What: "'#' to lock output on sim pins, worst", Fig: M("./sim", "BenchmarkHashToLockOutput", "worst-ms"),
		Ref: Const("keypad.DefaultDebounce", ms(keypad.DefaultDebounce), "worst-ms")},
	{What: "100k-grant sync to an empty box", Fig: M("./sync/link", "BenchmarkSync100kGrants", "ns/op"),
		Ref: M("./sync/link", "BenchmarkPahoPublishSameBytes", "ns/op")},
	{What: "event drain from a 10k-event outbox", Fig: M("./sync/link", "BenchmarkDrain10k", "events/s"),
		Ref: M("./sync/link", "BenchmarkFsync", "fsyncs/s")},
	{What: "webhook to grant at box, Fleetio 0 ms, p50", Fig: M("./cmd/smartboxd", "BenchmarkWebhookToGrantAtBox/latency=0s", "p50-ms"),
		Ref: M("./cmd/smartboxd", "BenchmarkAdminGrantToBox", "p50-ms")},
	{What: "webhook to grant at box, Fleetio 0 ms, p99", Fig: M("./cmd/smartboxd", "BenchmarkWebhookToGrantAtBox/latency=0s", "p99-ms"),
		Ref: M("./cmd/smartboxd", "BenchmarkAdminGrantToBox", "p99-ms")},
	{What: "webhook to grant at box, Fleetio 100 ms, p50", Fig: M("./cmd/smartboxd", "BenchmarkWebhookToGrantAtBox/latency=100ms", "p50-ms"),
		Ref: Const("Fleetio delay", ms(fleetioDelay), "p50-ms")},
	{What: "webhook to grant at box, Fleetio 100 ms, p99", Fig: M("./cmd/smartboxd", "BenchmarkWebhookToGrantAtBox/latency=100ms", "p99-ms"),
		Ref: Const("Fleetio delay", ms(fleetioDelay), "p99-ms")},
	{What: "webhook to grant at box, Fleetio 100 ms + 20 req/min, p50", Fig: M("./cmd/smartboxd", "BenchmarkWebhookToGrantAtBox/latency=100ms,limit=20rpm", "p50-ms"),
		Ref: Const("Fleetio delay", ms(fleetioDelay), "p50-ms")},
	{What: "webhook to grant at box, Fleetio 100 ms + 20 req/min, p99", Fig: M("./cmd/smartboxd", "BenchmarkWebhookToGrantAtBox/latency=100ms,limit=20rpm", "p99-ms"),
		Ref: Const("the issue's target", 2000, "p99-ms")},
	{What: "webhooks accepted (HTTP, 4 senders), alone", Fig: M("./cmd/smartboxd", "BenchmarkWebhookAcceptedHTTP", "webhooks-accepted/s"),
		Ref: M("./sync/link", "BenchmarkFsync", "fsyncs/s")},
	{What: "webhooks accepted (HTTP, 4 senders), while draining", Fig: M("./cmd/smartboxd", "BenchmarkWebhookAcceptedWhileDraining", "webhooks-accepted/s"),
		Ref: M("./cmd/smartboxd", "BenchmarkWebhookAcceptedHTTP", "webhooks-accepted/s")},
	{What: "webhooks accepted (handler, in-process)", Fig: M("./sync/bookings", "BenchmarkWebhookAccept", "webhooks/s"),
		Ref: M("./sync/link", "BenchmarkFsync", "fsyncs/s")},
	{What: "smartboxd idle CPU, 100k grants (% of a core, 10 s)", Fig: M("./cmd/smartboxd", "BenchmarkIdle100k", "idle-cpu-%"),
		Ref: M("./cmd/smartboxd", "BenchmarkIdleGoProcess", "idle-cpu-%")},
	{What: "smartboxd resident memory, 100k grants", Fig: M("./cmd/smartboxd", "BenchmarkIdle100k", "rss-MiB"),
		Ref: M("./cmd/smartboxd", "BenchmarkIdleGoProcess", "rss-MiB")},
	{What: "cold start to keypad ready, 100k grants", Fig: M("./cmd/smartboxd", "BenchmarkColdStart100k", "ms/start"),
		Ref: M("./cmd/smartboxd", "BenchmarkColdStartEmpty", "ms/start")},
	// Helper fleet's benchmarks: 1,000 lightweight protocol clients
	// against the bridge.
	{What: "1,000 boxes (8 per address): all current after a broker restart", Fig: M("./sync/loadbox", "BenchmarkReconnectStorm1000", "s/storm"),
		Ref: M("./sync/loadbox", "BenchmarkReconnectStorm1000", "s/connect")},
	{What: "1,000 boxes: events ingested", Fig: M("./sync/loadbox", "BenchmarkEventsIngest1000", "events/s"),
		Ref: M("./sync/loadbox", "BenchmarkEventsIngest1000", "fsyncs/s")},
	// The same two with the bridge's stores on a durable PostgreSQL, each
	// beside its bbolt figure.
	{What: "1,000 boxes (8 per address), stores on PostgreSQL: current after a broker restart", Fig: M("./sync/loadbox", "BenchmarkReconnectStorm1000Postgres", "boxes/s"),
		Ref: M("./sync/loadbox", "BenchmarkReconnectStorm1000", "boxes/s")},
	{What: "1,000 boxes, stores on PostgreSQL: events ingested", Fig: M("./sync/loadbox", "BenchmarkEventsIngest1000Postgres", "events/s"),
		Ref: M("./sync/loadbox", "BenchmarkEventsIngest1000", "events/s")},
	// The bridge as a cloud service (issue 13): real serve processes on
	// PostgreSQL and mosquitto, 200 boxes, Fleetio at 100 ms + 20 req/min.
	{What: "replicas: webhook to grant at box, 1 replica, Fleetio 100 ms + 20 req/min, p99", Fig: M("./cmd/smartbox-bridge", "BenchmarkReplicasWebhookToGrant/replicas=1,limit=20rpm", "p99-ms"),
		Ref: Const("the issue's target", 2000, "p99-ms")},
	{What: "replicas: webhook to grant at box, 3 replicas, Fleetio 100 ms + 20 req/min, p50", Fig: M("./cmd/smartbox-bridge", "BenchmarkReplicasWebhookToGrant/replicas=3,limit=20rpm", "p50-ms"),
		Ref: M("./cmd/smartbox-bridge", "BenchmarkReplicasWebhookToGrant/replicas=1,limit=20rpm", "p50-ms")},
	{What: "replicas: webhook to grant at box, 3 replicas, Fleetio 100 ms + 20 req/min, p99", Fig: M("./cmd/smartbox-bridge", "BenchmarkReplicasWebhookToGrant/replicas=3,limit=20rpm", "p99-ms"),
		Ref: Const("the issue's target", 2000, "p99-ms")},
}

// Fixed run counts (go test -benchtime Nx) of the benchmarks whose one op
// is a whole scenario (a burst, a start, a sync): go's time-based benchtime
// would run such a benchmark once to predict and then again, doubling a
// run of minutes for no better figure. The others run for BENCHTIME each.
var Runs = map[string]int{
	// 20 presses: enough for a mean and a worst, at about a second each.
	"./sim BenchmarkHashToLockOutput": 20,
	// A few seconds each: three runs average out a loaded machine.
	"./sync/link BenchmarkSync100kGrants":       3,
	"./sync/link BenchmarkPahoPublishSameBytes": 3,
	"./sync/link BenchmarkDrain10k":             3,
	// One burst of 1,000 assignments is the op, and its p50/p99 are
	// over the 1,000: one run says it.
	"./cmd/smartboxd BenchmarkWebhookToGrantAtBox": 1,
	"./cmd/smartboxd BenchmarkAdminGrantToBox":     1,
	// 2,000 deliveries: a rate over seconds, not milliseconds.
	"./cmd/smartboxd BenchmarkWebhookAcceptedHTTP":          2000,
	"./cmd/smartboxd BenchmarkWebhookAcceptedWhileDraining": 2000,
	// One 10-second window is the op.
	"./cmd/smartboxd BenchmarkIdle100k":      1,
	"./cmd/smartboxd BenchmarkIdleGoProcess": 1,
	// Five starts: a mean and a max.
	"./cmd/smartboxd BenchmarkColdStart100k":  5,
	"./cmd/smartboxd BenchmarkColdStartEmpty": 5,
	// A 1,000-box scenario is the op.
	"./sync/loadbox BenchmarkReconnectStorm1000":         1,
	"./sync/loadbox BenchmarkEventsIngest1000":           1,
	"./sync/loadbox BenchmarkReconnectStorm1000Postgres": 1,
	"./sync/loadbox BenchmarkEventsIngest1000Postgres":   1,
	// One burst of 1,000 assignments on the replica rig is the op.
	"./cmd/smartbox-bridge BenchmarkReplicasWebhookToGrant": 1,
}
