package selftest

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/smartbox-oss/smartbox/cmd/internal/report"
)

// Group names a part of the test, as --only takes them.
type Group string

const (
	GroupLocks   Group = "locks"
	GroupSensors Group = "sensors"
	GroupKeys    Group = "keys"
	GroupReader  Group = "reader"
	GroupClock   Group = "clock"
	GroupStore   Group = "store"
	GroupBroker  Group = "broker"
	GroupSigning Group = "signing"
)

// Groups is every group, in the order the test runs them.
var Groups = []Group{GroupSensors, GroupLocks, GroupKeys, GroupReader, GroupClock, GroupStore, GroupBroker, GroupSigning}

// ParseGroups reads --only's comma-separated list ("" is every group).
func ParseGroups(s string) ([]Group, error) {
	if s == "" {
		return Groups, nil
	}
	var out []Group
	for part := range strings.SplitSeq(s, ",") {
		g := Group(strings.TrimSpace(part))
		if !slices.Contains(Groups, g) {
			return nil, fmt.Errorf("--only %q: %q is not one of %s", s, g, strings.Join(groupNames(), ","))
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

func groupNames() []string {
	var s []string
	for _, g := range Groups {
		s = append(s, string(g))
	}
	return s
}

// Result is a row's outcome.
type Result string

const (
	Pass         Result = "pass"
	Fail         Result = "fail"
	Skipped      Result = "skipped"       // the technician said no, or the test stopped first
	NotAvailable Result = "not available" // this board cannot make the check
)

// Row is one line of the report. The JSON form is stable: fields are
// added, never renamed.
type Row struct {
	Group  Group  `json:"group"`
	Name   string `json:"name"` // e.g. "slot 3 lock", "key 5"
	Slot   int    `json:"slot,omitempty"`
	Result Result `json:"result"`
	Detail string `json:"detail,omitempty"` // what was seen, or what failed and what to do
}

// Report is a whole self-test, `smartboxctl selftest --json`'s output.
type Report struct {
	// Via is "socket" (a running smartboxd's session) or "hardware" (the
	// daemon stopped, smartboxctl drove the pins).
	Via    string `json:"via"`
	Passed bool   `json:"passed"` // no row failed and the test ran to its end
	Rows   []Row  `json:"rows"`
	// Error is why the test stopped before its end (the box stopped, the
	// technician interrupted it); the rows not reached are missing.
	Error string `json:"error,omitempty"`
}

// Failed reports whether any row failed or the test stopped early.
func (r *Report) Failed() bool {
	return r.Error != "" || slices.ContainsFunc(r.Rows, func(row Row) bool { return row.Result == Fail })
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := report.NewTable(w)
	fmt.Fprintln(tw, "GROUP\tCHECK\tRESULT\tDETAIL")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.Group, row.Name, strings.ToUpper(string(row.Result)), report.Dash(row.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "PASSED"
	if r.Failed() {
		verdict = "FAILED"
	}
	if _, err := fmt.Fprintf(w, "\nselftest %s (via %s)\n", verdict, r.Via); err != nil {
		return err
	}
	if r.Error != "" {
		_, err := fmt.Fprintf(w, "stopped before its end: %s\n", r.Error)
		return err
	}
	return nil
}

// WriteJSON prints the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	r.Passed = !r.Failed()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
