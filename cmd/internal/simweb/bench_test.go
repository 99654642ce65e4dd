package simweb

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
)

// BenchmarkState is what one stream does at each change: build the State
// and encode it. It reports the message's size, which every open tab gets
// up to 1/StreamEvery times a second.
func BenchmarkState(b *testing.B) {
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("boxes=%d", n), func(b *testing.B) {
			d, _ := newFakeDepot(b)
			one := d.boxes[0]
			d.boxes = nil
			for i := range n {
				v := one
				v.ID = fmt.Sprintf("b%d", i+1)
				d.boxes = append(d.boxes, v)
			}
			evs := make([]box.Event, depot.MaxEventsKept)
			for i := range evs {
				evs[i] = box.Event{Seq: uint64(i + 1), Type: box.EventCodeRefused, Reason: box.ReasonUnknownCode, Failures: 1}
			}
			d.events["b1"] = evs
			s := New(d, Options{})
			ctx := context.Background()
			var size int
			b.ReportAllocs()
			for b.Loop() {
				msg, err := json.Marshal(s.state(ctx, d.Boxes(), "b1"))
				if err != nil {
					b.Fatal(err)
				}
				size = len(msg)
			}
			b.ReportMetric(float64(size), "bytes/state")
		})
	}
}
