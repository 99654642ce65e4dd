package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// The demo's fleet-manager commands: assign waits for the Keycafe fields a
// bridge writes back (here the test writes them through the API, as the
// bridge would) and prints them; unassign deletes.
func TestAssignAndUnassign(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--api-key", "k", "--account-token", "t", "--seed"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	base := strings.TrimSpace(line)

	c, err := fleetio.New(fleetio.Options{BaseURL: base + "/api", APIKey: "k", AccountToken: "t"})
	require.NoError(t, err)
	// The "bridge": fill the fields of any assignment that has none. It is
	// stopped before the fake, and the clients' idle connections closed: a
	// connection dialled for a request that another one then served, or
	// for a request cancelled mid-dial, never sends a request, and the
	// fake's Shutdown waits 5 s for such a connection before giving up.
	stopBridge, bridgeDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(bridgeDone)
		bctx := context.Background()
		for {
			as, _ := c.ListVehicleAssignments(bctx, fleetio.AssignmentFilter{})
			for _, a := range as {
				if v, _ := a.CustomFields[fleetio.FieldAccessCode].(string); v == "" {
					_, _ = c.PatchAssignmentCustomFields(bctx, a.ID, map[string]any{
						fleetio.FieldAccessCode: "583920", fleetio.FieldAccessLink: "http://bridge/access/x",
						fleetio.FieldAccessInstructions: "Type the PIN and #"})
				}
			}
			select {
			case <-stopBridge:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	var out bytes.Buffer
	require.NoError(t, runManager(ctx, "assign", []string{"--url", base, "--api-key", "k", "--account-token", "t",
		"--vehicle", "1", "--contact", "4", "--hours", "2", "--wait", "10s"}, &out, io.Discard))
	require.Contains(t, out.String(), "assignment 6: vehicle 1 to contact 4")
	require.Contains(t, out.String(), "keycafe_access_code: 583920")
	require.Contains(t, out.String(), "keycafe_access_link: http://bridge/access/x")

	out.Reset()
	require.NoError(t, runManager(ctx, "unassign", []string{"--url", base, "--api-key", "k", "6"}, &out, io.Discard))
	require.Contains(t, out.String(), "assignment 6 deleted")
	_, err = c.FindVehicleAssignment(ctx, 1, 6)
	require.ErrorIs(t, err, fleetio.ErrNotFound)

	// Usage and control-API errors say what was wrong.
	err = runManager(ctx, "assign", []string{"--url", base, "--api-key", "k", "--vehicle", "1"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "--vehicle and --contact are required")
	err = runManager(ctx, "assign", []string{"--url", base, "--api-key", "wrong", "--vehicle", "1", "--contact", "4", "--wait", "0"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "401")
	err = runManager(ctx, "unassign", []string{"--url", base, "--api-key", "k", "999"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "404")

	close(stopBridge)
	<-bridgeDone
	http.DefaultClient.CloseIdleConnections()
	cancel()
	require.NoError(t, <-done)
}
