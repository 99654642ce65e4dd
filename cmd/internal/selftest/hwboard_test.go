package selftest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxhw"
	"github.com/smartbox-oss/smartbox/store"
)

const testFob = "01000734E0"

// simTech is the technician on the direct path: it acts on the simulated
// pins boxhw opened, in its own goroutine.
type simTech struct {
	h    *boxhw.Hardware
	said chan string
}

func (p *simTech) AssumeYes() bool                               { return true }
func (p *simTech) Confirm(context.Context, string) (bool, error) { return true, nil }
func (p *simTech) Say(s string)                                  { p.said <- s }

func (p *simTech) run(t *testing.T, ctx context.Context) {
	for {
		var s string
		select {
		case <-ctx.Done():
			return
		case s = <-p.said:
		}
		sh := p.h.Sim
		step, ok := ParseStep(s)
		switch {
		case !ok:
			t.Errorf("the technician does not know what to do: %q", s)
		case step.Do == ActTake:
			_ = sh.Slots.Take(step.Slot) // a jammed slot refuses: as a person meets it
		case step.Do == ActPutBack:
			_ = sh.Slots.PutBack(step.Slot)
		case step.Do == ActPress:
			_ = sh.Keypad.Type(step.Key, 60*time.Millisecond, 60*time.Millisecond)
		case step.Do == ActFob:
			_ = sh.Reader.Tap(testFob, 150*time.Millisecond)
		}
	}
}

// TestRunHardwareSim runs the direct (stopped daemon) path on boxhw's
// simulated pins in process: a jammed latch and a dead sensor fail their
// rows, the rest pass, every lock ends de-energised, and the session and
// its releases are in the outbox.
func TestRunHardwareSim(t *testing.T) {
	dir := t.TempDir()
	cfg, err := boxconfig.LoadConfig("../../smartboxd/smartboxd.sim.toml")
	require.NoError(t, err)
	cfg.DataDir = dir
	cfg.Hardware.Slots.Count = 4 // a small box: the steps are per slot
	require.NoError(t, cfg.Validate())
	st, err := store.Open(filepath.Join(dir, "box.db"), store.Options{BoxID: cfg.BoxID, Slots: 4})
	require.NoError(t, err)
	b, err := store.ParseImport(strings.NewReader(`{"keys": [{"id": "key-1", "fob_uid": "`+testFob+`", "slot": 1}]}`), 4)
	require.NoError(t, err)
	_, err = st.Apply(b)
	require.NoError(t, err)

	h, err := boxhw.Open(cfg, boxhw.Options{})
	require.NoError(t, err)
	sl := h.Sim.Slots
	require.NoError(t, sl.Jam(2, true))
	require.NoError(t, sl.KillSensor(3, true))
	tech := &simTech{h: h, said: make(chan string, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); tech.run(t, ctx) }()
	defer func() { cancel(); <-done }()

	rep, err := runOn(t.Context(), cfg, st, h, nil, tech, Options{TakeTimeout: 2 * time.Second, SteadyWatch: 300 * time.Millisecond,
		Groups: []Group{GroupSensors, GroupLocks, GroupKeys, GroupReader, GroupStore, GroupBroker, GroupSigning}})
	require.NoError(t, err)
	results := map[string]Result{}
	for _, row := range rep.Rows {
		t.Logf("%-8s %-18s %-13s %s", row.Group, row.Name, row.Result, row.Detail)
		results[row.Name] = row.Result
		if row.Result == Fail {
			require.Contains(t, []string{"slot 2 lock", "slot 3 sensor"}, row.Name, "only the jammed lock and the dead sensor fail")
		}
	}
	require.Equal(t, Fail, results["slot 2 lock"])
	require.Equal(t, Fail, results["slot 3 sensor"])
	require.Equal(t, Pass, results["slot 1 lock"])
	require.Equal(t, Pass, results["key 0"])
	require.Equal(t, Pass, results["fob reader"])
	require.Equal(t, Pass, results["store"])
	require.Equal(t, NotAvailable, results["broker connection"])
	require.Equal(t, NotAvailable, results["signed round trip"])
	require.Len(t, rep.Rows, 4+4+12+1+1+1+1)
	for n := 1; n <= 4; n++ {
		require.False(t, sl.Released(n), "slot %d released after the test", n)
	}
	evs, err := st.Events(0, 1000)
	require.NoError(t, err)
	var types []box.EventType
	for _, e := range evs {
		types = append(types, e.Type)
	}
	require.Contains(t, types, box.EventMaintenanceBegan)
	require.Contains(t, types, box.EventMaintenanceEnded)
	require.Contains(t, types, box.EventSlotReleased)
	require.NoError(t, st.Close())
}

// wrongKeyTech presses 6 when asked for 5 (crossed wires), the right key
// otherwise.
type wrongKeyTech struct{ simTech }

func (p *wrongKeyTech) Say(s string) {
	if step, ok := ParseStep(s); ok && step.Do == ActPress && step.Key == "5" {
		s = Step{Do: ActPress, Key: "6"}.String()
	}
	p.said <- s
}

// TestKeysTimeOutEach: a key never read fails its own row after the key
// timeout (saying what was read instead), and the next keys are still
// asked for and pass.
func TestKeysTimeOutEach(t *testing.T) {
	dir := t.TempDir()
	cfg, err := boxconfig.LoadConfig("../../smartboxd/smartboxd.sim.toml")
	require.NoError(t, err)
	cfg.DataDir = dir
	require.NoError(t, cfg.Validate())
	st, err := store.Open(filepath.Join(dir, "box.db"), store.Options{BoxID: cfg.BoxID})
	require.NoError(t, err)
	defer st.Close()
	h, err := boxhw.Open(cfg, boxhw.Options{})
	require.NoError(t, err)
	tech := &wrongKeyTech{simTech{h: h, said: make(chan string, 1)}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); tech.run(t, ctx) }()
	defer func() { cancel(); <-done }()

	// keyTimeout is also how long each key that passes may take to be
	// read on a loaded 2-core CI under -race: many times what it takes.
	const keyTimeout = 5 * time.Second
	rep, err := runOn(t.Context(), cfg, st, h, nil, tech, Options{KeyTimeout: keyTimeout, Groups: []Group{GroupKeys}})
	require.NoError(t, err)
	require.Len(t, rep.Rows, 12)
	for _, row := range rep.Rows {
		if row.Name == "key 5" {
			require.Equal(t, Fail, row.Result)
			require.Contains(t, row.Detail, "read instead: 6")
			continue
		}
		require.Equal(t, Pass, row.Result, "%+v", row)
	}
	require.True(t, rep.Failed())
}
