package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/stretchr/testify/require"
)

// TestNotFoundFilter: the bolt hook's "key not found" on a first start is
// left out of the log; its real errors are not.
func TestNotFoundFilter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(notFoundFilter{slog.NewTextHandler(&buf, nil)}).With("hook", "bolt-db")
	log.Error("failed to get data", "error", bolt.ErrKeyNotFound, "key", "SYS")
	require.Empty(t, buf.String())
	log.Error("failed to get data", "error", errors.New("disk on fire"), "key", "SYS")
	require.Contains(t, buf.String(), "disk on fire")
	require.Contains(t, buf.String(), "hook=bolt-db")
}
