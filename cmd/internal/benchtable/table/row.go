package table

import "strings"

// Metric names one figure: a benchmark's metric in a package, or a
// constant (Bench empty, Value set).
type Metric struct {
	Pkg   string // as go test takes it: "./store"
	Bench string // full name, sub-benchmarks after '/': "BenchmarkX/latency=0s"
	Unit  string // ns/op, B/op, allocs/op or a b.ReportMetric unit
	// A constant reference: its name and value, in Unit.
	Const string
	Value float64
}

// M is the metric unit of benchmark bench in package pkg.
func M(pkg, bench, unit string) Metric { return Metric{Pkg: pkg, Bench: bench, Unit: unit} }

// Const is a reference that is not measured: a configured bound.
func Const(name string, value float64, unit string) Metric {
	return Metric{Const: name, Value: value, Unit: unit}
}

// Top is the top-level benchmark's name (what go test -bench selects).
func (m Metric) Top() string { top, _, _ := strings.Cut(m.Bench, "/"); return top }

// String names the metric in the table.
func (m Metric) String() string {
	if m.Bench == "" {
		return m.Const
	}
	return m.Bench + " " + m.Unit
}

// Row is one line of the table.
type Row struct {
	What string
	Fig  Metric
	Ref  Metric
}
