package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

func TestRunServesSeedAndControl(t *testing.T) {
	var hooks atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks.Add(1)
	}))
	defer rcv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--api-key", "k", "--account-token", "t", "--seed",
			"--webhook-url", rcv.URL, "--webhook-secret", "s", "--retry-intervals", "10ms"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	base := strings.TrimSpace(line)
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)

	call := func(method, path, body string, fleetioAuth bool) (int, []byte) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Token k")
		if fleetioAuth {
			req.Header.Set("Account-Token", "t")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	status, b := call("GET", "/api/v1/vehicles", "", true)
	require.Equal(t, 200, status, "%s", b)
	var page fleetio.CursorPage[fleetio.Vehicle]
	require.NoError(t, json.Unmarshal(b, &page))
	require.Len(t, page.Records, 3)
	status, b = call("GET", "/api/v2/contacts?filter[email][eq]=ada@example.com", "", true)
	require.Equal(t, 200, status, "%s", b)
	var contacts fleetio.CursorPage[fleetio.Contact]
	require.NoError(t, json.Unmarshal(b, &contacts))
	require.Len(t, contacts.Records, 1)

	body := `{"vehicle_id":` + jsonInt(page.Records[0].ID) + `,"contact_id":` + jsonInt(contacts.Records[0].ID) + `,"started_at":"` + time.Now().Format(time.RFC3339) + `","ended_at":null}`
	status, b = call("POST", "/_fake/vehicle_assignments", body, false)
	require.Equal(t, 201, status, "%s", b)
	var a fleetio.VehicleAssignment
	require.NoError(t, json.Unmarshal(b, &a))
	require.True(t, a.Current)
	require.Contains(t, a.CustomFields, fleetio.FieldAccessCode)

	status, _ = call("PATCH", "/_fake/vehicle_assignments/"+jsonInt(a.ID), `{"ended_at":"`+time.Now().Add(time.Hour).Format(time.RFC3339)+`"}`, false)
	require.Equal(t, 200, status)
	status, _ = call("PATCH", "/_fake/vehicle_assignments/999999", `{}`, false)
	require.Equal(t, 404, status)
	status, _ = call("POST", "/_fake/vehicle_assignments", `{"vehicle_id":1,"colour":"red"}`, false)
	require.Equal(t, 400, status)
	status, _ = call("DELETE", "/_fake/vehicle_assignments/"+jsonInt(a.ID), "", false)
	require.Equal(t, 200, status)
	require.Eventually(t, func() bool { return hooks.Load() == 3 }, 5*time.Second, 5*time.Millisecond)

	// The webhook can be pointed elsewhere at run time; a bad URL is refused.
	status, _ = call("PUT", "/_fake/webhook", `{"url":"ftp://x"}`, false)
	require.Equal(t, 400, status)
	status, _ = call("PUT", "/_fake/webhook", `{"url":"`+rcv.URL+`/again"}`, false)
	require.Equal(t, 200, status)

	status, b = call("GET", "/_fake/deliveries", "", false)
	require.Equal(t, 200, status)
	var dl []map[string]any
	require.NoError(t, json.Unmarshal(b, &dl))
	require.Len(t, dl, 3)

	req, _ := http.NewRequest("GET", base+"/_fake/deliveries", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestRunFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no key", []string{"--account-token", "t"}, "--api-key"},
		{"bad retry", []string{"--api-key", "k", "--account-token", "t", "--retry-intervals", "soon"}, "--retry-intervals"},
		{"bad listen", []string{"--api-key", "k", "--account-token", "t", "--listen", "nowhere"}, "--listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// A mistake on the command line exits 2 and says what it was; -h exits 0;
// a fake that cannot serve exits 1, as the kit's other commands do.
func TestExitCodes(t *testing.T) {
	creds := []string{"--api-key", "k", "--account-token", "t"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // on stderr
	}{
		{"no arguments", nil, 2, "usage: fake-fleetio"},
		{"help", []string{"-h"}, 0, "usage: fake-fleetio"},
		{"serve help", []string{"serve", "-h"}, 0, "-retry-intervals"},
		{"flag help", []string{"--listen", "x", "-h"}, 0, "-retry-intervals"},
		{"unknown command", []string{"nope"}, 2, `unknown command "nope"`},
		{"unknown flag", []string{"--colour", "red"}, 2, "flag provided but not defined: -colour"},
		{"no key", []string{"--account-token", "t"}, 2, "fake-fleetio serve: --api-key and --account-token are required"},
		{"bad retry", append(creds, "--retry-intervals", "soon"), 2, `--retry-intervals: "soon" is not a duration`},
		{"stray argument", append(creds, "extra"), 2, `unexpected argument "extra"`},
		{"bad listen", append(creds, "--listen", "nowhere"), 1, "fake-fleetio serve: --listen nowhere"},
		{"assign no key", []string{"assign", "--vehicle", "1", "--contact", "4"}, 2, "fake-fleetio assign: --api-key is required"},
		{"assign no vehicle", []string{"assign", "--api-key", "k", "--contact", "4"}, 2, "fake-fleetio assign: --vehicle and --contact are required"},
		{"assign help", []string{"assign", "-h"}, 0, "-vehicle"},
		{"unassign no id", []string{"unassign", "--api-key", "k"}, 2, "fake-fleetio unassign: give the assignment id"},
		{"unassign unreachable", []string{"unassign", "--url", "http://127.0.0.1:1", "--api-key", "k", "6"}, 1, "fake-fleetio unassign: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := runMain(context.Background(), tc.args, &stdout, &stderr)
			require.Equal(t, tc.code, code, "stderr: %s", stderr.String())
			require.Contains(t, stderr.String(), tc.want)
			require.Empty(t, stdout.String())
		})
	}
}
