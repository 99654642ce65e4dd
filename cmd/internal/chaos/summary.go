package chaos

import (
	"fmt"
	"io"
)

// Print writes the summary: the workload, the faults by kind, the checks'
// counts and each breach; the last line is exactly "breaches: N".
func (s *Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "chaos run: seed %d, %d boxes, %s (replay: --seed %d --boxes %d --duration %s)\n",
		s.Seed, s.Boxes, s.Duration, s.Seed, s.Boxes, s.Duration)
	fmt.Fprintf(w, "workload: %d assignments created, %d changed, %d ended; %d codes typed; %d keys taken, %d returned\n",
		s.Assignments, s.Changes, s.Ends, s.Typed, s.Takes, s.Returns)
	fmt.Fprintf(w, "faults:")
	for _, k := range AllFaults {
		fmt.Fprintf(w, " %s %d", k, s.Faults[k])
	}
	fmt.Fprintln(w)
	// Honest about what a broker restart is: the broker is embedded in the
	// bridge, so it restarts with the bridge's process (SIGTERM), and a
	// bridge kill (SIGKILL) takes the broker down with it too.
	fmt.Fprintln(w, "  (broker_restart: the bridge process restarted in order, its embedded broker with it; bridge_kill: SIGKILL, broker included)")
	fmt.Fprintf(w, "checks: %d grants in the cloud's sets, %d events in the cloud, %d slots opened by code\n", s.Grants, s.Events, s.Opened)
	for _, b := range s.Breaches {
		box := ""
		if b.Box != "" {
			box = " " + b.Box
		}
		fmt.Fprintf(w, "BREACH %s%s: %s\n", b.Check, box, b.Detail)
	}
	fmt.Fprintf(w, "breaches: %d\n", len(s.Breaches))
}
