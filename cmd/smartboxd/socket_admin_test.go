package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
)

// rawGet is a GET on the socket, its body as the daemon wrote it.
func rawGet(t *testing.T, path, route string) []byte {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", path) }}, Timeout: waitFor}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://smartboxd" + route)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// TestSocketAdmin: the admin socket while a real daemon runs on the sim
// profile and a PIN is typed: the event with its seq, the status with the
// revision, outbox and clock; the grants without their code; a local
// release audited with who, why and the uid, refused while released, and
// the slot relocking when the key leaves.
func TestSocketAdmin(t *testing.T) {
	r := startSocketDaemon(t, nil)
	ctx := t.Context()
	w := startWatch(t, r.c)
	w.until(t, "box_started", func(_ boxsocket.Watch, evs []box.Event) bool { return hasEv(evs, box.EventBoxStarted, 0) })

	before, err := r.c.Status(ctx)
	require.NoError(t, err)
	require.NoError(t, r.c.Press(ctx, testPIN+"#", 0))
	w.until(t, "slot 1 released for the PIN", func(_ boxsocket.Watch, evs []box.Event) bool { return hasEv(evs, box.EventSlotReleased, 1) })
	evs, err := r.c.Events(ctx, before.LastSeq, 0)
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	require.Equal(t, before.LastSeq+1, evs[0].Seq, "the events after the status's last seq, numbered on")
	i := evIndex(evs, box.EventSlotReleased)
	require.GreaterOrEqual(t, i, 0, "%+v", evs)
	require.Equal(t, "booking-1", evs[i].GrantID)

	st, err := r.c.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.Revision, "the seeded import")
	require.GreaterOrEqual(t, st.LastSeq, evs[i].Seq)
	require.Equal(t, int(st.LastSeq), st.Outbox, "offline: every event waits in the outbox")
	require.True(t, st.ClockTrusted)
	require.False(t, st.ClockSynced, "the sim's clock is settable, never NTP's")
	require.True(t, st.LastSync.IsZero() && st.LastAck.IsZero() && st.SyncRefused == "", "offline-only: no cloud heard")

	// The grants: there, and no code anywhere in the raw answer.
	gs, err := r.c.Grants(ctx)
	require.NoError(t, err)
	require.Len(t, gs, 1)
	require.Equal(t, "booking-1", gs[0].ID)
	for _, route := range []string{"/v1/grants", "/v1/status", "/v1/events?limit=500", "/v1/keys", "/v1/slots"} {
		raw := rawGet(t, r.path, route)
		require.NotContains(t, string(raw), testPIN, "%s shows the code", route)
	}

	// Let slot 1 relock (take the key), then release it locally.
	require.NoError(t, r.c.Take(ctx, 1))
	w.until(t, "slot 1 relocked after the take", func(m boxsocket.Watch, evs []box.Event) bool {
		return hasEv(evs, box.EventKeyTaken, 1) && !m.Slots[0].Released
	})
	require.NoError(t, r.c.Release(ctx, 2, boxsocket.ReleaseRequest{By: "alice", Reason: "swap battery"}))
	m := w.until(t, "slot 2 released locally", func(m boxsocket.Watch, evs []box.Event) bool {
		return hasEv(evs, box.EventSlotReleasedLocally, 2) && m.Slots[1].Released
	})
	require.Equal(t, box.PurposeLocal, m.Slots[1].WaitingFor)
	w.mu.Lock()
	rel := w.events[evIndex(w.events, box.EventSlotReleasedLocally)]
	w.mu.Unlock()
	require.Equal(t, fmt.Sprintf("by alice (uid %d): swap battery", os.Getuid()), rel.Detail, "who, the peer's uid and why")
	require.Equal(t, box.PurposeLocal, rel.Purpose)

	// Released already: a 409 that says so.
	err = r.c.Release(ctx, 2, boxsocket.ReleaseRequest{By: "bob", Reason: "again"})
	require.True(t, boxsocket.IsStatus(err, http.StatusConflict), "%v", err)
	require.ErrorContains(t, err, "slot 2 is released already")

	// The key leaves: the slot relocks at once.
	require.NoError(t, r.c.Take(ctx, 2))
	w.until(t, "slot 2 relocked after its key left", func(m boxsocket.Watch, evs []box.Event) bool {
		return hasEv(evs, box.EventKeyTaken, 2) && !m.Slots[1].Released && !m.Slots[1].KeyInSlot
	})
}

// TestSocketReleaseValidation: who and why are required, bounded and
// printable; the slot is a number on the box. Nothing is released.
func TestSocketReleaseValidation(t *testing.T) {
	r := startSocketDaemon(t, nil)
	hc := &http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", r.path) }}, Timeout: waitFor}
	defer hc.CloseIdleConnections()
	post := func(route, body string) (int, string) {
		resp, err := hc.Post("http://smartboxd"+route, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var er boxsocket.ErrorResponse
		_ = json.NewDecoder(resp.Body).Decode(&er)
		return resp.StatusCode, er.Error
	}
	cases := []struct {
		name, route, body string
		code              int
		want              string
	}{
		{"no by", "/v1/slots/1/release", `{"reason":"x"}`, 400, "by is required"},
		{"no reason", "/v1/slots/1/release", `{"by":"alice"}`, 400, "reason is required"},
		{"newline", "/v1/slots/1/release", `{"by":"alice\nFAKE","reason":"x"}`, 400, "unprintable"},
		{"escape", "/v1/slots/1/release", `{"by":"alice","reason":"\u001b[2J"}`, 400, "unprintable"},
		{"long by", "/v1/slots/1/release", `{"by":"` + strings.Repeat("a", boxsocket.MaxReleaseBy+1) + `","reason":"x"}`, 400, "over the 64"},
		{"long reason", "/v1/slots/1/release", `{"by":"a","reason":"` + strings.Repeat("é", boxsocket.MaxReleaseReason+1) + `"}`, 400, "over the 200"},
		{"unknown field", "/v1/slots/1/release", `{"by":"a","reason":"b","slot":3}`, 400, "unknown field"},
		{"no body", "/v1/slots/1/release", ``, 400, "empty"},
		{"slot 0", "/v1/slots/0/release", `{"by":"a","reason":"b"}`, 404, "1..12"},
		{"slot 13", "/v1/slots/13/release", `{"by":"a","reason":"b"}`, 404, "1..12"},
		{"slot x", "/v1/slots/x/release", `{"by":"a","reason":"b"}`, 404, "1..12"},
	}
	for _, c := range cases {
		code, msg := post(c.route, c.body)
		require.Equal(t, c.code, code, c.name)
		require.Contains(t, msg, c.want, c.name)
	}
	slots, err := r.c.Slots(t.Context())
	require.NoError(t, err)
	for _, s := range slots {
		require.False(t, s.Released, "slot %d released by a refused request", s.Slot)
	}
	evs, err := r.c.Events(t.Context(), 0, 0)
	require.NoError(t, err)
	require.Negative(t, evIndex(evs, box.EventSlotReleasedLocally))
}

// TestSocketGroup: --socket-group makes the socket 0660 with that group;
// an unknown group is refused before anything listens.
func TestSocketGroup(t *testing.T) {
	// A group that is not this process's own, if the machine has one and
	// this process may give files to it (root may); else our own.
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	require.NoError(t, err)
	if os.Getuid() == 0 {
		for _, name := range []string{"nogroup", "daemon", "users"} {
			if o, err := user.LookupGroup(name); err == nil {
				g = o
				break
			}
		}
	}
	gid, err := strconv.Atoi(g.Gid)
	require.NoError(t, err)
	old := syscall.Umask(0o002)
	t.Cleanup(func() { syscall.Umask(old) })

	r := startSocketDaemon(t, nil)
	fi, err := os.Stat(r.path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "no group: 0600")

	dir := t.TempDir()
	seedStore(t, dir, "demo-box")
	path := socketPath(t)
	d, err := newDaemon(simConfig(t, dir), daemonOptions{Log: testLogger(t), Socket: path, SocketGroup: g.Name})
	require.NoError(t, err)
	t.Cleanup(d.close)
	fi, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o660), fi.Mode().Perm())
	require.Equal(t, uint32(gid), fi.Sys().(*syscall.Stat_t).Gid)

	_, err = listenSocket(socketPath(t), "no-such-group-smartbox")
	require.ErrorContains(t, err, "--socket-group no-such-group-smartbox")
}

// TestSocketDefaultPath: under systemd (RUNTIME_DIRECTORY set) the socket
// is there by default; else there is none unless --socket says.
func TestSocketDefaultPath(t *testing.T) {
	t.Setenv("RUNTIME_DIRECTORY", "/run/smartbox")
	require.Equal(t, boxsocket.DefaultPath, defaultSocket())
	t.Setenv("RUNTIME_DIRECTORY", "/run/smartbox:/run/other")
	require.Equal(t, boxsocket.DefaultPath, defaultSocket())
	t.Setenv("RUNTIME_DIRECTORY", "")
	require.Empty(t, defaultSocket())
	var out bytes.Buffer
	code := run(t.Context(), []string{"--config", "/nonexistent.toml", "--socket-group", "smartbox"}, nil, &out, &out)
	require.Equal(t, 2, code, out.String())
	require.Contains(t, out.String(), "--socket-group \"smartbox\": there is no socket")
}
