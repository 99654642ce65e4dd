package link_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/brokertest"
	"github.com/smartbox-oss/smartbox/sync/link"
)

// panicOn is a log handler that panics on a message containing its text:
// a fault inside one of paho's callbacks.
type panicOn struct{ msg string }

func (h panicOn) Enabled(context.Context, slog.Level) bool { return true }
func (h panicOn) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		panic("fault in " + r.Message)
	}
	return nil
}
func (h panicOn) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicOn) WithGroup(string) slog.Handler      { return h }

// Paho calls the link's handlers on goroutines of its own, which the
// caller's Run (and its fail-secure defers) does not cover: each runs under
// Options.Guard, so a panic in one reaches the caller's guard (smartboxd's
// de-energises the locks there). Without it the panic below would end the
// test binary.
func TestGuardRunsPahoCallbacks(t *testing.T) {
	var guarded atomic.Int64
	panics := make(chan any, 4)
	guard := func(f func()) {
		guarded.Add(1)
		defer func() {
			if r := recover(); r != nil {
				panics <- r
			}
		}()
		f()
	}
	// No cloud: nothing but the link's own callbacks on the broker.
	b := brokertest.Start(t, brokertest.Mochi, brokertest.Options{})
	st := openBox(t, filepath.Join(t.TempDir(), "box.db"))
	l := startLink(t, b, st, func(o *link.Options) {
		o.Guard = guard
		o.Logger = slog.New(panicOn{msg: "connection lost"})
	})
	require.Eventually(t, l.Connected, waitFor, 10*time.Millisecond)
	require.Positive(t, guarded.Load(), "the connect handler ran under the guard")

	b.Restart(t) // paho's connection-lost handler runs, and its log panics
	select {
	case r := <-panics:
		require.Equal(t, "fault in sync: connection lost", r)
	case <-time.After(waitFor):
		t.Fatal("the connection-lost handler's panic never reached the guard")
	}
}
