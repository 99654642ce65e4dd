package rfid

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRepeatFilter(t *testing.T) {
	const ms = time.Millisecond
	type step struct {
		gap  time.Duration // since the previous frame
		uid  string
		want bool // starts a new presentation
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "repeats every 50ms collapse, however long the tag stays", steps: []step{
			{0, "A", true}, {50 * ms, "A", false}, {50 * ms, "A", false}, {290 * ms, "A", false}, {300 * ms, "A", false},
		}},
		{name: "same tag after a gap longer than the window counts again", steps: []step{
			{0, "A", true}, {50 * ms, "A", false}, {301 * ms, "A", true}, {50 * ms, "A", false}, {time.Hour, "A", true},
		}},
		{name: "a different tag counts at once", steps: []step{
			{0, "A", true}, {50 * ms, "B", true}, {50 * ms, "C", true},
		}},
		{name: "two fobs answering in turn collapse each", steps: []step{
			{0, "A", true}, {25 * ms, "B", true}, {25 * ms, "A", false}, {25 * ms, "B", false}, {25 * ms, "A", false},
		}},
		{name: "a tag back after others within the window is the same presentation", steps: []step{
			{0, "A", true}, {10 * ms, "B", true}, {10 * ms, "C", true}, {10 * ms, "A", false},
		}},
		{name: "forgets the oldest beyond four tags", steps: []step{
			{0, "A", true}, {ms, "B", true}, {ms, "C", true}, {ms, "D", true}, {ms, "E", true},
			{ms, "A", true}, // A was evicted by E
			{ms, "E", false}, {ms, "D", false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := repeatFilter{window: 300 * ms}
			now := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
			for i, s := range tc.steps {
				now = now.Add(s.gap)
				require.Equal(t, s.want, f.accept(s.uid, now), "step %d: %s after %v", i, s.uid, s.gap)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Port: "/dev/ttyAMA0"}.withDefaults()
	require.Equal(t, Config{Port: "/dev/ttyAMA0", Baud: 9600, Repeat: 300 * time.Millisecond,
		ReopenMin: 200 * time.Millisecond, ReopenMax: 10 * time.Second}, c)
	c = Config{ReopenMin: time.Second, ReopenMax: time.Millisecond}.withDefaults()
	require.Equal(t, time.Second, c.ReopenMax, "max below min is raised to min")
}
