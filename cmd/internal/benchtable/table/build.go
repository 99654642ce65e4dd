package table

import (
	"errors"
	"fmt"
	"strings"
)

// Line is one built row: the figure, its reference and their ratio.
type Line struct {
	What   string   `json:"what"`
	Fig    Value    `json:"figure"`
	Ref    Value    `json:"reference"`
	Ratio  *float64 `json:"ratio"`          // figure/reference; nil when either is missing or the reference is 0
	Status string   `json:"status"`         // "ok", "missing" (only with allowMissing), "no ratio"
	Note   string   `json:"note,omitempty"` // why there is no ratio
}

// Value is one side of a line.
type Value struct {
	Name  string   `json:"name"` // benchmark (with package) or constant
	Unit  string   `json:"unit"`
	Value *float64 `json:"value"` // nil: missing
}

// ImportPath is pkg ("./sync/link") under module.
func ImportPath(module, pkg string) string {
	p := strings.TrimPrefix(strings.TrimPrefix(pkg, "."), "/")
	if p == "" {
		return module
	}
	return module + "/" + p
}

// Build makes the table from the results of a run (Parse's map). Every row
// whose benchmark is missing, failed, or lacks the metric is an error,
// all of them joined; with allowMissing a missing one is a line marked
// "missing" instead (a failed one stays an error).
func Build(rows []Row, module string, results map[string]*Result, allowMissing bool) ([]Line, error) {
	var lines []Line
	var errs []error
	for _, r := range rows {
		fig, ferr := lookup(r.Fig, module, results)
		ref, rerr := lookup(r.Ref, module, results)
		l := Line{What: r.What, Fig: fig, Ref: ref, Status: "ok"}
		for _, err := range []error{ferr, rerr} {
			var m missingError
			switch {
			case err == nil:
			case allowMissing && errors.As(err, &m):
				l.Status, l.Note = "missing", err.Error()
			default:
				l.Status, l.Note = "error", err.Error()
				errs = append(errs, fmt.Errorf("row %q: %w", r.What, err))
			}
		}
		if l.Status == "ok" {
			if *ref.Value == 0 {
				l.Status, l.Note = "no ratio", "reference is 0"
			} else {
				ratio := *fig.Value / *ref.Value
				l.Ratio = &ratio
			}
		}
		lines = append(lines, l)
	}
	return lines, errors.Join(errs...)
}

// missingError is a benchmark or metric that is not in the run's output.
type missingError struct{ msg string }

func (e missingError) Error() string { return e.msg }

func lookup(m Metric, module string, results map[string]*Result) (Value, error) {
	if m.Bench == "" {
		v := m.Value
		return Value{Name: m.Const, Unit: m.Unit, Value: &v}, nil
	}
	val := Value{Name: m.Pkg + " " + m.Bench, Unit: m.Unit}
	res := results[ImportPath(module, m.Pkg)+" "+m.Bench]
	switch {
	case res == nil:
		return val, missingError{fmt.Sprintf("benchmark %s in %s did not run: renamed or deleted? "+
			"Fix its name in cmd/internal/benchtable/table/rows.go", m.Bench, m.Pkg)}
	case res.Failed:
		return val, fmt.Errorf("benchmark %s in %s failed:\n%s", m.Bench, m.Pkg, indent(res.Why))
	}
	v, ok := res.Metrics[m.Unit]
	if !ok {
		return val, missingError{fmt.Sprintf("benchmark %s in %s reports no %q (it reports %s): "+
			"fix the unit in cmd/internal/benchtable/table/rows.go", m.Bench, m.Pkg, m.Unit, units(res))}
	}
	val.Value = &v
	return val, nil
}

func units(res *Result) string {
	var us []string
	for u := range res.Metrics {
		us = append(us, u)
	}
	if len(us) == 0 {
		return "nothing"
	}
	return strings.Join(sorted(us), ", ")
}

func indent(s string) string {
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
