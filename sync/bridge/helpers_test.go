package bridge

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// boltOnly skips a test about the bbolt engine's files (the data
// directory's stores and secret files) when the suite runs on PostgreSQL,
// where those live in the database; why names what the test checks.
func boltOnly(t *testing.T, why string) {
	t.Helper()
	if pgtest.Engine() == pgtest.Postgres {
		t.Skipf("bbolt engine only: %s", why)
	}
}

// logBuffer collects a service's logs for a test to search; the service
// writes from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testBridge is a whole bridge started in-process on free loopback ports
// (every listen address "" is 127.0.0.1:0), closed when the test ends.
type testBridge struct {
	*Service
	dir string
	log *logBuffer
}

// dataDBs maps a test's data directory to its database, on PostgreSQL.
var dataDBs sync.Map

// startTest starts a bridge with o, in a fresh data dir unless o names one,
// logging at debug into a buffer.
func startTest(t *testing.T, o Options) *testBridge {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Store.URL == "" && pgtest.Engine() == pgtest.Postgres {
		// A restart on the same data directory is a restart on the
		// same database.
		url, ok := dataDBs.Load(o.DataDir)
		if !ok {
			url, _ = dataDBs.LoadOrStore(o.DataDir, pgtest.New(t))
		}
		o.Store.URL = url.(string)
	}
	logs := &logBuffer{}
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Start(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return &testBridge{Service: s, dir: o.DataDir, log: logs}
}
