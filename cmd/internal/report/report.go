// Package report prints keys, grants and events as tables for people, the
// same way in smartboxctl and in smartboxd's simulator console.
//
// Grants are printed from box.Grant, which has no code field: the store keeps
// only an HMAC of each code, so no table here can ever show one.
package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// NewTable is a tabwriter with the tables' spacing.
func NewTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// Keys prints one row per key, ordered as given.
func Keys(w io.Writer, keys []box.Key) error {
	tw := NewTable(w)
	fmt.Fprintln(tw, "SLOT\tKEY\tFOB\tNAME")
	for _, k := range keys {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", k.Slot, k.ID, k.FobUID, Dash(k.Name))
	}
	return tw.Flush()
}

// Grants prints one row per grant: id, kind, keys, window, uses/max,
// revoked, source, driver.
func Grants(w io.Writer, grants []box.Grant) error {
	tw := NewTable(w)
	fmt.Fprintln(tw, "ID\tKIND\tKEYS\tWINDOW\tUSES\tREVOKED\tSOURCE\tDRIVER")
	for _, g := range grants {
		limit := "unlimited"
		if g.MaxUses > 0 {
			limit = fmt.Sprint(g.MaxUses)
		}
		revoked := "no"
		if g.Revoked {
			revoked = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%s\t%s\t%s\t%s\n", g.ID, g.Kind, List(g.KeyIDs), Window(g),
			g.Uses, limit, revoked, Dash(g.Source), Dash(g.DriverRef))
	}
	return tw.Flush()
}

// EventHeader starts an event table on tw (see Event).
func EventHeader(tw io.Writer) {
	fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tSLOT\tKEY\tGRANT\tREASON")
}

// Event prints one event row: seq, time, type, slot, key, grant, reason. A
// time stamped by a clock the box did not trust ends in "?".
func Event(tw io.Writer, e box.Event) {
	slot := "-"
	if e.Slot > 0 {
		slot = fmt.Sprint(e.Slot)
	}
	t := e.Time.Local().Format("2006-01-02 15:04:05")
	if e.ClockUntrusted {
		t += "?"
	}
	fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, t, e.Type, slot, Dash(e.KeyID), Dash(e.GrantID), Dash(string(e.Reason)))
}

// Events prints a whole event table.
func Events(w io.Writer, evs []box.Event) error {
	tw := NewTable(w)
	EventHeader(tw)
	for _, e := range evs {
		Event(tw, e)
	}
	return tw.Flush()
}

// Window describes a grant's validity window in local time.
func Window(g box.Grant) string {
	if !g.Windowed() {
		return "always"
	}
	f := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format("2006-01-02 15:04")
	}
	return f(g.From) + ".." + f(g.Until)
}

// List joins ids with commas, or "-" when there are none.
func List(ids []string) string {
	if len(ids) == 0 {
		return "-"
	}
	return strings.Join(ids, ",")
}

// Dash is s, or "-" for an empty column.
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
