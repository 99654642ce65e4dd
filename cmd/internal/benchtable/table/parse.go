package table

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Result is one benchmark's outcome in a run.
type Result struct {
	Pkg     string             // import path, as go test -json says it
	Name    string             // full name without the -GOMAXPROCS suffix
	N       int                // iterations
	Metrics map[string]float64 // by unit: ns/op, B/op, allocs/op, custom
	Failed  bool               // --- FAIL (or SKIP): no figure to trust
	Why     string             // the failure's output lines
}

// testEvent is the part of go test -json's (test2json's) events we read.
type testEvent struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// maxEventLine bounds one line of go test -json output: a benchmark's log
// line can be long (a failing benchmark dumps events), but not unbounded.
const maxEventLine = 4 << 20

// Parse reads go test -json output and returns every benchmark result in
// it, by "pkg name". procs is the GOMAXPROCS the benchmarks ran with: go
// test appends "-procs" to each name when it is not 1.
func Parse(r io.Reader, procs int) (map[string]*Result, error) {
	out := map[string]*Result{}
	get := func(pkg, name string) *Result {
		k := pkg + " " + name
		if out[k] == nil {
			out[k] = &Result{Pkg: pkg, Name: name, Metrics: map[string]float64{}}
		}
		return out[k]
	}
	suffix := ""
	if procs > 1 {
		suffix = "-" + strconv.Itoa(procs)
	}
	readLine := func(pkg, test, line string) {
		trimmed := strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(trimmed, "--- FAIL: "); ok && strings.HasPrefix(name, "Benchmark") {
			get(pkg, strings.TrimSuffix(strings.Fields(name)[0], suffix)).Failed = true
		} else if name, ok := strings.CutPrefix(trimmed, "--- SKIP: "); ok && strings.HasPrefix(name, "Benchmark") {
			get(pkg, strings.TrimSuffix(strings.Fields(name)[0], suffix)).Failed = true
		}
		if strings.HasPrefix(test, "Benchmark") && !strings.HasPrefix(line, "Benchmark") && trimmed != "" {
			res := get(pkg, strings.TrimSuffix(test, suffix))
			res.Why += trimmed + "\n"
		}
		if name, n, metrics, ok := parseLine(line, suffix); ok {
			res := get(pkg, name)
			res.N = n
			for u, v := range metrics {
				res.Metrics[u] = v
			}
		}
	}
	partial := map[string]string{} // package+test -> the line so far
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for sc.Scan() {
		var ev testEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// go test prints build errors as plain text: keep going,
			// the run's exit status says it failed.
			continue
		}
		switch {
		case ev.Action == "fail" && strings.HasPrefix(ev.Test, "Benchmark"):
			// go names a failed benchmark with its -procs suffix.
			get(ev.Package, strings.TrimSuffix(ev.Test, suffix)).Failed = true
		case ev.Action == "skip" && strings.HasPrefix(ev.Test, "Benchmark"):
			res := get(ev.Package, strings.TrimSuffix(ev.Test, suffix))
			res.Failed, res.Why = true, res.Why+"skipped\n"
		case ev.Action == "output":
			// test2json may hand a line over in pieces (a benchmark's
			// name is printed before it runs, its figures after), so
			// lines are joined per test before they are read.
			k := ev.Package + " " + ev.Test
			text := partial[k] + ev.Output
			lines := strings.Split(text, "\n")
			partial[k] = lines[len(lines)-1]
			for _, line := range lines[:len(lines)-1] {
				readLine(ev.Package, ev.Test, line)
			}
		}
	}
	for k, rest := range partial {
		if rest != "" {
			pkg, test, _ := strings.Cut(k, " ")
			readLine(pkg, test, rest)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading go test -json output: %w", err)
	}
	// A result line without a failure leaves Why as the log lines only;
	// keep them only for failures.
	for _, res := range out {
		if !res.Failed {
			res.Why = ""
		}
	}
	return out, nil
}

// parseLine reads a benchmark result line:
//
//	BenchmarkX/sub-2   \t 100\t 123 ns/op\t 45 B/op\t 2.5 p50-ms
func parseLine(line, suffix string) (name string, n int, metrics map[string]float64, ok bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", 0, nil, false
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return "", 0, nil, false
	}
	metrics = map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", 0, nil, false
		}
		metrics[f[i+1]] = v
	}
	return strings.TrimSuffix(f[0], suffix), n, metrics, true
}
