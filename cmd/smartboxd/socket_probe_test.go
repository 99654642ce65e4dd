package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/brokertest"
)

// startCloudSocketDaemon runs smartboxd's daemon on sim pins from the
// provisioned store in dir, with [cloud] on the rig's broker, serving its
// socket.
func startCloudSocketDaemon(t *testing.T, r *syncRig, dir string) *socketRig {
	t.Helper()
	pw := writeSecret(t, "mqtt-password", boxPassword+"\n", 0o600)
	cfg, err := boxconfig.LoadConfig(boxConfig(t, dir, "[cloud]\nbroker_url = \""+r.url+"\"\npassword_file = \""+pw+"\"\n"))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	s := &socketRig{path: socketPath(t), done: make(chan error, 1)}
	s.d, err = newDaemon(cfg, daemonOptions{Log: testLogger(t), Socket: s.path, Software: "test-1"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	s.cancel = cancel
	go func() { s.done <- s.d.run(ctx) }()
	s.c = boxsocket.Dial(s.path)
	t.Cleanup(func() {
		s.stop(t)
		s.c.Close()
	})
	return s
}

// waitConnected waits until the daemon says it is connected to the broker.
func waitConnected(t *testing.T, s *socketRig) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := s.c.Status(t.Context())
		return err == nil && st.Cloud == "connected"
	}, waitFor, 20*time.Millisecond)
}

// POST /v1/cloud/probe against the real cloud serving on the embedded
// broker: a box provisioned with the cloud's key passes; one provisioned
// with another key is told so; an offline-only box and a box whose broker
// is down say why.
func TestSocketProbe(t *testing.T) {
	t.Parallel()
	t.Run("the cloud's key", func(t *testing.T) {
		t.Parallel()
		r := startSyncRig(t, brokertest.Mochi)
		s := startCloudSocketDaemon(t, r, r.provisionBox(t))
		waitConnected(t, s)
		res, err := s.c.Probe(t.Context())
		require.NoError(t, err)
		require.Equal(t, "cloud-1", res.KeyID)
		require.Positive(t, res.RTTMS)
		t.Logf("probe round trip through the socket, the broker and the cloud: %.2f ms (key %s)", res.RTTMS, res.KeyID)
	})
	t.Run("another key", func(t *testing.T) {
		t.Parallel()
		r := startSyncRig(t, brokertest.Mochi)
		dir := r.provisionBox(t)
		// The same key id, another bridge's key: what a box provisioned
		// against a test bridge and moved to the real one has.
		other, _, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		st, err := store.Open(filepath.Join(dir, "box.db"), store.Options{BoxID: syncBoxID, Slots: 12, Logger: testLogger(t)})
		require.NoError(t, err)
		require.NoError(t, st.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{"cloud-1": other}, At: time.Now()}))
		require.NoError(t, st.Close())

		s := startCloudSocketDaemon(t, r, dir)
		waitConnected(t, s)
		_, err = s.c.Probe(t.Context())
		var pe *boxsocket.ProbeError
		require.True(t, errors.As(err, &pe), "%v", err)
		require.Equal(t, boxsocket.ProbeBadSignature, pe.Reason)
		require.Contains(t, pe.Message, `signed with cloud key "cloud-1"`)
		require.Contains(t, pe.Message, `this box holds key "cloud-1" (sha256 `)
		t.Log(err)
	})
	t.Run("offline-only", func(t *testing.T) {
		t.Parallel()
		s := startSocketDaemon(t, nil)
		_, err := s.c.Probe(t.Context())
		var pe *boxsocket.ProbeError
		require.True(t, errors.As(err, &pe), "%v", err)
		require.Equal(t, boxsocket.ProbeOfflineOnly, pe.Reason)
	})
	t.Run("broker down", func(t *testing.T) {
		t.Parallel()
		r := startSyncRig(t, brokertest.Mochi)
		dir := r.provisionBox(t)
		r.broker.Stop()
		s := startCloudSocketDaemon(t, r, dir)
		_, err := s.c.Probe(t.Context())
		var pe *boxsocket.ProbeError
		require.True(t, errors.As(err, &pe), "%v", err)
		require.Equal(t, boxsocket.ProbeNotConnected, pe.Reason)
		require.Contains(t, pe.Message, r.url)
	})
}
