package depot_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/sim/netcut"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
)

// waitFor bounds every wait here: a real process, a real broker.
const waitFor = 30 * time.Second

// TestDepot runs two boxes against one bridge and plays the simulator's
// faults on them: a box that dies on its own is shown dead while the other
// keeps working, power and network come and go, the bridge restarts.
func TestDepot(t *testing.T) {
	ctx := t.Context()
	d, err := depot.Start(ctx, depot.Options{Dir: t.TempDir(), Boxes: 2, Smartboxd: depottest.Smartboxd(t)})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = d.Close()
		}
	})

	views := d.Boxes()
	require.Len(t, views, 2)
	fobs := map[string]bool{}
	for _, v := range views {
		require.Equal(t, depot.ProcessRunning, v.Process, v.ID)
		require.Equal(t, depot.PowerOn, v.Power)
		require.Len(t, v.Keys, depot.SlotsPerBox)
		for _, k := range v.Keys {
			require.False(t, fobs[k.FobUID], "fob %s twice", k.FobUID)
			fobs[k.FobUID] = true
		}
	}
	view := func(id string) depot.BoxView {
		for _, v := range d.Boxes() {
			if v.ID == id {
				return v
			}
		}
		t.Fatalf("no box %s", id)
		return depot.BoxView{}
	}
	connected := func(id string) func() bool {
		return func() bool {
			v := view(id)
			return v.State != nil && v.State.Status.Cloud == "connected"
		}
	}
	require.Eventually(t, connected("box-1"), waitFor, 10*time.Millisecond)
	require.Eventually(t, connected("box-2"), waitFor, 10*time.Millisecond)

	// Unknown boxes and bad requests.
	require.ErrorIs(t, d.Press(ctx, "box-9", "1#"), depot.ErrUnknownBox)
	require.ErrorIs(t, d.SetNetwork("box-9", netcut.Reset), depot.ErrUnknownBox)
	require.ErrorIs(t, d.SetClock(ctx, "box-1", boxsocket.ClockRequest{}), depot.ErrInvalid)

	// box-2 dies on its own (as a crash would): shown dead, with why;
	// box-1 goes on.
	pid := view("box-2").PID
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return view("box-2").Process == depot.ProcessExited }, waitFor, 10*time.Millisecond)
	require.Contains(t, view("box-2").Exit, "ended by signal 9")
	require.Contains(t, view("box-2").Exit, "its log ends:\n", "a dead box shows the end of its log")
	require.Equal(t, -1, view("box-2").ExitCode)
	for _, s := range view("box-2").State.Slots {
		require.False(t, s.Released, "a dead box has no energised lock")
	}
	require.Equal(t, "not running", view("box-2").State.Status.Cloud)
	require.ErrorIs(t, d.Press(ctx, "box-2", "1#"), depot.ErrBoxDown)
	require.NoError(t, d.Press(ctx, "box-1", "12*"))

	// Power back: the same store, a restart counted.
	require.NoError(t, d.SetPower(ctx, "box-2", true))
	require.Equal(t, depot.ProcessRunning, view("box-2").Process)
	require.Equal(t, 1, view("box-2").Restarts)
	require.Eventually(t, connected("box-2"), waitFor, 10*time.Millisecond)

	// The network cut and back.
	require.NoError(t, d.SetNetwork("box-1", netcut.Reset))
	require.True(t, view("box-1").NetworkCut)
	require.Eventually(t, func() bool { return !connected("box-1")() }, waitFor, 10*time.Millisecond)
	require.NoError(t, d.SetNetwork("box-1", 0))
	require.Eventually(t, connected("box-1"), waitFor, 10*time.Millisecond)

	// The clock two hours ahead, then right again.
	require.NoError(t, d.SetClock(ctx, "box-1", boxsocket.ClockRequest{At: time.Now().Add(2 * time.Hour)}))
	require.InDelta(t, 7200, view("box-1").ClockOffsetS, 5)
	require.NoError(t, d.SetClock(ctx, "box-1", boxsocket.ClockRequest{Reset: true}))
	require.Zero(t, view("box-1").ClockOffsetS)

	// Ada hears of the seeded booking.
	require.Eventually(t, func() bool {
		for _, m := range d.Inbox() {
			if m.Channel == "email" && strings.Contains(m.To, "ada@depot.example") && m.Subject != "" {
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond)

	// The bridge (and its broker) restart: both boxes come back.
	require.NoError(t, d.RestartBroker(ctx))
	require.True(t, d.BrokerUp())
	require.Eventually(t, connected("box-1"), waitFor, 10*time.Millisecond)
	require.Eventually(t, connected("box-2"), waitFor, 10*time.Millisecond)

	// Close stops every box in order: each relocks and says so.
	require.NoError(t, d.Close())
	closed = true
	for _, v := range d.Boxes() {
		require.Equal(t, depot.ProcessExited, v.Process)
		log, err := os.ReadFile(filepath.Join(d.Dir(), "boxes", v.ID, "smartboxd.log"))
		require.NoError(t, err)
		require.Contains(t, string(log), "every slot relocked", v.ID)
	}
}

// TestBoxLogsInWithItsCertificate: a box the depot provisioned (the real
// smartboxctl provision) reaches the broker's TLS listener through its
// proxy and logs in with its client certificate: the bridge knows the
// certificate, no password exists for it, none is on its card.
func TestBoxLogsInWithItsCertificate(t *testing.T) {
	ctx := t.Context()
	d, err := depot.Start(ctx, depot.Options{Dir: t.TempDir(), Boxes: 1, Smartboxd: depottest.Smartboxd(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	require.Eventually(t, func() bool {
		v := d.Boxes()[0]
		return v.State != nil && v.State.Status.Cloud == "connected"
	}, waitFor, 10*time.Millisecond)

	var boxes []adminapi.BoxInfo
	require.NoError(t, d.Admin().Do(ctx, http.MethodGet, "/v1/boxes", nil, &boxes))
	require.Len(t, boxes, 1)
	info := boxes[0]
	require.Equal(t, "box-1", info.ID)
	require.False(t, info.HasPassword, "a provisioned box has no broker password")
	require.True(t, info.CertNotAfter.After(time.Now()), "the bridge issued the box a certificate: %+v", info)
	require.Equal(t, depot.SlotsPerBox, info.Slots)
	require.NotEmpty(t, info.Name)
	require.NotEmpty(t, info.Location)
	// The bridge hears the box: its status arrived over the TLS login.
	require.Eventually(t, func() bool {
		var bs []adminapi.BoxInfo
		return d.Admin().Do(ctx, http.MethodGet, "/v1/boxes", nil, &bs) == nil && len(bs) == 1 && bs[0].Status != nil
	}, waitFor, 10*time.Millisecond)

	dir := filepath.Join(d.Dir(), "boxes", "box-1")
	for _, f := range []string{"box.db", "smartboxd.toml", "tls/ca.crt", "tls/box.crt", "tls/box.key"} {
		_, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, "provision writes %s", f)
	}
	_, err = os.Stat(filepath.Join(dir, "mqtt.pw"))
	require.ErrorIs(t, err, os.ErrNotExist, "no password file on the card")
	cfg, err := os.ReadFile(filepath.Join(dir, "smartboxd.toml"))
	require.NoError(t, err)
	require.NotContains(t, string(cfg), "password_file")
	b1, err := d.Box("box-1")
	require.NoError(t, err)
	require.Contains(t, string(cfg), `broker_url = "ssl://`+b1.Proxy().Addr()+`"`, "the box reaches the broker through its proxy")
}

func TestStartRefuses(t *testing.T) {
	_, err := depot.Start(t.Context(), depot.Options{Boxes: depot.MaxBoxes + 1, Smartboxd: "/bin/true"})
	require.ErrorIs(t, err, depot.ErrInvalid)
	_, err = depot.Start(t.Context(), depot.Options{Smartboxd: filepath.Join(t.TempDir(), "missing")})
	require.Error(t, err)
	require.True(t, errors.Is(err, os.ErrNotExist), err)
}
