package table

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Print writes lines as an aligned text table.
func Print(w io.Writer, lines []Line) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tfigure\treference\tref value\tratio")
	for _, l := range lines {
		ratio := "-"
		switch {
		case l.Ratio != nil:
			ratio = strconv.FormatFloat(*l.Ratio, 'g', 3, 64) + "x"
		case l.Status != "ok":
			ratio = l.Status
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.What, show(l.Fig), l.Ref.Name, show(l.Ref), ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range lines {
		if l.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", l.What, l.Note)
		}
	}
	return nil
}

func show(v Value) string {
	if v.Value == nil {
		return "missing"
	}
	return human(*v.Value) + " " + v.Unit
}

// human prints a figure with 3 significant digits, without exponents for
// the sizes a benchmark reports.
func human(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if a := abs(v); a >= 1000 {
		s = strconv.FormatFloat(v, 'f', 0, 64)
	} else if a > 0 {
		s = strconv.FormatFloat(v, 'g', 3, 64)
		if strings.Contains(s, "e") {
			s = strconv.FormatFloat(v, 'f', 6, 64)
		}
	}
	return s
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
