package bridge_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"github.com/smartbox-oss/smartbox/sync/link"
)

// adminCall sends one admin API request with the service's token and
// decodes the answer into out; it fails the test on anything but 200.
func adminCall(t *testing.T, s *bridge.Service, method, path string, in, out any) {
	t.Helper()
	body, err := json.Marshal(in)
	require.NoError(t, err)
	req, err := http.NewRequest(method, s.AdminURL()+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var raw json.RawMessage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&raw))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out))
	}
}

// TestBoxSyncsThroughInProcessBridge starts a whole bridge from the library
// on free ports (embedded broker), and a box as smartboxd wires it (a bbolt
// store and a sync link): a grant put through the admin API lands in the
// box's store, and an event the box records reaches the cloud.
func TestBoxSyncsThroughInProcessBridge(t *testing.T) {
	const (
		boxID    = "depot-1"
		password = "depot-1-mqtt-secret"
		code     = "48213579"
	)
	ctx := t.Context()
	s, err := bridge.Start(ctx, bridge.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.True(t, strings.HasPrefix(s.BrokerURL(), "tcp://127.0.0.1:"), s.BrokerURL())

	// The box is provisioned with the bridge's signing key, as
	// `smartboxctl provision` does with the line serve prints.
	kid, pub64, ok := strings.Cut(s.SigningKeyLine(), "=")
	require.True(t, ok)
	pub, err := base64.StdEncoding.DecodeString(pub64)
	require.NoError(t, err)
	st, err := store.Open(filepath.Join(t.TempDir(), "box.db"), store.Options{BoxID: boxID, Slots: 12, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{kid: pub}}))
	boxPub, err := st.SyncPublicKey()
	require.NoError(t, err)

	var info adminapi.BoxInfo
	adminCall(t, s, http.MethodPost, "/v1/boxes", adminapi.RegisterBoxRequest{ID: boxID,
		PublicKey: base64.StdEncoding.EncodeToString(boxPub), Password: password, Slots: 12}, &info)
	require.True(t, info.HasPassword)
	adminCall(t, s, http.MethodPut, "/v1/boxes/"+boxID+"/keys/van-7", bridge.PutKeyRequest{FobUID: "0100073400", Slot: 3}, nil)
	var rev bridge.RevisionResponse
	adminCall(t, s, http.MethodPut, "/v1/boxes/"+boxID+"/grants/booking-1", bridge.PutGrantRequest{
		Kind: box.KindBooking, Code: code, KeyIDs: []string{"van-7"}, MaxUses: 2}, &rev)
	require.Equal(t, uint64(2), rev.Revision)

	// The box connects once the cloud listens for it: its first sync
	// request is answered, not left for its resend.
	select {
	case <-s.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("the cloud never subscribed to the box topics")
	}
	l, err := link.New(link.Options{BoxID: boxID, BrokerURL: s.BrokerURL(), Username: boxID, Password: password,
		Store: st, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	lctx, lcancel := context.WithCancel(ctx)
	ldone := make(chan error, 1)
	go func() { ldone <- l.Run(lctx) }()
	t.Cleanup(func() {
		lcancel()
		<-ldone
	})

	require.Eventually(t, func() bool {
		gs, err := st.GrantsByCode(code)
		return err == nil && len(gs) == 1 && gs[0].ID == "booking-1" && gs[0].MaxUses == 2
	}, 15*time.Second, 10*time.Millisecond, "the grant reaches the box's store")

	// An event the box records (a key taken with the grant) goes out with
	// the next drain and is stored by the cloud.
	_, err = st.Commit(box.Change{UseGrants: []string{"booking-1"}, Events: []box.Event{{Time: time.Now(),
		Type: box.EventKeyTaken, Slot: 3, KeyID: "van-7", GrantID: "booking-1"}}})
	require.NoError(t, err)
	l.Kick()
	require.Eventually(t, func() bool {
		evs, err := s.Cloud().Events(boxID, 0, 100)
		if err != nil {
			return false
		}
		for _, e := range evs {
			if e.Type == box.EventKeyTaken && e.GrantID == "booking-1" && e.KeyID == "van-7" {
				return true
			}
		}
		return false
	}, 15*time.Second, 10*time.Millisecond, "the box's key_taken reaches the cloud")

	// The same, as the admin API tells it.
	var evs []box.Event
	adminCall(t, s, http.MethodGet, "/v1/boxes/"+boxID+"/events", nil, &evs)
	require.NotEmpty(t, evs)
}
